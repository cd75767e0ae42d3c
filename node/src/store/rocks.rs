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
//!   keeps these chunks). A mark may outlive its chunk after a crash (the chunk went without
//!   the WAL); a mark without a chunk keeps nothing and costs 64 bytes.
//!
//! Crash safety. Chunks are written without the WAL: each batch goes to the `chunks`
//! memtable, which a flush persists as a whole or not at all, and a chunk and its index entry
//! share that memtable. Before any pin is written, the `chunks` column family is flushed; the
//! pin then goes through the WAL with fsync. So after `kill -9` (or power loss) every pinned
//! tree is complete, an interrupted put leaves at most whole unpinned chunks, and a chunk
//! never exists without its index entry or the other way round. Reads recheck every id.
//! Skipping the WAL for chunks halves the bytes a put writes.

use std::path::Path;

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
#[derive(Debug)]
pub struct RocksBackend {
    db: DB,
}

fn rocks(operation: &'static str) -> impl Fn(rocksdb::Error) -> BackendError {
    move |e| BackendError::Rocks {
        operation,
        message: e.into_string(),
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
        let db = DB::open_cf_descriptors(&db_options, dir, descriptors).map_err(|e| {
            let message = e.into_string();
            if message.contains("LOCK") || message.contains("lock") {
                BackendError::Locked(dir.display().to_string())
            } else {
                BackendError::Rocks {
                    operation: "open the data directory",
                    message,
                }
            }
        })?;
        let backend = RocksBackend { db };
        backend.check_format()?;
        Ok(backend)
    }

    fn cf(&self, name: &'static str) -> &ColumnFamily {
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            None => unreachable!("column family {name} is created on open"),
        }
    }

    fn check_format(&self) -> Result<(), BackendError> {
        let meta = self.cf(CF_META);
        let found = self
            .db
            .get_cf(meta, META_FORMAT_KEY)
            .map_err(rocks("read the store format"))?;
        match found {
            None => {
                let mut options = WriteOptions::default();
                options.set_sync(true);
                self.db
                    .put_cf_opt(
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

    fn get(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, BackendError> {
        // RocksDB's checksums are not verified on this path: the store rechecks
        // SHA-256(bytes) == id on every read, so damage anywhere (value, blob record, index)
        // can at worst make a chunk missing or wrong, and wrong is reported as corrupt.
        let mut options = ReadOptions::default();
        options.set_verify_checksums(false);
        self.db
            .get_cf_opt(self.cf(CF_CHUNKS), key(CHUNK_PREFIX, id), &options)
            .map_err(rocks("read a chunk"))
    }

    fn get_checksummed(&self, id: &ChunkId) -> Option<Result<Option<Vec<u8>>, BackendError>> {
        let mut options = ReadOptions::default();
        options.set_verify_checksums(true);
        Some(
            self.db
                .get_cf_opt(self.cf(CF_CHUNKS), key(CHUNK_PREFIX, id), &options)
                .map_err(rocks("read a chunk")),
        )
    }

    fn contains(&self, id: &ChunkId) -> Result<bool, BackendError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_CHUNKS), key(INDEX_PREFIX, id))
            .map_err(rocks("read the chunk index"))?
            .is_some())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), BackendError> {
        // One small RocksDB batch per chunk (the chunk and its index entry, atomically):
        // a chunk is valid on its own, and a batch of one chunk reuses the allocator's
        // buffers instead of growing one large write batch through fresh pages.
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        let cf = self.cf(CF_CHUNKS);
        for (id, bytes) in &batch.chunks {
            let mut chunk = rocksdb::WriteBatch::default();
            chunk.put_cf(
                cf,
                key(INDEX_PREFIX, id),
                (bytes.len() as u64).to_le_bytes(),
            );
            chunk.put_cf(cf, key(CHUNK_PREFIX, id), bytes);
            self.db
                .write_opt(chunk, &options)
                .map_err(rocks("write a chunk"))?;
        }
        let pins_change = !batch.pins.is_empty() || !batch.unpins.is_empty();
        if batch.sync || pins_change {
            // Chunks first, durably; only then may a pin point at them.
            self.db
                .flush_cf(self.cf(CF_CHUNKS))
                .map_err(rocks("flush chunks"))?;
        }
        if pins_change {
            let mut pins = rocksdb::WriteBatch::default();
            for id in &batch.pins {
                pins.put_cf(self.cf(CF_PINS), id.0, []);
            }
            for id in &batch.unpins {
                pins.delete_cf(self.cf(CF_PINS), id.0);
            }
            let mut options = WriteOptions::default();
            options.set_sync(true);
            self.db
                .write_opt(pins, &options)
                .map_err(rocks("write pins"))?;
        }
        Ok(())
    }

    fn delete(&self, ids: &[ChunkId]) -> Result<(), BackendError> {
        let mut batch = rocksdb::WriteBatch::default();
        let cf = self.cf(CF_CHUNKS);
        for id in ids {
            batch.delete_cf(cf, key(CHUNK_PREFIX, id));
            batch.delete_cf(cf, key(INDEX_PREFIX, id));
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(rocks("delete chunks"))
    }

    fn for_each_chunk(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<(), BackendError> {
        let start = [INDEX_PREFIX];
        let mode = IteratorMode::From(&start, Direction::Forward);
        for item in self.db.iterator_cf(self.cf(CF_CHUNKS), mode) {
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
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .put_cf_opt(self.cf(CF_HELD), id.0, owner, &options)
            .map_err(rocks("mark a chunk held for another peer"))
    }

    fn held_delete(&self, ids: &[ChunkId]) -> Result<(), BackendError> {
        let mut batch = rocksdb::WriteBatch::default();
        let cf = self.cf(CF_HELD);
        for id in ids {
            batch.delete_cf(cf, id.0);
        }
        self.db
            .write(batch)
            .map_err(rocks("unmark chunks held for other peers"))
    }

    fn held(&self) -> Result<Vec<(ChunkId, [u8; 32])>, BackendError> {
        let mut held = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_HELD), IteratorMode::Start) {
            let (key, value) = item.map_err(rocks("scan the chunks held for others"))?;
            let bad = || BackendError::BadIndex(format!("held entry of {} bytes", key.len()));
            let id = <[u8; 32]>::try_from(&key[..]).map_err(|_| bad())?;
            let owner = <[u8; 32]>::try_from(&value[..]).map_err(|_| bad())?;
            held.push((ChunkId(id), owner));
        }
        Ok(held)
    }

    fn pins(&self) -> Result<Vec<ChunkId>, BackendError> {
        let mut pins = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_PINS), IteratorMode::Start) {
            let (key, _) = item.map_err(rocks("scan the pins"))?;
            let id = <[u8; 32]>::try_from(&key[..])
                .map_err(|_| BackendError::BadIndex(format!("pin key of {} bytes", key.len())))?;
            pins.push(ChunkId(id));
        }
        Ok(pins)
    }

    fn compact(&self) -> Result<(), BackendError> {
        // Relocate live blobs out of every blob file during this compaction, so files that
        // hold only deleted chunks are dropped, then switch blob GC off again.
        let chunks = self.cf(CF_CHUNKS);
        let gc_on = [
            ("enable_blob_garbage_collection", "true"),
            ("blob_garbage_collection_age_cutoff", "1.0"),
        ];
        self.db
            .set_options_cf(chunks, &gc_on)
            .map_err(rocks("enable blob garbage collection"))?;
        self.db
            .compact_range_cf(chunks, None::<&[u8]>, None::<&[u8]>);
        self.db
            .set_options_cf(chunks, &[("enable_blob_garbage_collection", "false")])
            .map_err(rocks("disable blob garbage collection"))
    }
    fn meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.db
            .get_cf(self.cf(CF_META), key)
            .map_err(rocks("read store metadata"))
    }

    fn meta_put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .put_cf_opt(self.cf(CF_META), key, value, &options)
            .map_err(rocks("write store metadata"))
    }

    fn chain_put(&self, owner: &[u8; 32], seq: u64, record: &[u8]) -> Result<(), BackendError> {
        // One put: logged to the WAL before it is applied, so after a crash a chain ends at
        // its last complete record.
        self.db
            .put_cf(self.cf(CF_CHAIN), chain_key(owner, seq), record)
            .map_err(rocks("append to a chain"))
    }

    fn chain_range(
        &self,
        owner: &[u8; 32],
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, BackendError> {
        let start = chain_key(owner, from_seq);
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_CHAIN), mode) {
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
        let end = chain_key(owner, u64::MAX);
        let mode = IteratorMode::From(&end, Direction::Reverse);
        match self.db.iterator_cf(self.cf(CF_CHAIN), mode).next() {
            Some(item) => {
                let (key, value) = item.map_err(rocks("read a chain"))?;
                Ok(parse_chain_key(&key)
                    .filter(|(o, _)| o == owner)
                    .map(|(_, seq)| (seq, value.to_vec())))
            }
            None => Ok(None),
        }
    }
}
