//! The `cryptosphere` command line: argument parsing, the data directory, progress bars,
//! output formats and exit codes. It calls the library and the local host; it decides
//! nothing about storage or encoding itself.

// Host code: it reads and writes files on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::host::export::{get_to_path, ExportError};
use crate::host::import::{input_bytes, put_path, ImportError, PutOptions};
use crate::host::tarball::TarError;
use crate::limits::SECRET_BYTES_MAX;
use crate::object::format::EntryKind;
use crate::object::read::ReadError;
use crate::object::write::WriteError;
use crate::object::{Capability, ConvergenceSecret, Reader, VerifyCap};
use crate::store::gc::{self, GcError};
use crate::store::{BackendError, Store, StoreError};

/// Inputs larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_BYTES_MIN: u64 = 4 << 20;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  integrity failure: a chunk is missing, corrupt or malformed (the message names it)
  2  bad usage or bad input: arguments, capability, paths, an output that already exists
  3  environment failure: the data directory or the file system could not be used";

/// Cryptosphere: a global encrypted datastore. This command works on a local store.
#[derive(Debug, Parser)]
#[command(name = "cryptosphere", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Data directory (default: $XDG_DATA_HOME/cryptosphere, else ~/.local/share/cryptosphere).
    #[arg(long, global = true, value_name = "DIR", env = "CRYPTOSPHERE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a file or a directory; prints its read capability on stdout.
    #[command(after_help = EXIT_CODES)]
    Put(PutArgs),
    /// Write the file or directory a read capability names to --output.
    #[command(after_help = EXIT_CODES)]
    Get(GetArgs),
    /// List a directory: mode, kind, size in bytes (files) and name, one entry per line.
    #[command(after_help = EXIT_CODES)]
    Ls(CapArg),
    /// Check every chunk a capability reaches (or, with --all, every chunk held).
    #[command(after_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Show what the store holds.
    #[command(after_help = EXIT_CODES)]
    Stats(JsonArg),
    /// Delete every chunk that no pinned root reaches, except chunks held for other peers.
    #[command(after_help = EXIT_CODES)]
    Gc(GcArgs),
    /// Keep a tree (and everything it reaches) through garbage collection.
    #[command(after_help = EXIT_CODES)]
    Pin(CapArg),
    /// Let garbage collection take a tree that nothing else pins.
    #[command(after_help = EXIT_CODES)]
    Unpin(CapArg),
    /// Show, export or verify long-chain certificates.
    #[command(after_help = EXIT_CODES)]
    Chain(chain::ChainArgs),
    /// Run a network node.
    #[command(after_help = EXIT_CODES)]
    Node(node::NodeArgs),
    /// Print the peers a running node knows: score and its parts, ledger, contract, and why
    /// the node refuses a peer if it does (a table, or the API's JSON with --json).
    #[command(after_help = EXIT_CODES)]
    Peers(node::ContractsArgs),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// File or directory to store.
    pub path: PathBuf,
    /// File whose bytes (16 to 4096) key the encryption, opting out of global deduplication.
    #[arg(long, value_name = "FILE")]
    pub convergence_secret_file: Option<PathBuf>,
    /// Put through a running node's API (http://HOST:PORT) instead of the local store; the
    /// node replicates the tree. A directory travels as a tar stream.
    #[arg(
        long,
        value_name = "URL",
        env = "CRYPTOSPHERE_API",
        conflicts_with = "convergence_secret_file"
    )]
    pub api: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Read capability (cs:r:...).
    pub cap: Capability,
    /// Where to write the file or directory.
    #[arg(long, short, value_name = "PATH")]
    pub output: PathBuf,
    /// Replace --output if it exists.
    #[arg(long)]
    pub force: bool,
    /// Get through a running node's API (http://HOST:PORT), which fetches missing chunks
    /// from its peers. A directory travels as a tar stream.
    #[arg(long, value_name = "URL", env = "CRYPTOSPHERE_API")]
    pub api: Option<String>,
}

#[derive(Debug, Args)]
pub struct CapArg {
    /// Capability (cs:r:... or, where no reading is needed, cs:v:...).
    pub cap: Capability,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Capability to verify; a verify capability (cs:v:...) checks ids and links only.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub cap: Option<Capability>,
    /// Recheck every chunk the store holds instead.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Say what would be deleted (each chunk id, then the totals) and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A failed command: what was being done, the typed cause (none when the sentence says it
/// all), and the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    context: String,
    cause: Option<Box<dyn std::error::Error>>,
}

