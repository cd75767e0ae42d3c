//! Object-level behaviour through the public API: round trips, manifest splitting, dedup,
//! tampering and malformed input. Stores here are in memory; the store tests run both
//! backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cryptosphere::host::export::get_to_path;
use cryptosphere::host::import::{put_path, PutOptions};
use cryptosphere::ids::ChunkId;
use cryptosphere::limits::{CDC_MAX_BYTES, CDC_MIN_BYTES, CHUNK_STORED_BYTES_MAX};
use cryptosphere::object::format::{parse_links, DirEntry, EntryKind, LinkKind, Node, ObjectError};
use cryptosphere::object::{
    Capability, ConvergenceSecret, ReadCap, ReadError, Reader, WriteConfig, Writer,
};
use cryptosphere::store::{MemoryBackend, Store, StoreError};
use proptest::prelude::*;
use rand::{RngCore, SeedableRng};

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

fn put_with(
    store: &Store,
    content: &[u8],
    config: WriteConfig,
    secret: Option<ConvergenceSecret>,
) -> ReadCap {
    let mut writer = Writer::new(store, config, secret);
    let (cap, size) = writer.put_file(content, &mut |_| {}).unwrap();
    assert_eq!(size, content.len() as u64);
    writer.finish(Some(cap)).unwrap();
    cap
}

fn put(store: &Store, content: &[u8]) -> ReadCap {
    put_with(store, content, WriteConfig::default(), None)
}

fn read(store: &Store, cap: &ReadCap) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    Reader::new(store).copy_file(cap, &mut out, &mut |_| {})?;
    Ok(out)
}

/// Ids of the data chunks a file's tree reaches, found through the clear links alone.
fn data_chunks(store: &Store, root: ChunkId) -> Vec<ChunkId> {
    let mut data = Vec::new();
    let mut objects = vec![root];
    while let Some(id) = objects.pop() {
        let (links, _) = parse_links(&store.get(&id).unwrap()).unwrap();
        for link in links {
            match link.kind {
                LinkKind::Data => data.push(link.id),
                LinkKind::Object => objects.push(link.id),
            }
        }
    }
    data
}

#[test]
fn files_round_trip_at_every_boundary() {
    let store = Store::memory();
    let min = CDC_MIN_BYTES;
    let max = CDC_MAX_BYTES;
    let sizes = [
        0,
        1,
        2,
        min - 1,
        min,
        min + 1,
        2 * min - 1,
        2 * min,
        2 * min + 1,
        max - 1,
        max,
        max + 1,
        2 * max - 1,
        2 * max,
        2 * max + 1,
    ];
    for (seed, size) in sizes.into_iter().enumerate() {
        let content = random_bytes(size, seed as u64);
        let cap = put(&store, &content);
        assert_eq!(read(&store, &cap).unwrap(), content, "size {size}");
    }
    // Zeros: identical chunks within one file.
    let zeros = vec![0u8; 3 * max + 17];
    assert_eq!(read(&store, &put(&store, &zeros)).unwrap(), zeros);
}

#[test]
fn a_100_mib_file_round_trips_in_bounded_chunks() {
    let store = Store::memory();
    let content = random_bytes(100 << 20, 42);
    let cap = put(&store, &content);
    assert_eq!(read(&store, &cap).unwrap(), content);
    let chunks = data_chunks(&store, cap.id);
    assert!(chunks.len() > 100, "{} chunks", chunks.len());
    for id in store.chunk_ids().unwrap() {
        assert!(store.get(&id).unwrap().len() <= CHUNK_STORED_BYTES_MAX);
    }
}

