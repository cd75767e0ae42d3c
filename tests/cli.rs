//! The `cryptosphere` command line, run as a real process against a RocksDB data directory:
//! the contract in its --help (stdout, stderr, exit codes) is what users and scripts rely on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cryptosphere::object::Capability;
use cryptosphere::store::{Store, WriteBatch};
use rand::{RngCore, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_cryptosphere");

struct Env {
    work: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// The store inside the data directory (the layout the node uses too).
    fn store_dir(&self) -> PathBuf {
        self.data_dir().join("store")
    }

    /// Runs the binary with --data-dir and a clean environment.
    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command
            .env_remove("CRYPTOSPHERE_DATA_DIR")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args);
        command.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn put(&self, path: &Path) -> String {
        let stdout = self.ok(&["put", path.to_str().unwrap()]);
        let cap = stdout.trim_end().to_owned();
        assert_eq!(
            stdout,
            format!("{cap}\n"),
            "stdout must hold the capability alone"
        );
        assert!(
            matches!(cap.parse::<Capability>(), Ok(Capability::Read(_))),
            "{cap}"
        );
        cap
    }
}

fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    fs::write(path, &bytes).unwrap();
    bytes
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stats(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["stats", "--json"])).unwrap()
}

#[test]
fn put_get_round_trips_a_file() {
    let env = Env::new();
    let content = random_file(&env.path("in.bin"), 3_000_000, 1);
    let cap = env.put(&env.path("in.bin"));
    env.ok(&[
        "get",
        &cap,
        "--output",
        env.path("out.bin").to_str().unwrap(),
    ]);
    assert_eq!(fs::read(env.path("out.bin")).unwrap(), content);
}

