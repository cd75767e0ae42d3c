//! Store tests: every test body runs on both backends (memory and RocksDB), iroh-blobs style.

use super::gc::{collect, GcError};
use super::*;
use crate::object::format::{ChildRef, DirEntry, Entries, EntryKind, Node, NodeKind};
use crate::object::{Capability, ReadCap, Reader, WriteConfig, Writer};

/// A store on one backend, with a way to reopen it (a fresh process, for RocksDB).
struct Harness {
    store: Store,
    dir: Option<tempfile::TempDir>,
}

impl Harness {
    fn memory() -> Harness {
        Harness {
            store: Store::memory(),
            dir: None,
        }
    }

    fn rocksdb() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        Harness {
            store: Store::open_rocks(dir.path()).unwrap(),
            dir: Some(dir),
        }
    }

    /// Closes and reopens a durable store; a memory store is simply kept.
    fn reopen(&mut self) {
        if let Some(dir) = &self.dir {
            self.store = Store::memory(); // drop the RocksDB handle (and its lock) first
            self.store = Store::open_rocks(dir.path()).unwrap();
        }
    }

    fn put(&self, content: &[u8]) -> ReadCap {
        let mut writer = Writer::new(&self.store, WriteConfig::default(), None);
        let (cap, _) = writer.put_file(content, &mut |_| {}).unwrap();
        writer.finish(Some(cap)).unwrap();
        cap
    }

    fn read(&self, cap: &ReadCap) -> Result<Vec<u8>, crate::object::ReadError> {
        let mut out = Vec::new();
        Reader::new(&self.store).copy_file(cap, &mut out, &mut |_| {})?;
        Ok(out)
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn memory() {
                super::$name(super::Harness::memory());
            }
            #[test]
            fn rocksdb() {
                super::$name(super::Harness::rocksdb());
            }
        }
    )*};
}

on_every_backend!(
    chunks_round_trip_and_survive_reopen,
    reads_recheck_ids,
    duplicate_chunks_are_stored_once,
    pins_survive_reopen,
    gc_keeps_what_pins_reach,
    gc_refuses_when_a_pinned_object_is_unreadable,
    gc_follows_an_object_also_reached_as_data,
    putting_again_repairs_a_damaged_chunk,
    chains_append_in_order_and_survive_reopen,
    scrub_finds_corrupt_chunks,
    verify_cap_checks_without_keys,
    reads_for_peers_catch_damage,
    gc_keeps_chunks_held_for_others,
);

fn chunks_round_trip_and_survive_reopen(mut h: Harness) {
    let content = pseudo_random(3 << 20, 1);
    let cap = h.put(&content);
    assert_eq!(h.read(&cap).unwrap(), content);
    let before = h.store.stats().unwrap();
    assert!(before.chunks >= 2, "{before:?}");
    h.reopen();
    assert_eq!(h.read(&cap).unwrap(), content);
    assert_eq!(h.store.stats().unwrap(), before);
}

fn reads_recheck_ids(h: Harness) {
    let id = crate::object::crypto::chunk_id(b"abc");
    assert!(matches!(h.store.get(&id), Err(StoreError::Missing(missing)) if missing == id));
    assert!(h.store.put_verified(id, b"abc".to_vec()).unwrap());
    assert_eq!(h.store.get(&id).unwrap(), b"abc");
    // Wrong bytes under the id, written past the checks as a failing disk would.
    h.store
        .backend()
        .write(WriteBatch {
            chunks: vec![(id, b"abd".to_vec())],
            ..WriteBatch::default()
        })
        .unwrap();
    assert!(matches!(h.store.get(&id), Err(StoreError::Corrupt(bad)) if bad == id));
    // And the checked entry point refuses them outright.
    let other = crate::object::crypto::chunk_id(b"xyz");
    assert!(matches!(
        h.store.put_verified(other, b"xy".to_vec()),
        Err(StoreError::Corrupt(_))
    ));
    assert!(!h.store.contains(&other).unwrap());
}

