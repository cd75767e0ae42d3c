//! RocksDB backend, the node's durable store.
//!
//! Column families:
//! - `chunks`: two key spaces, `c‖id` → stored bytes (BlobDB: large values live in blob
//!   files, so compactions do not rewrite them) and `i‖id` → stored length (u64 LE, inline),
//!   so listing and stats never touch a blob;
//! - `pins`: root id → empty;
//! - `meta`: `store_format` → version (u32 LE);
//! - `chain`: chain records, owner ‖ sequence number (big-endian) → record;
//! - `held`: chunk id → the peer it is held for (synced through the WAL; garbage collection
//!   keeps these chunks). A chunk held for another peer goes through the WAL just before its
//!   mark, so the mark's fsync makes both durable before `Stored` is answered; a mark that
//!   outlives its chunk anyway (a damaged disk) is found at the next start, and the owner told.
//!
//! Crash safety. Our own chunks are written without the WAL: each batch goes to the `chunks`
//! memtable, which a flush persists as a whole or not at all, and a chunk and its index entry
//! share that memtable. Before any pin is written, the `chunks` column family is flushed; the
//! pin then goes through the WAL with fsync. So after `kill -9` (or power loss) every pinned
//! tree is complete, an interrupted put leaves at most whole unpinned chunks, and a chunk
//! never exists without its index entry or the other way round. Reads recheck every id.
//! Skipping the WAL for chunks halves the bytes a put writes.

use std::path::Path;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions,
    WriteOptions, DB,
};

use super::{BackendError, StoreBackend, WriteBatch};
use crate::ids::ChunkId;

pub const CF_CHUNKS: &str = "chunks";
pub const CF_PINS: &str = "pins";
pub const CF_META: &str = "meta";
pub const CF_CHAIN: &str = "chain";
/// Chunks held for other peers: key the chunk id, value the peer it is held for.
pub const CF_HELD: &str = "held";
const COLUMN_FAMILIES: [&str; 5] = [CF_CHUNKS, CF_PINS, CF_META, CF_CHAIN, CF_HELD];

/// Key prefixes inside `chunks`.
const CHUNK_PREFIX: u8 = b'c';
const INDEX_PREFIX: u8 = b'i';

/// Version of this layout, kept under `meta/store_format`.
pub const STORE_FORMAT_VERSION: u32 = 1;
const META_FORMAT_KEY: &[u8] = b"store_format";

/// Values at least this large go to blob files (index entries stay inline).
const BLOB_BYTES_MIN: u64 = 4096;
/// Memtable size per column family; with two memtables this bounds write buffering.
const WRITE_BUFFER_BYTES: usize = 16 << 20;

/// The RocksDB-backed store.
///
/// Full disks. A write that fails for lack of space leaves RocksDB refusing every later
/// write (its background error), and this RocksDB has no way to resume in place. So the
/// backend remembers the failure (its [`StoreBackend::health`]), and the next write first
/// reopens the database, which clears the error and removes the files a failed flush left;
/// reads go on meanwhile. What was durable stays; chunks written without the WAL and not yet
/// flushed are lost as in a crash (pins never point at those).
#[derive(Debug)]
pub struct RocksBackend {
    dir: std::path::PathBuf,
    /// `None` only while a reopen failed (every call retries it).
    db: RwLock<Option<DB>>,
    /// Why a write last failed for lack of space, until a reopen succeeds.
    no_space: Mutex<Option<String>>,
}

/// The open database, for one call.
struct Guard<'a>(RwLockReadGuard<'a, Option<DB>>);

impl std::ops::Deref for Guard<'_> {
    type Target = DB;

    fn deref(&self) -> &DB {
        match self.0.as_ref() {
            Some(db) => db,
            None => unreachable!("a guard is made only over an open database"),
        }
    }
}

fn family<'a>(db: &'a DB, name: &'static str) -> &'a ColumnFamily {
    match db.cf_handle(name) {
        Some(cf) => cf,
        None => unreachable!("column family {name} is created on open"),
    }
}