impl Failure {
    fn new(
        code: u8,
        context: impl Into<String>,
        cause: impl std::error::Error + 'static,
    ) -> Failure {
        Failure {
            code,
            context: context.into(),
            cause: Some(Box::new(cause)),
        }
    }

    /// A failure told in one sentence, with no chain of causes.
    fn sentence(code: u8, sentence: impl Into<String>) -> Failure {
        Failure {
            code,
            context: sentence.into(),
            cause: None,
        }
    }

    /// Prints "error: <context>" and the chain of causes.
    fn report(&self) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "error: {}", self.context);
        let mut cause: Option<&dyn std::error::Error> = self.cause.as_deref();
        while let Some(error) = cause {
            let _ = writeln!(stderr, "  cause: {error}");
            cause = error.source();
        }
    }
}

const INTEGRITY: u8 = 1;
const USAGE: u8 = 2;
const ENVIRONMENT: u8 = 3;

pub mod chain;
mod economy;
mod node;

fn store_code(error: &StoreError) -> u8 {
    match error {
        StoreError::Backend(_) => ENVIRONMENT,
        _ => INTEGRITY,
    }
}

fn read_code(error: &ReadError) -> u8 {
    match error {
        ReadError::WrongKind { .. } => USAGE,
        ReadError::Output(_) => ENVIRONMENT,
        ReadError::Store(error) => store_code(error),
        _ => INTEGRITY,
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.code)
        }
    }
}

/// The data directory: --data-dir, then $CRYPTOSPHERE_DATA_DIR (both via clap), then XDG.
pub fn data_dir(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit.or_else(|| {
        let xdg = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let base = xdg.or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share"))
        })?;
        Some(base.join("cryptosphere"))
    })
}

#[derive(Debug, thiserror::Error)]
#[error("neither --data-dir, CRYPTOSPHERE_DATA_DIR, XDG_DATA_HOME nor HOME is set")]
struct NoDataDir;

fn open_store(explicit: Option<PathBuf>) -> Result<Store, Failure> {
    let dir =
        data_dir(explicit).ok_or_else(|| Failure::new(USAGE, "no data directory", NoDataDir))?;
    open_store_in(&dir)
}

/// Opens the store of data directory `dir` (the node's layout, [`crate::datadir`]). While
/// a node runs on `dir` it holds the store: the command says so and points to its API.
fn open_store_in(dir: &Path) -> Result<Store, Failure> {
    let store_dir = crate::datadir::store_dir(dir);
    let context = || format!("cannot open the store in {}", store_dir.display());
    std::fs::create_dir_all(&store_dir).map_err(|e| Failure::new(ENVIRONMENT, context(), e))?;
    Store::open_rocks(&store_dir).map_err(|e| match &e {
        StoreError::Backend(BackendError::Locked(_)) => match crate::datadir::running_api(dir) {
            Some(api) => Failure::sentence(
                ENVIRONMENT,
                format!(
                    "a node is running on {}, so local commands cannot use its store: go \
                     through the node with --api {api} (put, get, node status), or stop it \
                     first",
                    dir.display()
                ),
            ),
            None => Failure::sentence(
                ENVIRONMENT,
                format!(
                    "the store in {} is in use by another cryptosphere process (a node \
                     running on it, or another command): wait for it, or if it is a node, \
                     go through it with --api URL",
                    dir.display()
                ),
            ),
        },
        StoreError::Backend(BackendError::FormatVersion { .. }) => {
            Failure::new(USAGE, context(), e)
        }
        _ => Failure::new(ENVIRONMENT, context(), e),
    })
}