/// Bytes for peers are checked by the backend's checksums (RocksDB) or by hashing (memory):
/// either way, damage on the medium is an error, not bytes sent out.
#[allow(clippy::disallowed_methods)] // the test damages the files RocksDB wrote
fn reads_for_peers_catch_damage(mut h: Harness) {
    let content = pseudo_random(900_000, 9);
    h.put(&content);
    let (id, bytes) = h
        .store
        .chunk_ids()
        .unwrap()
        .into_iter()
        .map(|id| (id, h.store.get(&id).unwrap()))
        .max_by_key(|(_, bytes)| bytes.len())
        .unwrap();
    assert_eq!(h.store.get_for_peer(&id).unwrap(), bytes);
    let absent = crate::object::crypto::chunk_id(b"absent");
    assert!(matches!(
        h.store.get_for_peer(&absent),
        Err(StoreError::Missing(_))
    ));
    match &h.dir {
        None => {
            let mut wrong = bytes.clone();
            wrong[1000] ^= 1;
            let batch = WriteBatch {
                chunks: vec![(id, wrong)],
                ..WriteBatch::default()
            };
            h.store.backend().write(batch).unwrap();
        }
        Some(dir) => {
            // Flip one bit of the chunk where RocksDB keeps it (a blob file), as bit rot would.
            let window = &bytes[5000..5032];
            let mut flipped = false;
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let mut file = std::fs::read(&path).unwrap();
                if let Some(at) = file.windows(32).position(|w| w == window) {
                    file[at + 7] ^= 0x10;
                    std::fs::write(&path, &file).unwrap();
                    flipped = true;
                }
            }
            assert!(flipped, "the chunk's bytes were not found on disk");
            h.reopen();
        }
    }
    assert!(h.store.get_for_peer(&id).is_err());
    assert!(h.store.get(&id).is_err());
}

fn duplicate_chunks_are_stored_once(h: Harness) {
    let content = pseudo_random(2 << 20, 2);
    h.put(&content);
    let first = h.store.stats().unwrap();
    h.put(&content);
    assert_eq!(h.store.stats().unwrap(), first);
    let id = crate::object::crypto::chunk_id(b"same");
    let batch = WriteBatch {
        chunks: vec![(id, b"same".to_vec()), (id, b"same".to_vec())],
        ..WriteBatch::default()
    };
    assert_eq!(h.store.write(batch).unwrap(), 1);
    assert_eq!(h.store.stats().unwrap().chunks, first.chunks + 1);
}

fn pins_survive_reopen(mut h: Harness) {
    let a = h.put(b"pinned");
    assert_eq!(h.store.pins().unwrap(), vec![a.id]);
    h.reopen();
    assert_eq!(h.store.pins().unwrap(), vec![a.id]);
    h.store.unpin(a.id).unwrap();
    h.reopen();
    assert!(h.store.pins().unwrap().is_empty());
}

fn gc_keeps_what_pins_reach(h: Harness) {
    let shared = pseudo_random(1 << 20, 3);
    let kept = h.put(&[shared.clone(), pseudo_random(1 << 20, 4)].concat());
    let dropped = h.put(&[shared, pseudo_random(1 << 20, 5)].concat());
    // A directory over the kept file: its pin must keep the file too.
    let mut writer = Writer::new(&h.store, WriteConfig::default(), None);
    let entry = DirEntry {
        name: "f".into(),
        kind: EntryKind::File,
        mode: 0o600,
        cap: kept,
    };
    let dir = writer.put_directory(vec![entry]).unwrap();
    writer.finish(Some(dir)).unwrap();
    h.store.unpin(kept.id).unwrap();
    h.store.unpin(dropped.id).unwrap();

    let before = h.store.stats().unwrap();
    let report = collect(&h.store).unwrap();
    assert!(report.removed_chunks >= 2, "{report:?}");
    let after = h.store.stats().unwrap();
    assert_eq!(after.chunks, before.chunks - report.removed_chunks);
    assert_eq!(after.chunks, report.kept_chunks);
    assert!(h.read(&kept).is_ok());
    assert!(matches!(
        h.read(&dropped),
        Err(crate::object::ReadError::Store(StoreError::Missing(_)))
    ));
    // A second run finds nothing more to do.
    assert_eq!(collect(&h.store).unwrap().removed_chunks, 0);
}

