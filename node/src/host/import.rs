//! Importing a file or a directory tree from the file system into a store.

// Host code: it reads and writes files on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::limits::DIR_DEPTH_MAX;
use crate::object::format::{DirEntry, EntryKind, MODE_MAX};
use crate::object::write::{WriteConfig, WriteError, WriteStats, Writer};
use crate::object::{ConvergenceSecret, ReadCap};
use crate::store::Store;

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub secret: Option<ConvergenceSecret>,
    pub config: WriteConfig,
    /// Pin the root so garbage collection keeps it (the command line always does).
    pub pin: bool,
}

/// What an import produced.
#[derive(Debug, Clone, Copy)]
pub struct PutOutcome {
    pub cap: ReadCap,
    pub kind: EntryKind,
    pub stats: WriteStats,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} has a name that is not valid UTF-8")]
    NonUtf8Name(PathBuf),
    #[error("{path} is a {what}; only regular files and directories can be put")]
    Unsupported { path: PathBuf, what: &'static str },
    #[error("{0} is nested more than {DIR_DEPTH_MAX} directories deep")]
    TooDeep(PathBuf),
    #[error("cannot store {path}: {source}")]
    Write { path: PathBuf, source: WriteError },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_owned(),
        source,
    }
}

fn kind_of(path: &Path) -> Result<(EntryKind, fs::Metadata), ImportError> {
    let metadata = fs::symlink_metadata(path).map_err(io(path))?;
    let file_type = metadata.file_type();
    let kind = if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else {
        let what = if file_type.is_symlink() {
            "symbolic link"
        } else {
            "special file"
        };
        return Err(ImportError::Unsupported {
            path: path.to_owned(),
            what,
        });
    };
    Ok((kind, metadata))
}

/// Total bytes of regular files under `path` (for a progress bar). Errors are left for the
/// import itself to report.
pub fn input_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![(path.to_owned(), 0usize)];
    while let Some((path, depth)) = stack.pop() {
        let Ok(metadata) = fs::symlink_metadata(&path) else {
            continue;
        };
        if metadata.is_file() {
            total += metadata.len();
        } else if metadata.is_dir() && depth < DIR_DEPTH_MAX {
            let Ok(entries) = fs::read_dir(&path) else {
                continue;
            };
            stack.extend(entries.flatten().map(|e| (e.path(), depth + 1)));
        }
    }
    total
}

/// One directory being imported: entries still to visit and entries already stored.
struct Frame {
    path: PathBuf,
    name: String,
    mode: u32,
    pending: Vec<(String, PathBuf)>,
    done: Vec<DirEntry>,
}

impl Frame {
    fn open(path: PathBuf, name: String, mode: u32) -> Result<Frame, ImportError> {
        let mut pending = Vec::new();
        for entry in fs::read_dir(&path).map_err(io(&path))? {
            let entry = entry.map_err(io(&path))?;
            let child = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| ImportError::NonUtf8Name(child.clone()))?;
            pending.push((name, child));
        }
        // Visit in a fixed order so progress and errors do not depend on the file system.
        pending.sort();
        pending.reverse();
        Ok(Frame {
            path,
            name,
            mode,
            pending,
            done: Vec::new(),
        })
    }
}

fn mode_of(metadata: &fs::Metadata) -> u32 {
    metadata.permissions().mode() & MODE_MAX
}

/// Imports `path` (a file or a directory) and returns its read capability.
pub fn put_path(
    store: &Store,
    path: &Path,
    options: &PutOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<PutOutcome, ImportError> {
    let mut writer = Writer::new(store, options.config.clone(), options.secret.clone());
    let (kind, metadata) = kind_of(path)?;
    let cap = match kind {
        EntryKind::File => put_file(&mut writer, path, progress)?,
        EntryKind::Directory => {
            let mut frames = vec![Frame::open(
                path.to_owned(),
                String::new(),
                mode_of(&metadata),
            )?];
            loop {
                let Some(frame) = frames.last_mut() else {
                    unreachable!("the loop returns when the root frame is done")
                };
                if let Some((name, child)) = frame.pending.pop() {
                    let (kind, metadata) = kind_of(&child)?;
                    let mode = mode_of(&metadata);
                    match kind {
                        EntryKind::File => {
                            let cap = put_file(&mut writer, &child, progress)?;
                            frame.done.push(DirEntry {
                                name,
                                kind,
                                mode,
                                cap,
                            });
                        }
                        EntryKind::Directory => {
                            if frames.len() >= DIR_DEPTH_MAX {
                                return Err(ImportError::TooDeep(child));
                            }
                            frames.push(Frame::open(child, name, mode)?);
                        }
                    }
                    continue;
                }
                let Some(frame) = frames.pop() else {
                    unreachable!("a frame was just seen")
                };
                let cap =
                    writer
                        .put_directory(frame.done)
                        .map_err(|source| ImportError::Write {
                            path: frame.path.clone(),
                            source,
                        })?;
                match frames.last_mut() {
                    Some(parent) => parent.done.push(DirEntry {
                        name: frame.name,
                        kind: EntryKind::Directory,
                        mode: frame.mode,
                        cap,
                    }),
                    None => break cap,
                }
            }
        }
    };
    let stats = writer
        .finish(options.pin.then_some(cap))
        .map_err(|source| ImportError::Write {
            path: path.to_owned(),
            source,
        })?;
    Ok(PutOutcome { cap, kind, stats })
}

/// `progress` is told the bytes imported so far, across all files of this import.
fn put_file(
    writer: &mut Writer<'_>,
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<ReadCap, ImportError> {
    let file = fs::File::open(path).map_err(io(path))?;
    let (cap, _size) = writer
        .put_file(file, progress)
        .map_err(|source| match source {
            WriteError::Input(source) => ImportError::Io {
                path: path.to_owned(),
                source,
            },
            source => ImportError::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    Ok(cap)
}