/// Does RocksDB's message say the disk is full?
fn says_no_space(message: &str) -> bool {
    message.contains("No space left") || message.contains("NoSpace")
}

fn rocks(operation: &'static str) -> impl Fn(rocksdb::Error) -> BackendError {
    move |e| {
        let message = e.into_string();
        if says_no_space(&message) {
            BackendError::NoSpace { operation, message }
        } else {
            BackendError::Rocks { operation, message }
        }
    }
}

fn key(prefix: u8, id: &ChunkId) -> [u8; 33] {
    let mut key = [prefix; 33];
    key[1..].copy_from_slice(&id.0);
    key
}

/// Key of a chain record: owner, then the sequence number big-endian (so keys sort by it).
fn chain_key(owner: &[u8; 32], seq: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(owner);
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn parse_chain_key(key: &[u8]) -> Option<([u8; 32], u64)> {
    let owner: [u8; 32] = key.get(..32)?.try_into().ok()?;
    let seq: [u8; 8] = key.get(32..40)?.try_into().ok()?;
    Some((owner, u64::from_be_bytes(seq)))
}

fn id_of(key: &[u8]) -> Result<ChunkId, BackendError> {
    <[u8; 32]>::try_from(key.get(1..).unwrap_or_default())
        .map(ChunkId)
        .map_err(|_| BackendError::BadIndex(format!("key of {} bytes", key.len())))
}

impl RocksBackend {
    /// Opens or creates the store in `dir`, and checks its format version.
    pub fn open(dir: &Path) -> Result<RocksBackend, BackendError> {
        let db = open_db(dir)?;
        check_format(&db)?;
        Ok(RocksBackend {
            dir: dir.to_owned(),
            db: RwLock::new(Some(db)),
            no_space: Mutex::new(None),
        })
    }

    /// The open database (reopened first if an earlier reopen failed).
    fn read(&self) -> Result<Guard<'_>, BackendError> {
        {
            let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
            if guard.is_some() {
                return Ok(Guard(guard));
            }
        }
        self.reopen()?;
        self.read_open()
    }

    fn read_open(&self) -> Result<Guard<'_>, BackendError> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_some() {
            Ok(Guard(guard))
        } else {
            Err(BackendError::Rocks {
                operation: "reopen the store",
                message: "it could not be reopened after the disk filled".into(),
            })
        }
    }

    /// The database for a write: reopened first if a write failed for lack of space.
    fn write_db(&self) -> Result<Guard<'_>, BackendError> {
        let full = self
            .no_space
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if full {
            self.reopen()?;
        }
        self.read()
    }

    /// Closes and opens the database again (waiting for calls in progress to end).
    fn reopen(&self) -> Result<(), BackendError> {
        let mut guard = self.db.write().unwrap_or_else(|e| e.into_inner());
        let full = self
            .no_space
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if guard.is_some() && !full {
            // Another call reopened it while this one waited.
            return Ok(());
        }
        // Closing flushes what the memtables hold, if there is room for it now.
        drop(guard.take());
        let db = open_db(&self.dir)?;
        check_format(&db)?;
        *guard = Some(db);
        *self.no_space.lock().unwrap_or_else(|e| e.into_inner()) = None;
        drop(guard);
        tracing::info!(dir = %self.dir.display(), "store reopened after a write failed for lack of space");
        Ok(())
    }

    /// Notes a failed write: one for lack of space makes the next write reopen the store.
    fn note(&self, error: BackendError) -> BackendError {
        if let BackendError::NoSpace { message, .. } = &error {
            *self.no_space.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        }
        error
    }
}

