//! RocksDB backend, the node's durable store.
//!
//! Column families:
//! - `chunks`: id → stored bytes, with BlobDB so large values live in blob files and
//!   compaction does not rewrite them;
//! - `chunk_index`: id → stored length (u64 LE), small, so listing and stats never touch blobs;
//! - `pins`: root id → empty;
//! - `meta`: `store_format` → version (u32 LE);
//! - `chain`: reserved for the long-chain certificate (a later issue).
//!
//! Crash safety: a chunk and its index entry, and a put's pin, go in one RocksDB write batch,
//! logged to the WAL before it is applied, so after `kill -9` each batch is all there or not
//! there at all. The writer writes a tree's chunks before its pin; reads recheck every id.

use std::path::Path;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, IteratorMode, Options, WriteOptions, DB};

use super::{BackendError, StoreBackend, WriteBatch};
use crate::ids::ChunkId;

pub const CF_CHUNKS: &str = "chunks";
pub const CF_CHUNK_INDEX: &str = "chunk_index";
pub const CF_PINS: &str = "pins";
pub const CF_META: &str = "meta";
pub const CF_CHAIN: &str = "chain";
const COLUMN_FAMILIES: [&str; 5] = [CF_CHUNKS, CF_CHUNK_INDEX, CF_PINS, CF_META, CF_CHAIN];

/// Version of this layout, kept under `meta/store_format`.
pub const STORE_FORMAT_VERSION: u32 = 1;
const META_FORMAT_KEY: &[u8] = b"store_format";

/// Values at least this large go to blob files.
const BLOB_BYTES_MIN: u64 = 4096;
/// Memtable size per column family; with two memtables this bounds write buffering.
const WRITE_BUFFER_BYTES: usize = 32 << 20;

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
                options.set_enable_blob_gc(true);
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
        match self
            .db
            .get_cf(meta, META_FORMAT_KEY)
            .map_err(rocks("read the store format"))?
        {
            None => self
                .db
                .put_cf(meta, META_FORMAT_KEY, STORE_FORMAT_VERSION.to_le_bytes())
                .map_err(rocks("write the store format")),
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
        self.db
            .get_cf(self.cf(CF_CHUNKS), id.0)
            .map_err(rocks("read a chunk"))
    }

    fn contains(&self, id: &ChunkId) -> Result<bool, BackendError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_CHUNK_INDEX), id.0)
            .map_err(rocks("read the chunk index"))?
            .is_some())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), BackendError> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for (id, bytes) in &batch.chunks {
            rocks_batch.put_cf(self.cf(CF_CHUNKS), id.0, bytes);
            rocks_batch.put_cf(
                self.cf(CF_CHUNK_INDEX),
                id.0,
                (bytes.len() as u64).to_le_bytes(),
            );
        }
        for id in &batch.pins {
            rocks_batch.put_cf(self.cf(CF_PINS), id.0, []);
        }
        for id in &batch.unpins {
            rocks_batch.delete_cf(self.cf(CF_PINS), id.0);
        }
        let mut options = WriteOptions::default();
        options.set_sync(batch.sync);
        self.db
            .write_opt(rocks_batch, &options)
            .map_err(rocks("write a batch"))
    }

    fn delete(&self, ids: &[ChunkId]) -> Result<(), BackendError> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for id in ids {
            rocks_batch.delete_cf(self.cf(CF_CHUNKS), id.0);
            rocks_batch.delete_cf(self.cf(CF_CHUNK_INDEX), id.0);
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(rocks_batch, &options)
            .map_err(rocks("delete chunks"))
    }

    fn for_each_chunk(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<(), BackendError> {
        for item in self
            .db
            .iterator_cf(self.cf(CF_CHUNK_INDEX), IteratorMode::Start)
        {
            let (key, value) = item.map_err(rocks("scan the chunk index"))?;
            let id = <[u8; 32]>::try_from(&key[..])
                .map_err(|_| BackendError::BadIndex(format!("key of {} bytes", key.len())))?;
            let len = <[u8; 8]>::try_from(&value[..])
                .map_err(|_| BackendError::BadIndex(ChunkId(id).to_string()))?;
            visit(ChunkId(id), u64::from_le_bytes(len));
        }
        Ok(())
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
        for name in [CF_CHUNKS, CF_CHUNK_INDEX] {
            self.db
                .compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }
}