#[test]
fn large_manifests_and_directories_are_split() {
    let store = Store::memory();
    let small_fanout = WriteConfig {
        fanout: 4,
        ..WriteConfig::default()
    };
    // ~24 chunks with fan-out 4: three levels of manifest.
    let content = random_bytes(6 << 20, 9);
    let cap = put_with(&store, &content, small_fanout.clone(), None);
    let root = Reader::new(&store).root(&cap).unwrap();
    assert!(root.level >= 2, "level {}", root.level);
    assert_eq!(read(&store, &cap).unwrap(), content);

    // 5,000 entries with 200-byte names exceed one 1 MiB object.
    let file = put(&store, b"x");
    let entries: Vec<DirEntry> = (0..5000)
        .map(|i| DirEntry {
            name: format!("{i:05}{}", "n".repeat(195)),
            kind: EntryKind::File,
            mode: 0o640,
            cap: file,
        })
        .collect();
    let mut writer = Writer::new(&store, WriteConfig::default(), None);
    let dir = writer.put_directory(entries.clone()).unwrap();
    writer.finish(Some(dir)).unwrap();
    assert!(Reader::new(&store).root(&dir).unwrap().level >= 1);
    assert_eq!(Reader::new(&store).list_dir(&dir).unwrap(), entries);
    for id in store.chunk_ids().unwrap() {
        assert!(store.get(&id).unwrap().len() <= CHUNK_STORED_BYTES_MAX);
    }
    // The same directory with fan-out 4 has several interior levels and lists the same.
    let mut writer = Writer::new(&store, small_fanout, None);
    let narrow = writer.put_directory(entries[..50].to_vec()).unwrap();
    writer.finish(None).unwrap();
    assert!(Reader::new(&store).root(&narrow).unwrap().level >= 2);
    assert_eq!(
        Reader::new(&store).list_dir(&narrow).unwrap(),
        entries[..50].to_vec()
    );
}

#[test]
fn same_file_twice_adds_no_chunk() {
    let store = Store::memory();
    let content = random_bytes(5 << 20, 10);
    let first = put(&store, &content);
    let stats = store.stats().unwrap();
    assert_eq!(put(&store, &content), first);
    assert_eq!(store.stats().unwrap(), stats);
}

#[test]
fn inserting_one_byte_at_the_front_reuses_most_chunks() {
    let store = Store::memory();
    let original = random_bytes(64 << 20, 11);
    let before = put(&store, &original);
    let mut edited = vec![0x5a];
    edited.extend_from_slice(&original);
    let after = put(&store, &edited);
    let old: BTreeSet<ChunkId> = data_chunks(&store, before.id).into_iter().collect();
    let new = data_chunks(&store, after.id);
    let reused = new.iter().filter(|id| old.contains(id)).count();
    let ratio = reused as f64 / new.len() as f64;
    assert!(
        ratio >= 0.9,
        "reused {reused} of {} chunks ({ratio:.3})",
        new.len()
    );
}

#[test]
fn convergence_is_global_unless_a_secret_is_given() {
    let content = random_bytes(300_000, 12);
    let (alice, bob) = (Store::memory(), Store::memory());
    assert_eq!(put(&alice, &content), put(&bob, &content));
    let secret_a = ConvergenceSecret::new(b"alice's convergence secret".to_vec()).unwrap();
    let secret_b = ConvergenceSecret::new(b"bob's other convergence secret".to_vec()).unwrap();
    let a = put_with(
        &alice,
        &content,
        WriteConfig::default(),
        Some(secret_a.clone()),
    );
    let b = put_with(&bob, &content, WriteConfig::default(), Some(secret_b));
    assert_ne!(a, b);
    assert_ne!(a, put(&alice, &content));
    assert_eq!(
        a,
        put_with(&bob, &content, WriteConfig::default(), Some(secret_a))
    );
    assert_eq!(read(&alice, &a).unwrap(), content);
}

/// A small tree on disk: a file over several chunks, a nested directory and an empty file.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("docs/deeper")).unwrap();
    fs::write(root.join("big.bin"), random_bytes(700_000, 13)).unwrap();
    fs::write(root.join("docs/readme.txt"), b"read me").unwrap();
    fs::write(root.join("docs/deeper/empty"), b"").unwrap();
}