/// Chunks marked held for another peer survive gc (and a reopen) while marked; a dry run
/// deletes nothing; released, they are collected like any unpinned chunk.
fn gc_keeps_chunks_held_for_others(mut h: Harness) {
    let theirs = h.put(&pseudo_random(600_000, 8));
    h.store.unpin(theirs.id).unwrap();
    let (ids, _) = crate::store::gc::tree(&h.store, theirs.id).unwrap();
    for id in &ids {
        h.store.hold_for(*id, [7; 32]).unwrap();
    }
    let junk = h.put(b"nobody needs this");
    h.store.unpin(junk.id).unwrap();
    h.reopen();
    assert_eq!(h.store.held().unwrap().len(), ids.len());
    let before = h.store.stats().unwrap();
    let (planned, doomed) = crate::store::gc::dry_run(&h.store).unwrap();
    assert!(planned.dry_run);
    let (junk_ids, _) = crate::store::gc::tree(&h.store, junk.id).unwrap();
    assert_eq!(doomed, junk_ids.iter().copied().collect::<Vec<_>>());
    assert_eq!(h.store.stats().unwrap(), before);
    let report = collect(&h.store).unwrap();
    assert_eq!(report.removed_chunks, junk_ids.len() as u64);
    assert_eq!(report.kept_for_others, ids.len() as u64);
    assert!(h.read(&theirs).is_ok());
    let all: Vec<_> = ids.iter().copied().collect();
    h.store.release(&all).unwrap();
    assert!(h.store.held().unwrap().is_empty());
    assert_eq!(collect(&h.store).unwrap().removed_chunks, ids.len() as u64);
}

fn gc_refuses_when_a_pinned_object_is_unreadable(h: Harness) {
    let cap = h.put(&pseudo_random(100_000, 6));
    // Unpinned garbage that a working collection would remove.
    let mut writer = Writer::new(&h.store, WriteConfig::default(), None);
    writer
        .put_file(&b"unpinned garbage"[..], &mut |_| {})
        .unwrap();
    writer.finish(None).unwrap();
    h.store.backend().delete(&[cap.id]).unwrap();
    let before = h.store.stats().unwrap();
    assert!(matches!(collect(&h.store), Err(GcError::Unreadable { id, .. }) if id == cap.id));
    assert_eq!(h.store.stats().unwrap(), before, "nothing may be deleted");
}

fn gc_follows_an_object_also_reached_as_data(h: Harness) {
    // A pinned directory, and a pinned hostile object that calls the directory's
    // subdirectory a data chunk: the subdirectory's own chunks must survive either way.
    let file = h.put(&pseudo_random(300_000, 9));
    let mut writer = Writer::new(&h.store, WriteConfig::default(), None);
    let entry = |name: &str, kind, cap| DirEntry {
        name: name.into(),
        kind,
        mode: 0o755,
        cap,
    };
    let sub = writer
        .put_directory(vec![entry("f", EntryKind::File, file)])
        .unwrap();
    let top = writer
        .put_directory(vec![entry("sub", EntryKind::Directory, sub)])
        .unwrap();
    writer.finish(Some(top)).unwrap();
    h.store.unpin(file.id).unwrap();
    let liar = Node {
        kind: NodeKind::File,
        level: 0,
        total: 1,
        entries: Entries::Refs(vec![ChildRef {
            id: sub.id,
            key: sub.key,
            covered: 1,
        }]),
    }
    .seal(None);
    h.store.put_verified(liar.id, liar.stored).unwrap();
    h.store.pin(liar.id).unwrap();
    collect(&h.store).unwrap();
    assert!(
        h.read(&file).is_ok(),
        "the pinned directory's file was collected"
    );
}