fn open_db(dir: &Path) -> Result<DB, BackendError> {
    {
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_max_background_jobs(2);
        let descriptors = COLUMN_FAMILIES.iter().map(|name| {
            let mut options = Options::default();
            options.set_write_buffer_size(WRITE_BUFFER_BYTES);
            options.set_max_write_buffer_number(2);
            if *name == CF_CHUNKS {
                options.set_enable_blob_files(true);
                options.set_min_blob_size(BLOB_BYTES_MIN);
                options.set_blob_file_size(256 << 20);
                // Blob garbage collection rewrites live blobs during compactions; a put never
                // needs that, so it runs only when `gc` asks for it (see `compact`).
                options.set_enable_blob_gc(false);
            }
            ColumnFamilyDescriptor::new(*name, options)
        });
        DB::open_cf_descriptors(&db_options, dir, descriptors).map_err(|e| {
            let message = e.into_string();
            if message.contains("LOCK") || message.contains("lock") {
                BackendError::Locked(dir.display().to_string())
            } else if says_no_space(&message) {
                BackendError::NoSpace {
                    operation: "open the data directory",
                    message,
                }
            } else {
                BackendError::Rocks {
                    operation: "open the data directory",
                    message,
                }
            }
        })
    }
}

fn check_format(db: &DB) -> Result<(), BackendError> {
    {
        let meta = family(db, CF_META);
        let found = db
            .get_cf(meta, META_FORMAT_KEY)
            .map_err(rocks("read the store format"))?;
        match found {
            None => {
                let mut options = WriteOptions::default();
                options.set_sync(true);
                db.put_cf_opt(
                    meta,
                    META_FORMAT_KEY,
                    STORE_FORMAT_VERSION.to_le_bytes(),
                    &options,
                )
                .map_err(rocks("write the store format"))
            }
            Some(found) if found == STORE_FORMAT_VERSION.to_le_bytes() => Ok(()),
            Some(found) => Err(BackendError::FormatVersion {
                found: match <[u8; 4]>::try_from(found.as_slice()) {
                    Ok(bytes) => u32::from_le_bytes(bytes).to_string(),
                    Err(_) => format!("(unreadable: {} bytes)", found.len()),
                },
                expected: STORE_FORMAT_VERSION,
            }),
        }
    }
}