fn assert_no_partial_output(dir: &Path, output: &Path) {
    assert!(!output.exists(), "{} was left behind", output.display());
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.starts_with(".cryptosphere-partial"),
            "partial output {name} left behind"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Flipping any bit of any stored chunk makes get and verify fail, naming that chunk, and
    /// get leaves nothing under the requested name.
    #[test]
    fn tampering_with_any_bit_is_caught(chunk_pick in any::<prop::sample::Index>(), bit_pick in any::<prop::sample::Index>()) {
        let work = tempfile::tempdir().unwrap();
        sample_tree(&work.path().join("in"));
        let backend = MemoryBackend::default();
        let store = Store::new(backend.clone());
        let cap = put_path(&store, &work.path().join("in"), &PutOptions::default(), &mut |_| {}).unwrap().cap;
        let ids = store.chunk_ids().unwrap();
        let victim = ids[chunk_pick.index(ids.len())];
        let bits = store.get(&victim).unwrap().len() * 8;
        prop_assert!(backend.flip_bit(&victim, bit_pick.index(bits)));

        let output = work.path().join("out");
        let error = get_to_path(&store, &cap, &output, false, &mut |_| {}).unwrap_err();
        prop_assert!(error.to_string().contains(&victim.to_string()), "{}", error);
        assert_no_partial_output(work.path(), &output);

        for check in [Capability::Read(cap), Capability::Verify(cap.verify_cap())] {
            let error = Reader::new(&store).verify(&check).unwrap_err();
            prop_assert_eq!(error.chunk(), Some(victim), "{}", error);
            prop_assert!(error.to_string().contains(&victim.to_string()));
        }
    }

    /// Random directory trees survive put and get with their contents, names and modes.
    #[test]
    fn random_directory_trees_round_trip(tree in tree_strategy()) {
        let work = tempfile::tempdir().unwrap();
        let input = work.path().join("in");
        fs::create_dir(&input).unwrap();
        materialise(&input, &tree);
        let store = Store::memory();
        let cap = put_path(&store, &input, &PutOptions::default(), &mut |_| {}).unwrap().cap;
        let output = work.path().join("out");
        get_to_path(&store, &cap, &output, false, &mut |_| {}).unwrap();
        prop_assert_eq!(snapshot(&output), snapshot(&input));
    }
}

#[derive(Debug, Clone)]
enum Tree {
    File {
        content: Vec<u8>,
        mode: u32,
    },
    Dir {
        entries: std::collections::BTreeMap<String, Tree>,
        mode: u32,
    },
}

fn tree_strategy() -> impl Strategy<Value = std::collections::BTreeMap<String, Tree>> {
    let name = "[a-zA-Z0-9_é-][a-zA-Z0-9._é -]{0,11}";
    let mode = prop::sample::select(vec![0o600u32, 0o640, 0o644, 0o700, 0o755, 0o750]);
    let leaf = (prop::collection::vec(any::<u8>(), 0..3000), mode.clone())
        .prop_map(|(content, mode)| Tree::File { content, mode });
    let tree = leaf.prop_recursive(4, 40, 6, move |inner| {
        (
            prop::collection::btree_map(name, inner, 0..6),
            prop::sample::select(vec![0o700u32, 0o755, 0o750]),
        )
            .prop_map(|(entries, mode)| Tree::Dir { entries, mode })
    });
    prop::collection::btree_map("[a-z]{1,8}", tree, 0..6)
}