fn putting_again_repairs_a_damaged_chunk(h: Harness) {
    let content = pseudo_random(700_000, 10);
    let cap = h.put(&content);
    let victim = h
        .store
        .chunk_ids()
        .unwrap()
        .into_iter()
        .find(|id| *id != cap.id)
        .unwrap();
    h.store
        .backend()
        .write(WriteBatch {
            chunks: vec![(victim, vec![0; 40])],
            ..WriteBatch::default()
        })
        .unwrap();
    assert!(h.read(&cap).is_err());
    assert_eq!(h.put(&content), cap);
    assert_eq!(h.read(&cap).unwrap(), content);
}

fn scrub_finds_corrupt_chunks(h: Harness) {
    h.put(&pseudo_random(1 << 20, 7));
    assert!(h.store.scrub().unwrap().is_empty());
    let victim = h.store.chunk_ids().unwrap()[0];
    h.store
        .backend()
        .write(WriteBatch {
            chunks: vec![(victim, vec![1, 2, 3])],
            ..WriteBatch::default()
        })
        .unwrap();
    assert_eq!(h.store.scrub().unwrap(), vec![victim]);
}

fn verify_cap_checks_without_keys(h: Harness) {
    let cap = h.put(&pseudo_random(2 << 20, 8));
    let reader = Reader::new(&h.store);
    let by_ids = reader
        .verify(&Capability::Verify(cap.verify_cap()))
        .unwrap();
    let by_keys = reader.verify(&Capability::Read(cap)).unwrap();
    assert_eq!(by_ids.chunks, h.store.stats().unwrap().chunks);
    assert_eq!(by_ids, by_keys);
    let victim = h
        .store
        .chunk_ids()
        .unwrap()
        .into_iter()
        .find(|id| *id != cap.id)
        .unwrap();
    h.store.backend().delete(&[victim]).unwrap();
    for check in [Capability::Verify(cap.verify_cap()), Capability::Read(cap)] {
        let error = reader.verify(&check).unwrap_err();
        assert_eq!(error.chunk(), Some(victim), "{error}");
        assert!(error.to_string().contains(&victim.to_string()), "{error}");
    }
}

fn chains_append_in_order_and_survive_reopen(mut h: Harness) {
    use crate::chain::agreement::{accept, complete, finish, propose};
    use crate::chain::{log, verify_chain, Outcome, Service, Transaction};
    use ed25519_dalek::SigningKey;
    let (me, other) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    );
    let owner = me.verifying_key().to_bytes();
    let mut theirs = None;
    for i in 0..5u64 {
        let tx = Transaction {
            service: Service::ChunkServed,
            bytes: i,
            creds: i,
            seconds: 0,
            time: i,
            outcome: Outcome::Delivered,
            commitment: [0; 32],
        };
        let proposal = propose(
            &me,
            log::head(&h.store, &owner).unwrap().as_ref(),
            other.verifying_key().to_bytes(),
            tx,
        );
        let (acceptance, pending) = accept(&other, theirs.as_ref(), &proposal).unwrap();
        let (mine, completion) = complete(&me, &proposal, &acceptance).unwrap();
        theirs = Some(finish(pending, &completion).unwrap());
        log::append(&h.store, &mine).unwrap();
        // The same record again, or one out of place, is refused.
        assert!(log::append(&h.store, &mine).is_err());
    }
    h.reopen();
    let chain = log::read(&h.store, &owner, 1, 100).unwrap();
    assert_eq!(chain.len(), 5);
    verify_chain(&chain).unwrap();
    assert_eq!(log::read(&h.store, &owner, 4, 100).unwrap().len(), 2);
    assert_eq!(log::head(&h.store, &owner).unwrap().map(|r| r.seq), Some(5));
    assert!(log::head(&h.store, &[9; 32]).unwrap().is_none());
}