impl StoreBackend for RocksBackend {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn health(&self) -> Option<String> {
        self.no_space
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|message| format!("a write failed for lack of space ({message}); the next write reopens the store"))
    }

    fn get(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, BackendError> {
        let db = self.read()?;
        // RocksDB's checksums are not verified on this path: the store rechecks
        // SHA-256(bytes) == id on every read, so damage anywhere (value, blob record, index)
        // can at worst make a chunk missing or wrong, and wrong is reported as corrupt.
        let mut options = ReadOptions::default();
        options.set_verify_checksums(false);
        db.get_cf_opt(family(&db, CF_CHUNKS), key(CHUNK_PREFIX, id), &options)
            .map_err(rocks("read a chunk"))
    }

    fn get_checksummed(&self, id: &ChunkId) -> Option<Result<Option<Vec<u8>>, BackendError>> {
        let db = match self.read() {
            Ok(db) => db,
            Err(e) => return Some(Err(e)),
        };
        let mut options = ReadOptions::default();
        options.set_verify_checksums(true);
        Some(
            db.get_cf_opt(family(&db, CF_CHUNKS), key(CHUNK_PREFIX, id), &options)
                .map_err(rocks("read a chunk")),
        )
    }

    fn contains(&self, id: &ChunkId) -> Result<bool, BackendError> {
        let db = self.read()?;
        let found = db
            .get_pinned_cf(family(&db, CF_CHUNKS), key(INDEX_PREFIX, id))
            .map_err(rocks("read the chunk index"))?
            .is_some();
        Ok(found)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), BackendError> {
        let db = self.write_db()?;
        // One small RocksDB batch per chunk (the chunk and its index entry, atomically):
        // a chunk is valid on its own, and a batch of one chunk reuses the allocator's
        // buffers instead of growing one large write batch through fresh pages.
        let mut options = WriteOptions::default();
        options.disable_wal(!batch.logged);
        let cf = family(&db, CF_CHUNKS);
        for (id, bytes) in &batch.chunks {
            let mut chunk = rocksdb::WriteBatch::default();
            chunk.put_cf(
                cf,
                key(INDEX_PREFIX, id),
                (bytes.len() as u64).to_le_bytes(),
            );
            chunk.put_cf(cf, key(CHUNK_PREFIX, id), bytes);
            db.write_opt(chunk, &options)
                .map_err(|e| self.note(rocks("write a chunk")(e)))?;
        }
        let pins_change = !batch.pins.is_empty() || !batch.unpins.is_empty();
        if batch.sync || pins_change {
            // Chunks first, durably; only then may a pin point at them.
            db.flush_cf(family(&db, CF_CHUNKS))
                .map_err(|e| self.note(rocks("flush chunks")(e)))?;
        }
        if pins_change {
            let mut pins = rocksdb::WriteBatch::default();
            for id in &batch.pins {
                pins.put_cf(family(&db, CF_PINS), id.0, []);
            }
            for id in &batch.unpins {
                pins.delete_cf(family(&db, CF_PINS), id.0);
            }
            let mut options = WriteOptions::default();
            options.set_sync(true);
            db.write_opt(pins, &options)
                .map_err(|e| self.note(rocks("write pins")(e)))?;
        }
        Ok(())
    }

    fn delete(&self, ids: &[ChunkId]) -> Result<(), BackendError> {
        let db = self.write_db()?;
        let mut batch = rocksdb::WriteBatch::default();
        let cf = family(&db, CF_CHUNKS);
        for id in ids {
            batch.delete_cf(cf, key(CHUNK_PREFIX, id));
            batch.delete_cf(cf, key(INDEX_PREFIX, id));
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        db.write_opt(batch, &options)
            .map_err(|e| self.note(rocks("delete chunks")(e)))
    }

    fn for_each_chunk(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<(), BackendError> {
        let db = self.read()?;
        let start = [INDEX_PREFIX];
        let mode = IteratorMode::From(&start, Direction::Forward);
        for item in db.iterator_cf(family(&db, CF_CHUNKS), mode) {
            let (key, value) = item.map_err(rocks("scan the chunk index"))?;
            if key.first() != Some(&INDEX_PREFIX) {
                break;
            }
            let id = id_of(&key)?;
            let len = <[u8; 8]>::try_from(&value[..])
                .map_err(|_| BackendError::BadIndex(id.to_string()))?;
            visit(id, u64::from_le_bytes(len));
        }
        Ok(())
    }

    fn held_put(&self, id: &ChunkId, owner: &[u8; 32]) -> Result<(), BackendError> {
        let db = self.write_db()?;
        let mut options = WriteOptions::default();
        options.set_sync(true);
        db.put_cf_opt(family(&db, CF_HELD), id.0, owner, &options)
            .map_err(|e| self.note(rocks("mark a chunk held for another peer")(e)))
    }

    fn held_delete(&self, ids: &[ChunkId]) -> Result<(), BackendError> {
        let db = self.write_db()?;
        let mut batch = rocksdb::WriteBatch::default();
        let cf = family(&db, CF_HELD);
        for id in ids {
            batch.delete_cf(cf, id.0);
        }
        db.write(batch)
            .map_err(|e| self.note(rocks("unmark chunks held for other peers")(e)))
    }

    fn held(&self) -> Result<Vec<(ChunkId, [u8; 32])>, BackendError> {
        let db = self.read()?;
        let mut held = Vec::new();
        for item in db.iterator_cf(family(&db, CF_HELD), IteratorMode::Start) {
            let (key, value) = item.map_err(rocks("scan the chunks held for others"))?;
            let bad = || BackendError::BadIndex(format!("held entry of {} bytes", key.len()));
            let id = <[u8; 32]>::try_from(&key[..]).map_err(|_| bad())?;
            let owner = <[u8; 32]>::try_from(&value[..]).map_err(|_| bad())?;
            held.push((ChunkId(id), owner));
        }
        Ok(held)
    }

    fn pins(&self) -> Result<Vec<ChunkId>, BackendError> {
        let db = self.read()?;
        let mut pins = Vec::new();
        for item in db.iterator_cf(family(&db, CF_PINS), IteratorMode::Start) {
            let (key, _) = item.map_err(rocks("scan the pins"))?;
            let id = <[u8; 32]>::try_from(&key[..])
                .map_err(|_| BackendError::BadIndex(format!("pin key of {} bytes", key.len())))?;
            pins.push(ChunkId(id));
        }
        Ok(pins)
    }

    fn compact(&self) -> Result<(), BackendError> {
        let db = self.write_db()?;
        // Relocate live blobs out of every blob file during this compaction, so files that
        // hold only deleted chunks are dropped, then switch blob GC off again.
        let chunks = family(&db, CF_CHUNKS);
        let gc_on = [
            ("enable_blob_garbage_collection", "true"),
            ("blob_garbage_collection_age_cutoff", "1.0"),
        ];
        db.set_options_cf(chunks, &gc_on)
            .map_err(|e| self.note(rocks("enable blob garbage collection")(e)))?;
        db.compact_range_cf(chunks, None::<&[u8]>, None::<&[u8]>);
        db.set_options_cf(chunks, &[("enable_blob_garbage_collection", "false")])
            .map_err(|e| self.note(rocks("disable blob garbage collection")(e)))
    }
    fn meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let db = self.read()?;
        db.get_cf(family(&db, CF_META), key)
            .map_err(rocks("read store metadata"))
    }

    fn meta_put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        let db = self.write_db()?;
        let mut options = WriteOptions::default();
        options.set_sync(true);
        db.put_cf_opt(family(&db, CF_META), key, value, &options)
            .map_err(|e| self.note(rocks("write store metadata")(e)))
    }

    fn meta_delete(&self, key: &[u8]) -> Result<(), BackendError> {
        let db = self.write_db()?;
        let mut options = WriteOptions::default();
        options.set_sync(true);
        db.delete_cf_opt(family(&db, CF_META), key, &options)
            .map_err(|e| self.note(rocks("delete store metadata")(e)))
    }

    fn meta_scan(&self, prefix: &[u8]) -> Result<Vec<super::MetaEntry>, BackendError> {
        let db = self.read()?;
        let mode = IteratorMode::From(prefix, Direction::Forward);
        let mut found = Vec::new();
        for item in db.iterator_cf(family(&db, CF_META), mode) {
            let (key, value) = item.map_err(rocks("scan store metadata"))?;
            if !key.starts_with(prefix) {
                break;
            }
            found.push((key.to_vec(), value.to_vec()));
        }
        Ok(found)
    }

    fn chain_put(&self, owner: &[u8; 32], seq: u64, record: &[u8]) -> Result<(), BackendError> {
        let db = self.write_db()?;
        // One put: logged to the WAL before it is applied, so after a crash a chain ends at
        // its last complete record.
        db.put_cf(family(&db, CF_CHAIN), chain_key(owner, seq), record)
            .map_err(|e| self.note(rocks("append to a chain")(e)))
    }

    fn chain_range(
        &self,
        owner: &[u8; 32],
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, BackendError> {
        let db = self.read()?;
        let start = chain_key(owner, from_seq);
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut out = Vec::new();
        for item in db.iterator_cf(family(&db, CF_CHAIN), mode) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(rocks("read a chain"))?;
            match parse_chain_key(&key) {
                Some((key_owner, seq)) if key_owner == *owner => out.push((seq, value.to_vec())),
                _ => break,
            }
        }
        Ok(out)
    }

    fn chain_last(&self, owner: &[u8; 32]) -> Result<Option<(u64, Vec<u8>)>, BackendError> {
        let db = self.read()?;
        let end = chain_key(owner, u64::MAX);
        let mode = IteratorMode::From(&end, Direction::Reverse);
        let last = db.iterator_cf(family(&db, CF_CHAIN), mode).next();
        let found = match last {
            Some(item) => {
                let (key, value) = item.map_err(rocks("read a chain"))?;
                parse_chain_key(&key)
                    .filter(|(o, _)| o == owner)
                    .map(|(_, seq)| (seq, value.to_vec()))
            }
            None => None,
        };
        Ok(found)
    }
}
