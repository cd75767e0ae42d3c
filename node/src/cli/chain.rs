//! `cryptosphere chain show | export | verify`: this node's chain (and chains of other peers
//! it holds), the chain file format, and offline verification of a chain file.

// Host code: it reads and writes files on the user's behalf, and draws the node's identity
// key from the operating system once.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{Failure, ENVIRONMENT, INTEGRITY, USAGE};
use crate::chain::json::record_json;
use crate::chain::{log, verify_chain, Record, RECORD_BYTES};
use crate::ids::{decode_base32, encode_base32};
use crate::store::{Store, StoreError};

/// First bytes of a chain file; the format version follows, then whole records.
pub const CHAIN_FILE_MAGIC: [u8; 4] = *b"CSCH";
pub const CHAIN_FILE_VERSION: u8 = 1;
pub(crate) const IDENTITY_KEY: &[u8] = b"identity_seed";
/// Records read per page when walking a chain.
const PAGE_RECORDS: usize = 4096;

#[derive(Debug, Args)]
pub struct ChainArgs {
    #[command(subcommand)]
    pub command: ChainCommand,
}

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Print a chain: this node's own, or a peer's that this node holds.
    Show {
        /// The peer's public key (base32); default: this node.
        #[arg(long, value_name = "ID")]
        peer: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write this node's chain to FILE (a chain file, see docs/chain-format.md).
    Export {
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Check a chain file; on failure exit 1 naming the first bad record and why.
    Verify { file: PathBuf },
}

#[derive(Debug, thiserror::Error)]
enum ChainCliError {
    #[error("{0} is not a peer id: {1}")]
    BadPeer(String, crate::ids::Base32Error),
    #[error("the file does not start with a chain file header (\"CSCH\" and version {CHAIN_FILE_VERSION})")]
    Header,
    #[error(
        "the file ends inside record {index}: {len} bytes are left, a record is {RECORD_BYTES}"
    )]
    Truncated { index: usize, len: usize },
    #[error(
        "the record at position {index} of the file (counting from 0) cannot be decoded: {fault}"
    )]
    Decode {
        index: usize,
        fault: crate::chain::RecordError,
    },
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("the stored identity is {0} bytes, not 32")]
    Identity(usize),
}

fn store_failure(context: &str) -> impl Fn(StoreError) -> Failure + '_ {
    move |e| Failure::new(ENVIRONMENT, context, e)
}

/// The identity seed an earlier version kept in the store itself (before a data directory
/// had one `identity.key` for the command line and the node), if any.
pub fn stored_identity(store: &Store) -> Result<Option<[u8; 32]>, Failure> {
    let fail = store_failure("cannot read this node's identity");
    let Some(seed) = store
        .backend()
        .meta_get(IDENTITY_KEY)
        .map_err(|e| fail(e.into()))?
    else {
        return Ok(None);
    };
    let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
        Failure::new(
            INTEGRITY,
            "cannot read this node's identity",
            ChainCliError::Identity(seed.len()),
        )
    })?;
    Ok(Some(seed))
}

fn whole_chain(store: &Store, owner: &[u8; 32]) -> Result<Vec<Record>, Failure> {
    let mut records = Vec::new();
    loop {
        let page = log::read(store, owner, records.len() as u64 + 1, PAGE_RECORDS)
            .map_err(|e| Failure::new(INTEGRITY, "cannot read the chain", e))?;
        let done = page.len() < PAGE_RECORDS;
        records.extend(page);
        if done {
            return Ok(records);
        }
    }
}

/// Parses a chain file into records.
fn read_file(bytes: &[u8]) -> Result<Vec<Record>, ChainCliError> {
    let body = bytes
        .strip_prefix(&CHAIN_FILE_MAGIC[..])
        .and_then(|rest| rest.strip_prefix(&[CHAIN_FILE_VERSION][..]))
        .ok_or(ChainCliError::Header)?;
    body.chunks(RECORD_BYTES)
        .enumerate()
        .map(|(index, chunk)| {
            if chunk.len() < RECORD_BYTES {
                return Err(ChainCliError::Truncated {
                    index,
                    len: chunk.len(),
                });
            }
            Record::from_bytes(chunk).map_err(|fault| ChainCliError::Decode { index, fault })
        })
        .collect()
}

