//! Trees as tar streams, for the HTTP API: a tar stream read into a store as a directory
//! (`POST /v1/objects` with `Content-Type: application/x-tar`), a stored directory written
//! out as a tar stream (`GET /v1/objects/{cap}?format=tar`), and a tar stream unpacked into a
//! new directory (`get --api`). Only regular files and directories travel; any other entry
//! is refused by its path, as `put DIR` refuses it.

// Host code: it reads and writes files on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::export::{count_entries, ExportError, ROOT_DIR_MODE};
use super::import::{PutOptions, PutOutcome};
use crate::limits::{CHUNK_PLAINTEXT_BYTES_MAX, DIR_DEPTH_MAX, EXPORT_ENTRIES_MAX};
use crate::object::format::{DirEntry, EntryKind, MODE_MAX};
use crate::object::read::Reader;
use crate::object::write::{WriteError, Writer};
use crate::object::ReadCap;
use crate::store::Store;

/// Mode of a directory that a tar stream implies (an entry `a/b` without an entry `a/`).
const IMPLIED_DIR_MODE: u32 = 0o755;

/// Why a tar stream could not be read into a store or unpacked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarError {
    #[error("cannot read the tar stream: {0}")]
    Stream(String),
    #[error("tar entry {path:?} {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("tar entry {path:?} is a {kind}; only regular files and directories can be put")]
    Unsupported { path: String, kind: &'static str },
    #[error("tar entry {path:?} names a path that an earlier entry already used")]
    Twice { path: String },
    #[error("tar entry {path:?} is nested more than {DIR_DEPTH_MAX} directories deep")]
    TooDeep { path: String },
    #[error("the tar stream has more than {EXPORT_ENTRIES_MAX} entries")]
    TooManyEntries,
    #[error("cannot store tar entry {path:?}: {source}")]
    Write { path: String, source: WriteError },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl TarError {
    /// The client's fault (a bad stream), as opposed to the store's.
    pub fn write_error(&self) -> Option<&WriteError> {
        match self {
            TarError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Most characters of a tar reader's error kept in a message.
const STREAM_PROBLEM_CHARS_MAX: usize = 160;

/// A broken stream, its reason made printable: a tar reader's errors quote raw header bytes.
fn stream(e: io::Error) -> TarError {
    let text: String = e
        .to_string()
        .chars()
        .map(|c| {
            if c.is_control() || c == char::REPLACEMENT_CHARACTER {
                '?'
            } else {
                c
            }
        })
        .take(STREAM_PROBLEM_CHARS_MAX)
        .collect();
    TarError::Stream(text)
}

/// What one tar entry is, once its header has been read.
enum Kind {
    File,
    Directory,
    /// Metadata for the whole stream (a pax global header): nothing to store.
    Skip,
}

fn kind_of(header: &tar::Header, path: &str) -> Result<Kind, TarError> {
    use tar::EntryType as T;
    let kind = match header.entry_type() {
        T::Regular | T::Continuous => return Ok(Kind::File),
        T::Directory => return Ok(Kind::Directory),
        T::XGlobalHeader => return Ok(Kind::Skip),
        T::Symlink => "symbolic link",
        T::Link => "hard link",
        T::Char => "character device",
        T::Block => "block device",
        T::Fifo => "FIFO",
        T::GNUSparse => "sparse file",
        _ => "entry of an unknown type",
    };
    Err(TarError::Unsupported {
        path: path.to_string(),
        kind,
    })
}

/// An entry's path as its components: UTF-8, relative, without `..`; `.` and empty
/// components (a leading `./`, a trailing `/`) are dropped, so `./` is the root itself.
fn components(raw: &[u8]) -> Result<(String, Vec<String>), TarError> {
    let text = std::str::from_utf8(raw).map_err(|_| TarError::BadPath {
        path: String::from_utf8_lossy(raw).into_owned(),
        reason: "is not valid UTF-8",
    })?;
    let bad = |reason| TarError::BadPath {
        path: text.to_string(),
        reason,
    };
    if text.starts_with('/') {
        return Err(bad("is an absolute path; entries must be relative"));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("climbs out of the tree with '..'")),
            part => parts.push(part.to_string()),
        }
    }
    Ok((text.to_string(), parts))
}

/// A directory being gathered from a tar stream.
struct Gathered {
    mode: u32,
    /// Named by an entry of its own (not only implied by the paths under it).
    named: bool,
    entries: Vec<DirEntry>,
}

impl Gathered {
    fn new(mode: u32, named: bool) -> Gathered {
        Gathered {
            mode,
            named,
            entries: Vec::new(),
        }
    }
}

/// The directories and files a tar stream has named so far.
#[derive(Default)]
struct Tree {
    dirs: BTreeMap<Vec<String>, Gathered>,
    files: BTreeSet<Vec<String>>,
}

impl Tree {
    /// Makes sure every directory above `parts` exists (implied ones get
    /// [`IMPLIED_DIR_MODE`]), and that `parts` itself is not taken.
    fn make_room(&mut self, parts: &[String], path: &str) -> Result<(), TarError> {
        for depth in 1..parts.len() {
            let above = &parts[..depth];
            if self.files.contains(above) {
                return Err(TarError::Twice {
                    path: path.to_string(),
                });
            }
            if depth >= DIR_DEPTH_MAX {
                return Err(TarError::TooDeep {
                    path: path.to_string(),
                });
            }
            self.dirs
                .entry(above.to_vec())
                .or_insert_with(|| Gathered::new(IMPLIED_DIR_MODE, false));
        }
        if self.files.contains(parts) {
            return Err(TarError::Twice {
                path: path.to_string(),
            });
        }
        Ok(())
    }
}

/// Reads a tar stream into `store` as a directory holding the stream's entries, and returns
/// its read capability. `tar -C DIR -cf - .` gives the same capability as `put DIR`.
pub fn put_tar(
    store: &Store,
    source: impl Read,
    options: &PutOptions,
) -> Result<PutOutcome, TarError> {
    let mut writer = Writer::new(store, options.config.clone(), options.secret.clone());
    let mut tree = Tree::default();
    tree.dirs
        .insert(Vec::new(), Gathered::new(ROOT_DIR_MODE, false));
    let mut archive = tar::Archive::new(source);
    let mut count = 0usize;
    for entry in archive.entries().map_err(stream)? {
        let mut entry = entry.map_err(stream)?;
        let (path, parts) = components(&entry.path_bytes())?;
        let kind = kind_of(entry.header(), &path)?;
        if matches!(kind, Kind::Skip) {
            continue;
        }
        count += 1;
        if count > EXPORT_ENTRIES_MAX {
            return Err(TarError::TooManyEntries);
        }
        let mode = entry.header().mode().map_err(stream)? & MODE_MAX;
        let Some((name, parent)) = parts.split_last() else {
            // `./`: the root, which no entry describes; a file cannot be the root.
            if matches!(kind, Kind::File) {
                return Err(TarError::BadPath {
                    path,
                    reason: "has no name; a file needs one",
                });
            }
            continue;
        };
        tree.make_room(&parts, &path)?;
        match kind {
            Kind::Directory => {
                if parts.len() >= DIR_DEPTH_MAX {
                    return Err(TarError::TooDeep { path });
                }
                let dir = tree
                    .dirs
                    .entry(parts.clone())
                    .or_insert_with(|| Gathered::new(mode, false));
                if dir.named {
                    return Err(TarError::Twice { path });
                }
                dir.mode = mode;
                dir.named = true;
            }
            Kind::File => {
                if tree.dirs.contains_key(&parts) {
                    return Err(TarError::Twice { path });
                }
                // The writer reads on threads of its own; a tar entry stays on this one.
                let (cap, _) =
                    super::pieces::bridge(&mut entry, CHUNK_PLAINTEXT_BYTES_MAX, |body| {
                        writer.put_file(body, &mut |_| {})
                    })
                    .map_err(|source| match source {
                        WriteError::Input(e) => stream(e),
                        source => TarError::Write {
                            path: path.clone(),
                            source,
                        },
                    })?;
                tree.files.insert(parts.clone());
                let Some(dir) = tree.dirs.get_mut(parent) else {
                    unreachable!("make_room made every directory above the entry")
                };
                dir.entries.push(DirEntry {
                    name: name.clone(),
                    kind: EntryKind::File,
                    mode,
                    cap,
                });
            }
            Kind::Skip => {}
        }
    }
    // Deepest first, so each directory's subdirectories are stored before it.
    let mut order: Vec<Vec<String>> = tree.dirs.keys().cloned().collect();
    order.sort_by_key(|parts| std::cmp::Reverse(parts.len()));
    let mut root = None;
    for parts in order {
        let Some(dir) = tree.dirs.remove(&parts) else {
            unreachable!("each directory is taken once")
        };
        let cap = writer
            .put_directory(dir.entries)
            .map_err(|source| TarError::Write {
                path: parts.join("/"),
                source,
            })?;
        match parts.split_last() {
            Some((name, parent)) => {
                let Some(above) = tree.dirs.get_mut(parent) else {
                    unreachable!("a directory's parent is stored after it")
                };
                above.entries.push(DirEntry {
                    name: name.clone(),
                    kind: EntryKind::Directory,
                    mode: dir.mode,
                    cap,
                });
            }
            None => root = Some(cap),
        }
    }
    let Some(cap) = root else {
        unreachable!("the root directory is always gathered")
    };
    let stats = writer
        .finish(options.pin.then_some(cap))
        .map_err(|source| TarError::Write {
            path: "./".into(),
            source,
        })?;
    Ok(PutOutcome {
        cap,
        kind: EntryKind::Directory,
        stats,
    })
}

/// A file's bytes read from a store one chunk's worth at a time, for a tar entry.
struct FileBytes<'r, 's> {
    reader: &'r Reader<'s>,
    cap: ReadCap,
    at: u64,
    total: u64,
    piece: Vec<u8>,
    taken: usize,
}

impl Read for FileBytes<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.taken == self.piece.len() {
            if self.at == self.total {
                return Ok(0);
            }
            let end = self.total.min(self.at + CHUNK_PLAINTEXT_BYTES_MAX as u64);
            self.piece.clear();
            self.reader
                .copy_range(&self.cap, self.at..end, &mut self.piece)
                .map_err(io::Error::other)?;
            self.at = end;
            self.taken = 0;
        }
        let n = buf.len().min(self.piece.len() - self.taken);
        buf[..n].copy_from_slice(&self.piece[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Writes the directory `cap` as a tar stream: each directory's entry before what it holds,
/// names in the directory's order, modes as stored, times and owners zero. Returns the file
/// bytes written.
pub fn write_tar(reader: &Reader<'_>, cap: &ReadCap, out: impl Write) -> Result<u64, ExportError> {
    if count_entries(reader, cap)? > EXPORT_ENTRIES_MAX as u64 {
        return Err(ExportError::TooManyEntries);
    }
    let mut builder = tar::Builder::new(out);
    let mut bytes = 0u64;
    let mut stack = vec![(String::new(), reader.list_dir(cap)?.into_iter())];
    while let Some((prefix, entries)) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            stack.pop();
            continue;
        };
        let node = reader.check_entry(&entry)?;
        let path = format!("{prefix}{}", entry.name);
        let failed = |source| ExportError::Io {
            path: PathBuf::from(&path),
            source,
        };
        match entry.kind {
            EntryKind::File => {
                let mut head = header(tar::EntryType::Regular, entry.mode, node.total);
                let content = FileBytes {
                    reader,
                    cap: entry.cap,
                    at: 0,
                    total: node.total,
                    piece: Vec::new(),
                    taken: 0,
                };
                builder
                    .append_data(&mut head, &path, content)
                    .map_err(failed)?;
                bytes += node.total;
            }
            EntryKind::Directory => {
                if stack.len() >= DIR_DEPTH_MAX {
                    return Err(ExportError::TooDeep);
                }
                let mut head = header(tar::EntryType::Directory, entry.mode, 0);
                let path = format!("{path}/");
                builder
                    .append_data(&mut head, &path, io::empty())
                    .map_err(failed)?;
                stack.push((path, reader.list_dir(&entry.cap)?.into_iter()));
            }
        }
    }
    builder.finish().map_err(|source| ExportError::Io {
        path: PathBuf::from("the end of the tar stream"),
        source,
    })?;
    Ok(bytes)
}

/// Unpacks a tar stream into the existing, empty directory `root`, with the same checks as
/// [`put_tar`]: only files and directories, relative paths that stay inside, each path once,
/// bounded depth and entries. Directory modes are applied last, deepest first. Returns the
/// file bytes written.
pub fn unpack(source: impl Read, root: &Path) -> Result<u64, TarError> {
    let io_at = |path: &Path| {
        let path = path.to_owned();
        move |source| TarError::Io { path, source }
    };
    let mut archive = tar::Archive::new(source);
    let mut tree = Tree::default();
    let mut directory_modes: Vec<(PathBuf, u32)> = Vec::new();
    let mut count = 0usize;
    let mut bytes = 0u64;
    for entry in archive.entries().map_err(stream)? {
        let mut entry = entry.map_err(stream)?;
        let (path, parts) = components(&entry.path_bytes())?;
        let kind = kind_of(entry.header(), &path)?;
        if matches!(kind, Kind::Skip) || parts.is_empty() {
            continue;
        }
        count += 1;
        if count > EXPORT_ENTRIES_MAX {
            return Err(TarError::TooManyEntries);
        }
        // Permission bits only: setuid, setgid and sticky bits from a tree someone else
        // wrote are not applied.
        let mode = entry.header().mode().map_err(stream)? & 0o777;
        tree.make_room(&parts, &path)?;
        let target = parts.iter().fold(root.to_owned(), |at, part| at.join(part));
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        match kind {
            Kind::Directory => {
                if parts.len() >= DIR_DEPTH_MAX {
                    return Err(TarError::TooDeep { path });
                }
                let named = tree
                    .dirs
                    .insert(parts.clone(), Gathered::new(mode, true))
                    .is_some_and(|earlier| earlier.named);
                if named {
                    return Err(TarError::Twice { path });
                }
                match fs::create_dir(&target) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    done => done.map_err(io_at(&target))?,
                }
                directory_modes.push((target, mode));
            }
            Kind::File => {
                if tree.dirs.contains_key(&parts) {
                    return Err(TarError::Twice { path });
                }
                tree.files.insert(parts.clone());
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(io_at(&target))?;
                bytes += io::copy(&mut entry, &mut file).map_err(io_at(&target))?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(io_at(&target))?;
                file.sync_all().map_err(io_at(&target))?;
            }
            Kind::Skip => {}
        }
    }
    directory_modes.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
    for (path, mode) in &directory_modes {
        fs::set_permissions(path, fs::Permissions::from_mode(*mode)).map_err(io_at(path))?;
        fs::File::open(path)
            .and_then(|dir| dir.sync_all())
            .map_err(io_at(path))?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_utf8_and_stay_inside() {
        let parts = |raw: &str| components(raw.as_bytes()).map(|(_, parts)| parts);
        assert_eq!(parts("./a/b/").unwrap(), ["a", "b"]);
        assert_eq!(parts("a//b").unwrap(), ["a", "b"]);
        assert!(parts("./").unwrap().is_empty());
        for bad in ["/etc/passwd", "a/../../b", ".."] {
            assert!(
                matches!(components(bad.as_bytes()), Err(TarError::BadPath { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            components(b"a/\xff"),
            Err(TarError::BadPath { .. })
        ));
    }
}