#[test]
fn directories_round_trip_with_modes_and_list() {
    let env = Env::new();
    let input = env.path("tree");
    fs::create_dir_all(input.join("sub")).unwrap();
    fs::write(input.join("b.txt"), b"bee").unwrap();
    fs::write(input.join("sub/run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(input.join("sub/run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(input.join("b.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(input.join("sub"), fs::Permissions::from_mode(0o711)).unwrap();
    let cap = env.put(&input);

    let listing = env.ok(&["ls", &cap]);
    let lines: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["0600", "file", "3", "b.txt"],
            vec!["0711", "dir", "-", "sub"]
        ]
    );

    let output = env.path("copy");
    env.ok(&["get", &cap, "--output", output.to_str().unwrap()]);
    assert_eq!(fs::read(output.join("b.txt")).unwrap(), b"bee");
    let mode = |p: &str| fs::metadata(output.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        (mode("b.txt"), mode("sub"), mode("sub/run.sh")),
        (0o600, 0o711, 0o750)
    );
}

#[test]
fn get_refuses_to_overwrite_without_force() {
    let env = Env::new();
    fs::write(env.path("a"), b"new content").unwrap();
    let cap = env.put(&env.path("a"));
    fs::write(env.path("existing"), b"keep me").unwrap();
    let output = env.run(&[
        "get",
        &cap,
        "--output",
        env.path("existing").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("already exists; pass --force"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read(env.path("existing")).unwrap(), b"keep me");
    env.ok(&[
        "get",
        &cap,
        "--output",
        env.path("existing").to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(fs::read(env.path("existing")).unwrap(), b"new content");
    // A directory can replace a file, with --force.
    fs::create_dir(env.path("d")).unwrap();
    fs::write(env.path("d/x"), b"x").unwrap();
    let dir = env.put(&env.path("d"));
    env.ok(&[
        "get",
        &dir,
        "--output",
        env.path("existing").to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(fs::read(env.path("existing/x")).unwrap(), b"x");
}

#[test]
fn same_file_twice_adds_no_chunk_and_stats_count_chunks() {
    let env = Env::new();
    random_file(&env.path("f"), 2_000_000, 2);
    let first = env.put(&env.path("f"));
    let after_one = stats(&env);
    assert!(after_one["chunks"].as_u64().unwrap() >= 2, "{after_one}");
    assert!(
        after_one["bytes"].as_u64().unwrap() > 2_000_000,
        "{after_one}"
    );
    assert_eq!(env.put(&env.path("f")), first);
    assert_eq!(stats(&env), after_one);
}

#[test]
fn verify_and_get_name_a_corrupt_chunk_and_exit_1() {
    let env = Env::new();
    let content = random_file(&env.path("f"), 1_500_000, 3);
    let cap = env.put(&env.path("f"));
    env.ok(&["verify", &cap]);
    env.ok(&["verify", "--all"]);
    let ids = Store::open_rocks(&env.store_dir())
        .unwrap()
        .chunk_ids()
        .unwrap();
    for victim in ids {
        let store = Store::open_rocks(&env.store_dir()).unwrap();
        let good = store.get(&victim).unwrap();
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 0x10;
        let write = |bytes: Vec<u8>| {
            store
                .backend()
                .write(WriteBatch {
                    chunks: vec![(victim, bytes)],
                    ..WriteBatch::default()
                })
                .unwrap()
        };
        write(bad);
        drop(store);

        for args in [
            vec!["verify", cap.as_str()],
            vec!["verify", "--all"],
            vec!["get", &cap, "--output", env.path("out").to_str().unwrap()],
        ] {
            let output = env.run(&args);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{args:?}: {}",
                stderr(&output)
            );
            assert!(
                stderr(&output).contains(&victim.to_string()),
                "{args:?}: {}",
                stderr(&output)
            );
        }
        assert!(!env.path("out").exists(), "a failed get left output behind");

        let store = Store::open_rocks(&env.store_dir()).unwrap();
        store
            .backend()
            .write(WriteBatch {
                chunks: vec![(victim, good)],
                ..WriteBatch::default()
            })
            .unwrap();
    }
    env.ok(&["get", &cap, "--output", env.path("out").to_str().unwrap()]);
    assert_eq!(fs::read(env.path("out")).unwrap(), content);
}

#[test]
fn gc_collects_unpinned_trees_only() {
    let env = Env::new();
    let kept_content = random_file(&env.path("kept"), 1_000_000, 4);
    random_file(&env.path("dropped"), 1_000_000, 5);
    let kept = env.put(&env.path("kept"));
    let dropped = env.put(&env.path("dropped"));
    let before = stats(&env);
    env.ok(&["unpin", &dropped]);
    let report: serde_json::Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    let removed = report["removed_chunks"].as_u64().unwrap();
    assert!(removed >= 2, "{report}");
    assert_eq!(
        stats(&env)["chunks"].as_u64().unwrap(),
        before["chunks"].as_u64().unwrap() - removed
    );
    env.ok(&[
        "get",
        &kept,
        "--output",
        env.path("kept.out").to_str().unwrap(),
    ]);
    assert_eq!(fs::read(env.path("kept.out")).unwrap(), kept_content);
    let output = env.run(&[
        "get",
        &dropped,
        "--output",
        env.path("dropped.out").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("missing"), "{}", stderr(&output));
    // Pinning again requires the whole tree to be present: the root is gone, so exit 1.
    let output = env.run(&["pin", &dropped]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("not whole"), "{}", stderr(&output));
    // A data chunk is not a tree: pinning it is refused, and gc keeps working.
    let data = Store::open_rocks(&env.store_dir())
        .unwrap()
        .chunk_ids()
        .unwrap()
        .into_iter()
        .find(|id| !kept.contains(&id.to_string()))
        .unwrap();
    let output = env.run(&["pin", &format!("cs:v:{data}")]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    env.ok(&["gc"]);
}

#[test]
fn data_dir_comes_from_flag_env_or_xdg() {
    let env = Env::new();
    fs::write(env.path("f"), b"where am i").unwrap();
    let run = |vars: &[(&str, PathBuf)], args: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .env_remove("CRYPTOSPHERE_DATA_DIR")
            .env_remove("XDG_DATA_HOME");
        for (key, value) in vars {
            command.env(key, value);
        }
        let output = command.args(args).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    };
    let file = env.path("f");
    run(
        &[("XDG_DATA_HOME", env.path("xdg"))],
        &["put", file.to_str().unwrap()],
    );
    assert!(env.path("xdg/cryptosphere").is_dir());
    run(
        &[
            ("XDG_DATA_HOME", env.path("xdg")),
            ("CRYPTOSPHERE_DATA_DIR", env.path("by-env")),
        ],
        &["put", file.to_str().unwrap()],
    );
    assert!(env.path("by-env").is_dir());
    let flag = env.path("by-flag");
    run(
        &[("CRYPTOSPHERE_DATA_DIR", env.path("by-env2"))],
        &[
            "--data-dir",
            flag.to_str().unwrap(),
            "put",
            file.to_str().unwrap(),
        ],
    );
    assert!(flag.is_dir() && !env.path("by-env2").exists());
}

#[test]
fn bad_input_gets_a_clear_error_and_no_panic() {
    let env = Env::new();
    fs::write(env.path("f"), b"x").unwrap();
    let cap = env.put(&env.path("f"));
    let verify_cap = format!("cs:v:{}", cap.split(':').nth(2).unwrap());
    let long = env.path(&"x".repeat(5000));
    let absent = env.path("absent");
    let f = env.path("f");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["get", "cs:r:nope", "--output", "o"],
            2,
            "read capability has 2 fields",
        ),
        (
            vec!["get", "hello", "--output", "o"],
            2,
            "starts with \"cs:\"",
        ),
        (vec!["ls", "cs:q:abc"], 2, "unknown capability kind"),
        (
            vec!["get", &verify_cap, "--output", "o"],
            2,
            "verify capability",
        ),
        (vec!["ls", &cap], 2, "points at a file, not a directory"),
        (
            vec!["get", &cap, "--output", long.to_str().unwrap()],
            2,
            "File name too long",
        ),
        (vec!["put", long.to_str().unwrap()], 2, "File name too long"),
        (vec!["put", absent.to_str().unwrap()], 2, "No such file"),
        (
            vec![
                "put",
                "--convergence-secret-file",
                f.to_str().unwrap(),
                f.to_str().unwrap(),
            ],
            2,
            "between 16 and 4096",
        ),
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
        (
            vec![
                "put",
                "--convergence-secret-file",
                "/dev/zero",
                f.to_str().unwrap(),
            ],
            2,
            "larger than 4096 bytes",
        ),
        (
            vec!["get", &cap, "--output", "..", "--force"],
            2,
            "does not end in a file or directory name",
        ),
        (
            vec!["node", "run", "--altruism", "1.5"],
            2,
            "'--altruism <F>': \"1.5\" is not a number from 0 to 1",
        ),
        (
            vec!["node", "run", "--altruism", "lots"],
            2,
            "\"lots\" is not a number from 0 to 1",
        ),
        (
            vec!["node", "run", "--offer-gib", "-1"],
            2,
            "'--offer-gib <GIB>': \"-1\" is not a size in GiB from 0 to 1048576",
        ),
        (
            vec!["node", "run", "--drop-fraction", "NaN"],
            2,
            "'--drop-fraction <F>': \"NaN\" is not a number from 0 to 1",
        ),
        (
            vec!["node", "run", "--adversary", "thief"],
            2,
            "possible values: storage-freeloader, bandwidth-freeloader, liar",
        ),
        (
            vec!["node", "run", "--contract-term-secs", "0"],
            2,
            "'--contract-term-secs <SECS>'",
        ),
        (
            vec!["node", "run", "--contract-term-secs", "604801"],
            2,
            "604801 is not in 1..=604800",
        ),
        (
            vec!["node", "run", "--audit-every-secs", "soon"],
            2,
            "'--audit-every-secs <SECS>'",
        ),
        (
            vec!["node", "contracts", "--api", "ftp://localhost:1"],
            2,
            "is not http://HOST:PORT",
        ),
        (
            vec!["node", "contracts", "--api", "http://localhost:1/v1"],
            2,
            "is not http://HOST:PORT",
        ),
    ];
    for (args, code, message) in cases {
        let output = env.run(&args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {text}");
        assert!(text.contains(message), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
    // Verify capabilities still verify.
    env.ok(&["verify", &verify_cap]);
}

#[test]
fn a_convergence_secret_changes_the_capability() {
    let env = Env::new();
    random_file(&env.path("f"), 100_000, 6);
    fs::write(env.path("secret"), b"0123456789abcdef0123").unwrap();
    let plain = env.put(&env.path("f"));
    let secret = env.path("secret");
    let keyed = env.ok(&[
        "put",
        "--convergence-secret-file",
        secret.to_str().unwrap(),
        env.path("f").to_str().unwrap(),
    ]);
    assert_ne!(plain, keyed.trim_end());
    env.ok(&[
        "get",
        keyed.trim_end(),
        "--output",
        env.path("out").to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read(env.path("out")).unwrap(),
        fs::read(env.path("f")).unwrap()
    );
}

#[test]
fn help_documents_every_command_and_the_exit_codes() {
    for command in [
        &[][..],
        &["put"],
        &["get"],
        &["ls"],
        &["verify"],
        &["stats"],
        &["gc"],
        &["pin"],
        &["unpin"],
    ] {
        let output = Command::new(BIN)
            .args(command)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{command:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(
            text.contains("Exit codes:") && text.contains("integrity failure"),
            "{command:?}: {text}"
        );
    }
}

#[test]
fn a_second_process_on_the_same_data_dir_is_told_why_it_cannot_open_it() {
    let env = Env::new();
    let _held = Store::open_rocks(&env.store_dir()).unwrap();
    let output = env.run(&["stats"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("in use by another cryptosphere process"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn large_puts_show_progress_only_on_a_terminal() {
    let env = Env::new();
    random_file(&env.path("big"), 12 << 20, 7);
    // Without a terminal: stderr stays empty.
    let output = env.run(&["put", env.path("big").to_str().unwrap()]);
    assert!(output.status.success());
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
    // Under a pseudo-terminal (util-linux `script`): a bar is drawn.
    let command = format!(
        "{BIN} --data-dir {} put {}",
        env.path("tty-data").display(),
        env.path("big").display()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(
        screen.contains('█') && screen.contains("MiB"),
        "no progress bar drawn: {screen:?}"
    );
}

/// `n` records of the chain of `owner`, trading with a second key, through the agreement.
fn chain_of(owner: &ed25519_dalek::SigningKey, n: u64) -> Vec<cryptosphere::chain::Record> {
    use cryptosphere::chain::agreement::{accept, complete, finish, propose};
    use cryptosphere::chain::{Outcome, Service, Transaction};
    let other = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let (mut mine, mut theirs): (
        Vec<cryptosphere::chain::Record>,
        Vec<cryptosphere::chain::Record>,
    ) = (Vec::new(), Vec::new());
    for i in 0..n {
        let tx = Transaction {
            service: Service::ChunkServed,
            bytes: 1000 + i,
            creds: i,
            seconds: 0,
            time: i,
            outcome: Outcome::Delivered,
            commitment: [0; 32],
        };
        let proposal = propose(owner, mine.last(), other.verifying_key().to_bytes(), tx);
        let (acceptance, pending) = accept(&other, theirs.last(), &proposal).unwrap();
        let (record, completion) = complete(owner, &proposal, &acceptance).unwrap();
        theirs.push(finish(pending, &completion).unwrap());
        mine.push(record);
    }
    mine
}

/// A directory whose chain identity an earlier version kept in the store: the seed becomes
/// its identity.key, so the chain stays this node's.
#[test]
fn a_chain_identity_kept_in_the_store_becomes_identity_key() {
    let env = Env::new();
    let seed = [7u8; 32];
    let store = Store::open_rocks(&env.store_dir()).unwrap();
    store.backend().meta_put(b"identity_seed", &seed).unwrap();
    drop(store);
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["chain", "show", "--json"])).unwrap();
    let me = ed25519_dalek::SigningKey::from_bytes(&seed);
    assert_eq!(
        shown["owner"].as_str().unwrap(),
        cryptosphere::ids::encode_base32(&me.verifying_key().to_bytes())
    );
    assert_eq!(fs::read(env.data_dir().join("identity.key")).unwrap(), seed);
}

#[test]
fn chains_show_export_and_verify() {
    use cryptosphere::chain::log;
    let env = Env::new();
    // A fresh data directory gets its identity.key (the one a node run on it will use) and
    // an empty chain; the identity persists.
    let first: serde_json::Value =
        serde_json::from_str(&env.ok(&["chain", "show", "--json"])).unwrap();
    let again: serde_json::Value =
        serde_json::from_str(&env.ok(&["chain", "show", "--json"])).unwrap();
    assert_eq!(first["owner"], again["owner"]);
    assert_eq!(first["records"].as_array().unwrap().len(), 0);
    let seed: [u8; 32] = fs::read(env.data_dir().join("identity.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let me = ed25519_dalek::SigningKey::from_bytes(&seed);
    assert_eq!(
        first["owner"].as_str().unwrap(),
        cryptosphere::ids::encode_base32(&me.verifying_key().to_bytes())
    );

    // Give this node five records, then export and verify them.
    let store = Store::open_rocks(&env.store_dir()).unwrap();
    for record in chain_of(&me, 5) {
        log::append(&store, &record).unwrap();
    }
    drop(store);
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["chain", "show", "--json"])).unwrap();
    assert_eq!(shown["records"].as_array().unwrap().len(), 5);
    assert_eq!(shown["records"][4]["seq"], 5);
    let file = env.path("chain.bin");
    env.ok(&["chain", "export", file.to_str().unwrap()]);
    let stdout = env.ok(&["chain", "verify", file.to_str().unwrap()]);
    assert!(stdout.starts_with("ok: 5 records"), "{stdout}");
    let output = env.run(&["chain", "export", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "export refuses to overwrite");

    // Another peer's chain, by id.
    let peer = cryptosphere::ids::encode_base32(&me.verifying_key().to_bytes());
    let text = env.ok(&["chain", "show", "--peer", &peer]);
    assert!(text.contains("(5 records)"), "{text}");

    // Damaged files: exit 1, naming the first bad record and why.
    let bytes = fs::read(&file).unwrap();
    let mut flipped = bytes.clone();
    flipped[5 + 2 * 308 + 200] ^= 1; // inside record 3's owner signature
    fs::write(env.path("flipped.bin"), &flipped).unwrap();
    let output = env.run(&["chain", "verify", env.path("flipped.bin").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("record 3") && stderr(&output).contains("signature"),
        "{}",
        stderr(&output)
    );
    fs::write(env.path("short.bin"), &bytes[..bytes.len() - 10]).unwrap();
    let output = env.run(&["chain", "verify", env.path("short.bin").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("ends inside record 4"),
        "{}",
        stderr(&output)
    );
    let mut reordered = bytes[..5].to_vec();
    reordered.extend_from_slice(&bytes[5 + 308..5 + 616]);
    reordered.extend_from_slice(&bytes[5..5 + 308]);
    fs::write(env.path("reordered.bin"), &reordered).unwrap();
    let output = env.run(&[
        "chain",
        "verify",
        env.path("reordered.bin").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("sequence number is 2, where 1 belongs"),
        "{}",
        stderr(&output)
    );
    fs::write(env.path("junk.bin"), b"not a chain").unwrap();
    let output = env.run(&["chain", "verify", env.path("junk.bin").to_str().unwrap()]);
    assert!(
        stderr(&output).contains("chain file header"),
        "{}",
        stderr(&output)
    );
    let output = env.run(&["chain", "show", "--peer", "nonsense"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn chain_commands_on_a_node_data_directory_show_the_node_chain() {
    use cryptosphere::chain::log;
    let env = Env::new();
    // A network node's data directory: its identity in identity.key, its store in store/.
    fs::create_dir_all(env.data_dir()).unwrap();
    let node = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    fs::write(env.data_dir().join("identity.key"), node.to_bytes()).unwrap();
    let store = Store::open_rocks(&env.data_dir().join("store")).unwrap();
    for record in chain_of(&node, 3) {
        log::append(&store, &record).unwrap();
    }
    drop(store);
    let id = cryptosphere::ids::encode_base32(&node.verifying_key().to_bytes());
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["chain", "show", "--json"])).unwrap();
    assert_eq!(shown["owner"], id.as_str());
    assert_eq!(shown["records"].as_array().unwrap().len(), 3);
    let file = env.path("node-chain.bin");
    let said = env.ok(&["chain", "export", file.to_str().unwrap()]);
    assert_eq!(said, format!("exported 3 records of {id}\n"));
    // Verifying a file needs no data directory at all.
    let output = Command::new(BIN)
        .env_remove("CRYPTOSPHERE_DATA_DIR")
        .env_remove("XDG_DATA_HOME")
        .env_remove("HOME")
        .args(["chain", "verify", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ok: 3 records"));
    // A node's identity key of the wrong size is named.
    fs::write(env.data_dir().join("identity.key"), [1u8; 5]).unwrap();
    let output = env.run(&["chain", "show"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("an identity key is exactly 32"),
        "{}",
        stderr(&output)
    );
}

/// One data directory: the command line and the node use the same layout and store. While
/// a node runs on a directory, local commands say so in one sentence, pointing to --api,
/// and make no second store; once it stops, they see what the node stored, and what they
/// put, the node serves after a restart. `chain` commands use the node's identity.
#[test]
fn the_command_line_and_a_node_share_one_data_directory() {
    let env = Env::new();
    let start = || {
        let mut child = Command::new(BIN)
            .env_remove("CRYPTOSPHERE_DATA_DIR")
            .arg("--data-dir")
            .arg(env.data_dir())
            .args([
                "node",
                "run",
                "--listen",
                "127.0.0.1:0",
                "--api",
                "127.0.0.1:0",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
        let api = format!("http://{}", ready["api"].as_str().unwrap());
        (child, api, ready["peer"].as_str().unwrap().to_owned())
    };
    let stop = |mut child: std::process::Child| {
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(child.wait().unwrap().success());
    };
    let (node, api, peer) = start();
    for args in [
        &["verify", "--all"][..],
        &["stats"],
        &["gc"],
        &["put", env.path("nothing").to_str().unwrap()],
        &["chain", "show"],
    ] {
        let output = env.run(args);
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "{args:?}: one sentence: {text}");
        assert!(
            text.contains("a node is running on") && text.contains(&format!("--api {api}")),
            "{args:?}: {text}"
        );
    }
    assert!(
        !env.data_dir().join("CURRENT").exists(),
        "a second store was made"
    );
    let through_node = random_file(&env.path("a"), 1_500_000, 21);
    let output = Command::new(BIN)
        .args(["put", "--api", &api, env.path("a").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let cap_a = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    stop(node);

    // Stopped: the local commands see the node's store.
    let said = env.ok(&["verify", "--all"]);
    assert!(!said.contains("all 0 chunks"), "{said}");
    env.ok(&["get", &cap_a, "-o", env.path("a.out").to_str().unwrap()]);
    assert_eq!(fs::read(env.path("a.out")).unwrap(), through_node);
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["chain", "show", "--json"])).unwrap();
    assert_eq!(shown["owner"], peer.as_str());
    let put_locally = random_file(&env.path("b"), 700_000, 22);
    let cap_b = env.put(&env.path("b"));

    // Restarted: the node serves what was put locally.
    let (node, api, _) = start();
    let output = Command::new(BIN)
        .args(["get", "--api", &api, &cap_b, "-o"])
        .arg(env.path("b.out"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fs::read(env.path("b.out")).unwrap(), put_locally);
    stop(node);
    assert!(
        !env.data_dir().join("api").exists(),
        "the API file outlived the node"
    );
}

/// `node status`, `node contracts` and `peers` without `--api` call the API the node running
/// on the data directory wrote to its `api` file; `--api` may leave out the scheme.
#[test]
fn node_views_call_the_api_the_running_node_wrote() {
    let env = Env::new();
    std::fs::create_dir_all(env.data_dir()).unwrap();
    // Nothing listens on loopback's port 9: each call fails, naming the URL it called.
    std::fs::write(env.data_dir().join("api"), "http://127.0.0.1:9\n").unwrap();
    for args in [
        vec!["node", "status"],
        vec!["node", "contracts"],
        vec!["node", "peers"],
        vec!["peers", "--json"],
        vec!["peers", "--api", "127.0.0.1:9"],
    ] {
        let output = env.run(&args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {text}");
        assert!(text.contains("http://127.0.0.1:9"), "{args:?}: {text}");
        assert!(!text.contains("7421"), "{args:?}: {text}");
    }
}