/// Runs a chain command on `store`. `me` is the owner of "this node's chain": the data
/// directory's identity.
pub fn run(
    store: &Store,
    me: [u8; 32],
    args: ChainArgs,
    stdout: &mut dyn Write,
) -> Result<(), Failure> {
    let out = |e: std::io::Error| Failure::new(ENVIRONMENT, "cannot write the output", e);
    let me = || Ok::<[u8; 32], Failure>(me);
    match args.command {
        ChainCommand::Show { peer, json } => {
            let owner = match peer {
                Some(text) => decode_base32(&text).map_err(|e| {
                    Failure::new(
                        USAGE,
                        "cannot show that chain",
                        ChainCliError::BadPeer(text.clone(), e),
                    )
                })?,
                None => me()?,
            };
            let records = whole_chain(store, &owner)?;
            if json {
                let value = serde_json::json!({ "owner": encode_base32(&owner), "records": records.iter().map(record_json).collect::<Vec<_>>() });
                writeln!(stdout, "{value}").map_err(out)?;
            } else {
                writeln!(
                    stdout,
                    "chain of {} ({} records)",
                    encode_base32(&owner),
                    records.len()
                )
                .map_err(out)?;
                for r in &records {
                    writeln!(
                        stdout,
                        "{:>8} {:<9} {:<17} {:>12} bytes {:>12} creds {:<9} with {}…#{}",
                        r.seq,
                        format!("{:?}", r.role).to_lowercase(),
                        format!("{:?}", r.tx.service),
                        r.tx.bytes,
                        r.tx.creds,
                        format!("{:?}", r.tx.outcome).to_lowercase(),
                        &encode_base32(&r.counterparty)[..12],
                        r.counterparty_seq
                    )
                    .map_err(out)?;
                }
            }
        }
        ChainCommand::Export { file, force } => {
            if file.exists() && !force {
                return Err(Failure::new(
                    USAGE,
                    format!("cannot export to {}", file.display()),
                    ChainCliError::Exists(file.clone()),
                ));
            }
            let owner = me()?;
            let records = whole_chain(store, &owner)?;
            let mut bytes = CHAIN_FILE_MAGIC.to_vec();
            bytes.push(CHAIN_FILE_VERSION);
            for r in &records {
                bytes.extend_from_slice(&r.to_bytes());
            }
            std::fs::write(&file, bytes).map_err(|e| {
                Failure::new(ENVIRONMENT, format!("cannot write {}", file.display()), e)
            })?;
            writeln!(
                stdout,
                "exported {} records of {}",
                records.len(),
                encode_base32(&owner)
            )
            .map_err(out)?;
        }
        ChainCommand::Verify { file } => verify_file(&file, stdout)?,
    }
    Ok(())
}

/// Checks a chain file: every record decodes and the chain follows the rules, both
/// signatures included; on failure the first bad record is named.
pub fn verify_file(file: &Path, stdout: &mut dyn Write) -> Result<(), Failure> {
    let out = |e: std::io::Error| Failure::new(ENVIRONMENT, "cannot write the output", e);
    let invalid = |e| {
        Failure::new(
            INTEGRITY,
            format!("{} is not a valid chain", file.display()),
            e,
        )
    };
    // The header first: a file that is not a chain file is not read through.
    if !has_header(file)? {
        return Err(invalid(ChainCliError::Header));
    }
    let bytes = read_limited(file)?;
    let records = read_file(&bytes).map_err(|e| {
        Failure::new(
            INTEGRITY,
            format!("{} is not a valid chain", file.display()),
            e,
        )
    })?;
    verify_chain(&records).map_err(|e| {
        Failure::new(
            INTEGRITY,
            format!("{} is not a valid chain", file.display()),
            e,
        )
    })?;
    let owner = records
        .first()
        .map_or_else(|| "(empty)".to_owned(), |r| encode_base32(&r.owner));
    writeln!(stdout, "ok: {} records of {owner} verified", records.len()).map_err(out)
}

/// Does `path` start with the chain file header?
fn has_header(path: &Path) -> Result<bool, Failure> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(5).read_to_end(&mut head))
        .map_err(|e| Failure::new(USAGE, format!("cannot read {}", path.display()), e))?;
    Ok(head[..] == [&CHAIN_FILE_MAGIC[..], &[CHAIN_FILE_VERSION][..]].concat()[..])
}

/// Chain files beyond this many bytes are refused (about 3.5 million records).
const CHAIN_FILE_BYTES_MAX: u64 = 1 << 30;

fn read_limited(path: &Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let context = || format!("cannot read {}", path.display());
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(CHAIN_FILE_BYTES_MAX + 1).read_to_end(&mut bytes))
        .map_err(|e| Failure::new(USAGE, context(), e))?;
    if bytes.len() as u64 > CHAIN_FILE_BYTES_MAX {
        return Err(Failure::new(
            USAGE,
            context(),
            std::io::Error::other("the file is larger than 1 GiB"),
        ));
    }
    Ok(bytes)
}
