//! Exporting a tree from a store to the file system, all or nothing: everything is written
//! under a temporary name beside the target and renamed into place only once complete, so a
//! failed get leaves nothing under the requested name.

// Host code: it reads and writes files on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::ids::ChunkId;
use crate::limits::{DIR_DEPTH_MAX, EXPORT_ENTRIES_MAX};
use crate::object::format::{EntryKind, NodeKind};
use crate::object::read::{ReadError, Reader};
use crate::object::ReadCap;
use crate::store::Store;

/// Mode of a top-level file or directory, which no directory entry describes.
pub const ROOT_FILE_MODE: u32 = 0o644;
pub const ROOT_DIR_MODE: u32 = 0o755;
const PARTIAL_PREFIX: &str = ".cryptosphere-partial-";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the directory tree is nested more than {DIR_DEPTH_MAX} levels deep")]
    TooDeep,
    #[error("the tree has more than {EXPORT_ENTRIES_MAX} entries; refusing to write it out")]
    TooManyEntries,
    #[error("{0} does not end in a file or directory name (it ends in '.', '..' or '/')")]
    NotAName(PathBuf),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Tar(#[from] super::tarball::TarError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetOutcome {
    pub kind: EntryKind,
    pub bytes: u64,
}

/// Writes the tree `cap` names to `output`. Refuses to replace an existing path unless
/// `force`.
pub fn get_to_path(
    store: &Store,
    cap: &ReadCap,
    output: &Path,
    force: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<GetOutcome, ExportError> {
    let (exists, parent) = target(output, force)?;
    let reader = Reader::new(store);
    let root = reader.root(cap)?;
    let (outcome, staged) = match root.kind {
        NodeKind::File => {
            let mut staged = tempfile::Builder::new()
                .prefix(PARTIAL_PREFIX)
                .tempfile_in(parent)
                .map_err(io(output))?;
            let bytes = reader.copy_file(cap, staged.as_file_mut(), progress)?;
            let file = staged.as_file();
            file.set_permissions(fs::Permissions::from_mode(ROOT_FILE_MODE))
                .map_err(io(output))?;
            file.sync_all().map_err(io(output))?;
            (
                GetOutcome {
                    kind: EntryKind::File,
                    bytes,
                },
                Staged::File(staged),
            )
        }
        NodeKind::Directory => {
            let staged = tempfile::Builder::new()
                .prefix(PARTIAL_PREFIX)
                .tempdir_in(parent)
                .map_err(io(output))?;
            let bytes = write_tree(&reader, cap, staged.path(), progress)?;
            fs::set_permissions(staged.path(), fs::Permissions::from_mode(ROOT_DIR_MODE))
                .map_err(io(output))?;
            (
                GetOutcome {
                    kind: EntryKind::Directory,
                    bytes,
                },
                Staged::Dir(staged),
            )
        }
    };
    place(staged, exists, output, parent)?;
    Ok(outcome)
}

/// Checks that `output` names a file or directory that may be written (absent, or `force`);
/// returns whether it exists and the directory to stage beside it in.
fn target(output: &Path, force: bool) -> Result<(bool, &Path), ExportError> {
    // "dir/..", "dir/." or "/" would make --force replace a directory other than the
    // one named. (Path::file_name skips a trailing ".", so look at the raw last component.)
    let last = output
        .as_os_str()
        .as_bytes()
        .rsplit(|b| *b == b'/')
        .next()
        .unwrap_or_default();
    if matches!(last, b"" | b"." | b"..") {
        return Err(ExportError::NotAName(output.to_owned()));
    }
    let exists = fs::symlink_metadata(output).is_ok();
    if exists && !force {
        return Err(ExportError::Exists(output.to_owned()));
    }
    let parent = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Ok((exists, parent))
}

/// Renames a complete export into place (replacing what `exists` there) and makes the
/// rename durable.
fn place(staged: Staged, exists: bool, output: &Path, parent: &Path) -> Result<(), ExportError> {
    if exists {
        remove_existing(output)?;
    }
    staged.persist(output)?;
    fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(io(parent))
}

/// Unpacks a tar stream (a directory from a node's API) into `output`, all or nothing, as
/// [`get_to_path`] writes a directory.
pub fn unpack_to_path(
    source: impl std::io::Read,
    output: &Path,
    force: bool,
) -> Result<GetOutcome, ExportError> {
    let (exists, parent) = target(output, force)?;
    let staged = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempdir_in(parent)
        .map_err(io(output))?;
    let bytes = super::tarball::unpack(source, staged.path())?;
    fs::set_permissions(staged.path(), fs::Permissions::from_mode(ROOT_DIR_MODE))
        .map_err(io(output))?;
    place(Staged::Dir(staged), exists, output, parent)?;
    Ok(GetOutcome {
        kind: EntryKind::Directory,
        bytes,
    })
}

/// A complete export waiting to be renamed into place; dropping it removes it.
enum Staged {
    File(tempfile::NamedTempFile),
    Dir(tempfile::TempDir),
}

impl Staged {
    fn persist(self, output: &Path) -> Result<(), ExportError> {
        match self {
            Staged::File(file) => {
                file.persist_noclobber(output)
                    .map(drop)
                    .map_err(|e| ExportError::Io {
                        path: output.to_owned(),
                        source: e.error,
                    })
            }
            Staged::Dir(dir) => {
                // Rename first, then disarm the guard, so a failed rename still cleans up.
                fs::rename(dir.path(), output).map_err(io(output))?;
                let _ = dir.keep();
                Ok(())
            }
        }
    }
}

fn remove_existing(path: &Path) -> Result<(), ExportError> {
    let metadata = fs::symlink_metadata(path).map_err(io(path))?;
    if metadata.is_dir() {
        fs::remove_dir_all(path).map_err(io(path))
    } else {
        fs::remove_file(path).map_err(io(path))
    }
}

/// How many entries writing out the directory `cap` would create, counting a shared subtree
/// once per appearance, computed in time linear in the distinct directories (a tree whose
/// subtrees repeat can otherwise describe exponentially many entries in a few chunks).
pub(super) fn count_entries(reader: &Reader<'_>, cap: &ReadCap) -> Result<u64, ExportError> {
    let mut totals: BTreeMap<(ChunkId, [u8; 32]), u64> = BTreeMap::new();
    // Post-order without recursion: a directory is summed once its subdirectories are.
    let mut stack = vec![(*cap, false, 0usize)];
    while let Some((dir, children_done, depth)) = stack.pop() {
        if totals.contains_key(&(dir.id, dir.key.0)) {
            continue;
        }
        if depth >= DIR_DEPTH_MAX {
            return Err(ExportError::TooDeep);
        }
        let entries = reader.list_dir(&dir)?;
        let subdirs = entries.iter().filter(|e| e.kind == EntryKind::Directory);
        if !children_done {
            for entry in subdirs.clone() {
                reader.check_entry(entry)?;
            }
        }
        if children_done {
            let total = subdirs.fold(entries.len() as u64, |sum, e| {
                sum.saturating_add(totals.get(&(e.cap.id, e.cap.key.0)).copied().unwrap_or(0))
            });
            totals.insert((dir.id, dir.key.0), total);
        } else {
            stack.push((dir, true, depth));
            stack.extend(subdirs.map(|e| (e.cap, false, depth + 1)));
        }
    }
    Ok(totals.get(&(cap.id, cap.key.0)).copied().unwrap_or(0))
}

/// Writes the directory `cap` into the existing empty directory `root`. Directory modes are
/// applied last, deepest first, so a read-only directory is filled before it is locked.
fn write_tree(
    reader: &Reader<'_>,
    cap: &ReadCap,
    root: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ExportError> {
    let mut bytes = 0u64;
    let mut directory_modes: Vec<(PathBuf, u32)> = Vec::new();
    if count_entries(reader, cap)? > EXPORT_ENTRIES_MAX as u64 {
        return Err(ExportError::TooManyEntries);
    }
    let mut stack = vec![(*cap, root.to_owned(), 0usize)];
    while let Some((cap, dir, depth)) = stack.pop() {
        if depth >= DIR_DEPTH_MAX {
            return Err(ExportError::TooDeep);
        }
        for entry in reader.list_dir(&cap)? {
            reader.check_entry(&entry)?;
            // Names were checked on decode: no '/', no "." or "..", so this stays inside.
            let path = dir.join(&entry.name);
            // Permission bits only: setuid, setgid and sticky bits from a tree someone else
            // wrote are not applied.
            let mode = entry.mode & 0o777;
            match entry.kind {
                EntryKind::File => {
                    let mut file = fs::File::create(&path).map_err(io(&path))?;
                    let base = bytes;
                    bytes += reader
                        .copy_file(&entry.cap, &mut file, &mut |done| progress(base + done))?;
                    file.set_permissions(fs::Permissions::from_mode(mode))
                        .map_err(io(&path))?;
                    file.sync_all().map_err(io(&path))?;
                }
                EntryKind::Directory => {
                    fs::create_dir(&path).map_err(io(&path))?;
                    directory_modes.push((path.clone(), mode));
                    stack.push((entry.cap, path, depth + 1));
                }
            }
        }
    }
    for (path, mode) in directory_modes.iter().rev() {
        fs::set_permissions(path, fs::Permissions::from_mode(*mode)).map_err(io(path))?;
        fs::File::open(path)
            .and_then(|dir| dir.sync_all())
            .map_err(io(path))?;
    }
    Ok(bytes)
}