fn materialise(dir: &Path, entries: &std::collections::BTreeMap<String, Tree>) {
    for (name, tree) in entries {
        let path = dir.join(name);
        match tree {
            Tree::File { content, mode } => {
                fs::write(&path, content).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Tree::Dir { entries, mode } => {
                fs::create_dir(&path).unwrap();
                materialise(&path, entries);
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
            }
        }
    }
}

/// Relative path → (mode, contents or None for directories), for every entry below `root`.
fn snapshot(root: &Path) -> Vec<(String, u32, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let metadata = fs::symlink_metadata(&path).unwrap();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.is_dir() {
                out.push((relative, mode, None));
                stack.push(path);
            } else {
                out.push((relative, mode, Some(fs::read(&path).unwrap())));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn manifests_pointing_at_missing_chunks_name_the_chunk() {
    let backend = MemoryBackend::default();
    let store = Store::new(backend.clone());
    let cap = put(&store, &random_bytes(2 << 20, 14));
    let missing = data_chunks(&store, cap.id)[1];
    assert!(backend.remove_raw(&missing));
    let error = read(&store, &cap).unwrap_err();
    assert!(
        matches!(error, ReadError::Store(StoreError::Missing(id)) if id == missing),
        "{error}"
    );
    assert!(error.to_string().contains("missing"));
}

#[test]
fn truncated_manifests_are_refused_with_the_chunk_named() {
    let store = Store::memory();
    let cap = put(&store, &random_bytes(2 << 20, 15));
    let stored = store.get(&cap.id).unwrap();
    // The truncated object is stored under its own hash, so only the decoder can object.
    for len in [0, 3, 9, 40, stored.len() - 17, stored.len() - 1] {
        let truncated = stored[..len].to_vec();
        let id = cryptosphere::object::crypto::chunk_id(&truncated);
        store.put_verified(id, truncated).unwrap();
        let error = read(&store, &ReadCap { id, key: cap.key }).unwrap_err();
        assert!(
            matches!(&error, ReadError::Object { id: at, .. } if *at == id),
            "len {len}: {error}"
        );
        assert!(error.to_string().contains(&id.to_string()));
    }
    assert!(matches!(
        Node::open(&stored[..20], &cap.key),
        Err(ObjectError::Truncated(_))
    ));
}

#[test]
fn wrong_kind_and_wrong_key_are_clear_errors() {
    let store = Store::memory();
    let file = put(&store, b"just a file");
    let error = Reader::new(&store).list_dir(&file).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the capability points at a file, not a directory"
    );
    let wrong_key = ReadCap {
        id: file.id,
        key: cryptosphere::ChunkKey([0; 32]),
    };
    let error = read(&store, &wrong_key).unwrap_err();
    assert!(
        matches!(
            error,
            ReadError::Object {
                source: ObjectError::Decrypt,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn over_long_paths_and_names_are_refused() {
    let store = Store::memory();
    let cap = put(&store, b"content");
    let work = tempfile::tempdir().unwrap();
    let long = work.path().join("x".repeat(5000));
    let error = get_to_path(&store, &cap, &long, false, &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("cannot write"), "{error}");
    let error = put_path(&store, &long, &PutOptions::default(), &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("cannot read"), "{error}");
    let mut writer = Writer::new(&store, WriteConfig::default(), None);
    let entry = DirEntry {
        name: "n".repeat(256),
        kind: EntryKind::File,
        mode: 0o644,
        cap,
    };
    let error = writer.put_directory(vec![entry]).unwrap_err();
    assert!(
        error.to_string().contains("longer than 255 bytes"),
        "{error}"
    );
}

fn dir_of(store: &Store, entries: Vec<DirEntry>) -> ReadCap {
    let mut writer = Writer::new(store, WriteConfig::default(), None);
    let cap = writer.put_directory(entries).unwrap();
    writer.finish(Some(cap)).unwrap();
    cap
}

fn entry(name: &str, kind: EntryKind, mode: u32, cap: ReadCap) -> DirEntry {
    DirEntry {
        name: name.into(),
        kind,
        mode,
        cap,
    }
}

#[test]
fn verify_checks_every_entry_even_when_ids_repeat() {
    let store = Store::memory();
    let file = put(&store, &random_bytes(200_000, 20));
    let wrong_key = ReadCap {
        id: file.id,
        key: cryptosphere::ChunkKey([7; 32]),
    };
    let cases = [
        vec![
            entry("a", EntryKind::File, 0o644, file),
            entry("b", EntryKind::File, 0o644, wrong_key),
        ],
        vec![
            entry("a", EntryKind::File, 0o644, file),
            entry("b", EntryKind::Directory, 0o755, file),
        ],
    ];
    for entries in cases {
        let dir = dir_of(&store, entries);
        let error = Reader::new(&store)
            .verify(&Capability::Read(dir))
            .unwrap_err();
        assert_eq!(error.chunk(), Some(file.id), "{error}");
        // And get reports the same damage as an integrity error naming the chunk.
        let work = tempfile::tempdir().unwrap();
        let error =
            get_to_path(&store, &dir, &work.path().join("out"), false, &mut |_| {}).unwrap_err();
        assert!(error.to_string().contains(&file.id.to_string()), "{error}");
    }
}

#[test]
fn verify_checks_name_order_across_directory_nodes() {
    use cryptosphere::object::format::{ChildRef, Entries, NodeKind};
    let store = Store::memory();
    let file = put(&store, b"x");
    let leaf = |name: &str| {
        let node = Node {
            kind: NodeKind::Directory,
            level: 0,
            total: 1,
            entries: Entries::Dir(vec![entry(name, EntryKind::File, 0o644, file)]),
        };
        let sealed = node.seal(None);
        store.put_verified(sealed.id, sealed.stored).unwrap();
        ChildRef {
            id: sealed.id,
            key: sealed.key,
            covered: 1,
        }
    };
    let (b, a) = (leaf("b"), leaf("a"));
    let top = Node {
        kind: NodeKind::Directory,
        level: 1,
        total: 2,
        entries: Entries::Refs(vec![b, a]),
    }
    .seal(None);
    store.put_verified(top.id, top.stored).unwrap();
    let cap = ReadCap {
        id: top.id,
        key: top.key,
    };
    let error = Reader::new(&store)
        .verify(&Capability::Read(cap))
        .unwrap_err();
    assert!(error.to_string().contains("out of name order"), "{error}");
}

#[test]
fn repeated_subtrees_cannot_blow_up_get_or_verify() {
    let store = Store::memory();
    let mut cap = dir_of(
        &store,
        vec![entry("leaf", EntryKind::File, 0o644, put(&store, b"leaf"))],
    );
    // 24 levels, each with two entries naming the level below: 2^24 entries described.
    for _ in 0..24 {
        cap = dir_of(
            &store,
            vec![
                entry("a", EntryKind::Directory, 0o755, cap),
                entry("b", EntryKind::Directory, 0o755, cap),
            ],
        );
    }
    let report = Reader::new(&store).verify(&Capability::Read(cap)).unwrap();
    assert!(report.chunks < 100, "{report:?}");
    let work = tempfile::tempdir().unwrap();
    let error =
        get_to_path(&store, &cap, &work.path().join("out"), false, &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("more than"), "{error}");
    assert_no_partial_output(work.path(), &work.path().join("out"));
}

#[test]
fn get_applies_permission_bits_only() {
    let store = Store::memory();
    let file = put(&store, b"#!/bin/sh\n");
    let dir = dir_of(&store, vec![entry("tool", EntryKind::File, 0o4755, file)]);
    let work = tempfile::tempdir().unwrap();
    get_to_path(&store, &dir, &work.path().join("out"), false, &mut |_| {}).unwrap();
    let mode = fs::metadata(work.path().join("out/tool"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o755);
}

#[test]
fn get_force_refuses_paths_that_do_not_end_in_a_name() {
    let store = Store::memory();
    let cap = put(&store, b"content");
    let work = tempfile::tempdir().unwrap();
    let keep = work.path().join("outer/keep");
    fs::create_dir_all(&keep).unwrap();
    fs::write(keep.join("precious"), b"precious").unwrap();
    for output in [
        work.path().join("outer/keep/.."),
        work.path().join("outer/."),
        Path::new("/").to_owned(),
    ] {
        let error = get_to_path(&store, &cap, &output, true, &mut |_| {}).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("does not end in a file or directory name"),
            "{error}"
        );
    }
    assert_eq!(fs::read(keep.join("precious")).unwrap(), b"precious");
}

#[test]
fn a_zero_group_size_still_chunks_everything() {
    let store = Store::memory();
    let content = random_bytes(3 << 20, 21);
    let cap = put_with(
        &store,
        &content,
        WriteConfig {
            seal_batch_bytes: 0,
            ..WriteConfig::default()
        },
        None,
    );
    assert_eq!(cap, put(&Store::memory(), &content));
    assert_eq!(read(&store, &cap).unwrap(), content);
    // Sequential writing (what actors use) gives the very same ids.
    let sequential = WriteConfig {
        parallel: false,
        ..WriteConfig::default()
    };
    assert_eq!(put_with(&Store::memory(), &content, sequential, None), cap);
}

/// `DIR_DEPTH_MAX` counts directories on a path with the top one as 1
/// (`docs/object-format.md` 6.3): 256 nested directories put and get back, with a file in
/// the deepest; a 257th fails the put, naming it.
#[test]
fn directory_depth_counts_the_top_directory_as_one() {
    use cryptosphere::host::import::ImportError;
    use cryptosphere::limits::DIR_DEPTH_MAX;
    let work = tempfile::tempdir().unwrap();
    let top = work.path().join("in");
    let mut deepest = top.clone();
    for _ in 1..DIR_DEPTH_MAX {
        deepest.push("d");
    }
    fs::create_dir_all(&deepest).unwrap();
    fs::write(deepest.join("f"), b"at the bottom").unwrap();
    let store = Store::memory();
    let cap = put_path(&store, &top, &PutOptions::default(), &mut |_| {})
        .unwrap()
        .cap;
    let out = work.path().join("out");
    get_to_path(&store, &cap, &out, false, &mut |_| {}).unwrap();
    let mut copy = out.clone();
    for _ in 1..DIR_DEPTH_MAX {
        copy.push("d");
    }
    assert_eq!(fs::read(copy.join("f")).unwrap(), b"at the bottom");

    fs::create_dir(deepest.join("d")).unwrap();
    match put_path(&store, &top, &PutOptions::default(), &mut |_| {}) {
        Err(ImportError::TooDeep(path)) => assert_eq!(path, deepest.join("d")),
        other => panic!("a 257th directory was not refused: {other:?}"),
    }
}