/// The exit code for a failed get.
pub(crate) fn export_code(e: &ExportError) -> u8 {
    match e {
        ExportError::Exists(_) | ExportError::TooDeep | ExportError::NotAName(_) => USAGE,
        ExportError::TooManyEntries => INTEGRITY,
        ExportError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidFilename => {
            USAGE
        }
        ExportError::Read(e) => read_code(e),
        ExportError::Tar(TarError::Io { .. }) => ENVIRONMENT,
        // A tree the node sent that breaks the rules, or a transfer that broke off.
        ExportError::Tar(_) => INTEGRITY,
        _ => ENVIRONMENT,
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    // These talk to a node (or are one) and never open the local store themselves.
    match &cli.command {
        Command::Node(args) => return node::run_node(cli.data_dir, args),
        Command::Peers(args) => return economy::print_peers(args, cli.data_dir.clone()),
        Command::Put(PutArgs {
            api: Some(api),
            path,
            ..
        }) => return node::put_via_api(api, path),
        Command::Get(GetArgs {
            api: Some(api),
            cap,
            output,
            force,
        }) => return node::get_via_api(api, cap, output, *force),
        _ => {}
    }
    if let Command::Chain(args) = cli.command {
        return chain_command(cli.data_dir, args);
    }
    let store = open_store(cli.data_dir)?;
    let mut stdout = std::io::stdout().lock();
    let out = |e: std::io::Error| Failure::new(ENVIRONMENT, "cannot write to stdout", e);
    match cli.command {
        Command::Put(args) => {
            let secret = match &args.convergence_secret_file {
                Some(path) => Some(read_secret(path)?),
                None => None,
            };
            let options = PutOptions {
                secret,
                pin: true,
                ..PutOptions::default()
            };
            let bar = progress_bar(input_bytes(&args.path));
            let outcome = put_path(&store, &args.path, &options, &mut |done| {
                bar.set_position(done)
            })
            .map_err(|e| {
                let code = match &e {
                    ImportError::Write {
                        source: WriteError::Store(e),
                        ..
                    } => store_code(e),
                    _ => USAGE,
                };
                Failure::new(code, format!("cannot put {}", args.path.display()), e)
            })?;
            bar.finish_and_clear();
            writeln!(stdout, "{}", outcome.cap).map_err(out)?;
        }
        Command::Get(args) => {
            let cap = readable(&args.cap)?;
            get_to_path(&store, &cap, &args.output, args.force, &mut |_| {}).map_err(|e| {
                let code = export_code(&e);
                Failure::new(
                    code,
                    format!("cannot get {} into {}", args.cap, args.output.display()),
                    e,
                )
            })?;
        }
        Command::Ls(args) => {
            let cap = readable(&args.cap)?;
            let reader = Reader::new(&store);
            let fail =
                |e: ReadError| Failure::new(read_code(&e), format!("cannot list {}", args.cap), e);
            for entry in reader.list_dir(&cap).map_err(fail)? {
                let node = reader.check_entry(&entry).map_err(fail)?;
                let (kind, size) = match entry.kind {
                    EntryKind::File => ("file", node.total.to_string()),
                    EntryKind::Directory => ("dir", "-".to_owned()),
                };
                // Names come from whoever wrote the tree: escape control characters rather
                // than let them drive the terminal.
                let name: String = if entry.name.chars().any(char::is_control) {
                    entry.name.escape_debug().collect()
                } else {
                    entry.name.clone()
                };
                writeln!(stdout, "{:04o} {kind:4} {size:>12} {name}", entry.mode).map_err(out)?;
            }
        }
        Command::Verify(args) => match args.cap {
            Some(cap) => {
                let report = Reader::new(&store).verify(&cap).map_err(|e| {
                    Failure::new(read_code(&e), format!("verification of {cap} failed"), e)
                })?;
                writeln!(
                    stdout,
                    "ok: {} chunks, {} bytes verified",
                    report.chunks, report.bytes
                )
                .map_err(out)?;
            }
            None => {
                let fail =
                    |e: StoreError| Failure::new(store_code(&e), "cannot scrub the store", e);
                let bad = store.scrub().map_err(fail)?;
                if let Some(first) = bad.first() {
                    for id in &bad {
                        writeln!(stdout, "corrupt: {id}").map_err(out)?;
                    }
                    return Err(fail(StoreError::Corrupt(*first)));
                }
                let stats = store.stats().map_err(fail)?;
                writeln!(stdout, "ok: all {} chunks verified", stats.chunks).map_err(out)?;
            }
        },
        Command::Stats(args) => {
            let stats = store
                .stats()
                .map_err(|e| Failure::new(store_code(&e), "cannot read store statistics", e))?;
            if args.json {
                writeln!(stdout, "{}", serde_json::json!(stats)).map_err(out)?;
            } else {
                writeln!(
                    stdout,
                    "chunks: {}\nbytes:  {}\npins:   {}",
                    stats.chunks, stats.bytes, stats.pins
                )
                .map_err(out)?;
            }
        }
        Command::Gc(args) => {
            let fail = |e: GcError| {
                let code = match &e {
                    GcError::Store(e) => store_code(e),
                    _ => INTEGRITY,
                };
                Failure::new(code, "garbage collection stopped", e)
            };
            let (report, doomed) = if args.dry_run {
                gc::dry_run(&store).map_err(fail)?
            } else {
                (gc::collect(&store).map_err(fail)?, Vec::new())
            };
            if args.json {
                let mut value = serde_json::json!(report);
                if args.dry_run {
                    value["would_remove"] = doomed.iter().map(|id| id.to_string()).collect();
                }
                writeln!(stdout, "{value}").map_err(out)?;
            } else {
                for id in &doomed {
                    writeln!(stdout, "would remove {id}").map_err(out)?;
                }
                let verb = if args.dry_run {
                    "would remove"
                } else {
                    "removed"
                };
                writeln!(
                    stdout,
                    "{verb} {} chunks ({} bytes), kept {} ({} held for other peers)",
                    report.removed_chunks,
                    report.removed_bytes,
                    report.kept_chunks,
                    report.kept_for_others
                )
                .map_err(out)?;
            }
        }
        Command::Pin(args) => {
            // Pin only a whole tree: its root must be an object and every chunk it reaches
            // must be here and intact (checked by ids and links, so verify caps work too).
            let check = Capability::Verify(VerifyCap { id: args.cap.id() });
            Reader::new(&store).verify(&check).map_err(|e| {
                Failure::new(
                    read_code(&e),
                    format!("cannot pin {}: its tree is not whole here", args.cap),
                    e,
                )
            })?;
            store
                .pin(args.cap.id())
                .map_err(|e| Failure::new(store_code(&e), "cannot pin", e))?;
        }
        Command::Unpin(args) => {
            store
                .unpin(args.cap.id())
                .map_err(|e| Failure::new(store_code(&e), "cannot unpin", e))?;
        }
        // Handled above, before the local store is opened.
        Command::Chain(_) | Command::Node(_) | Command::Peers(_) => {}
    }
    Ok(())
}

/// `chain show | export | verify` on a data directory: the chain of the directory's identity,
/// `identity.key`, which the node uses too (made here if no node ever ran on it; a seed an
/// earlier version kept in the store becomes that file, so its chain stays this node's).
fn chain_command(explicit: Option<PathBuf>, args: chain::ChainArgs) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    // Verifying a chain file needs no store.
    if let chain::ChainCommand::Verify { file } = &args.command {
        return chain::verify_file(file, &mut stdout);
    }
    let dir =
        data_dir(explicit).ok_or_else(|| Failure::new(USAGE, "no data directory", NoDataDir))?;
    let key_path = crate::datadir::identity_file(&dir);
    let store = open_store_in(&dir)?;
    let unreadable = |e| Failure::new(USAGE, "cannot read the node's identity", e);
    if !key_path.exists() {
        if let Some(seed) = chain::stored_identity(&store)? {
            crate::net::identity::create(&key_path, &seed).map_err(unreadable)?;
        }
    }
    let key = crate::net::identity::load_or_create(&key_path).map_err(unreadable)?;
    chain::run(&store, key.verifying_key().to_bytes(), args, &mut stdout)
}

fn readable(cap: &Capability) -> Result<crate::object::ReadCap, Failure> {
    cap.readable()
        .map_err(|e| Failure::new(USAGE, format!("cannot read {cap}"), e))
}

#[derive(Debug, thiserror::Error)]
#[error("the file is larger than {SECRET_BYTES_MAX} bytes")]
struct SecretTooLarge;

fn read_secret(path: &Path) -> Result<ConvergenceSecret, Failure> {
    let context = || format!("cannot use {} as a convergence secret", path.display());
    // Read at most one byte past the limit, whatever the file claims to be (/dev/zero).
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(SECRET_BYTES_MAX as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| Failure::new(USAGE, context(), e))?;
    if bytes.len() > SECRET_BYTES_MAX {
        return Err(Failure::new(USAGE, context(), SecretTooLarge));
    }
    ConvergenceSecret::new(bytes).map_err(|e| Failure::new(USAGE, context(), e))
}

/// A byte progress bar on stderr, shown only for large inputs on a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if total < PROGRESS_BYTES_MIN || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
