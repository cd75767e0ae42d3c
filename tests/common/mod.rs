//! Real node processes for the multi-process tests: start one, read the line it prints when
//! it serves, ask its API, kill it. Each node lives in its own temporary data directory and
//! logs to `node.log` there (printed when a test fails).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cryptosphere");

#[derive(Debug)]
pub struct Node {
    pub name: String,
    child: Option<Child>,
    pub listen: SocketAddr,
    pub api: SocketAddr,
    pub peer: String,
    pub dir: PathBuf,
    pub netns: Option<String>,
    _temp: Option<tempfile::TempDir>,
}

/// A command for the binary, run inside `netns` when given.
pub fn command(netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns, BIN]);
            command
        }
        None => Command::new(BIN),
    }
}

/// How to start a node: the network namespace to run it in (if any), its addresses, and
/// extra arguments.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    pub netns: Option<String>,
    pub listen: Option<String>,
    pub api: Option<String>,
    pub bootstrap: Vec<SocketAddr>,
    pub extra: Vec<String>,
    /// Where the data directory goes (default: the system's temporary directory).
    pub data_in: Option<PathBuf>,
}

impl Node {
    pub fn start(name: &str, launch: &Launch) -> Node {
        let temp = match &launch.data_in {
            Some(parent) => tempfile::tempdir_in(parent).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let dir = temp.path().to_path_buf();
        let mut node = Node {
            name: name.to_string(),
            child: None,
            listen: "127.0.0.1:0".parse().unwrap(),
            api: "127.0.0.1:0".parse().unwrap(),
            peer: String::new(),
            dir,
            netns: launch.netns.clone(),
            _temp: Some(temp),
        };
        node.restart(launch);
        node
    }

    /// Starts the node's process (again) on its data directory, once the last one exited.
    pub fn restart(&mut self, launch: &Launch) {
        assert!(self.child.is_none(), "node {} is still running", self.name);
        let dir = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .unwrap();
        let mut command = command(launch.netns.as_deref());
        command.args(["node", "run", "--data-dir"]).arg(dir).args([
            "--listen",
            launch.listen.as_deref().unwrap_or("127.0.0.1:0"),
            "--api",
            launch.api.as_deref().unwrap_or("127.0.0.1:0"),
        ]);
        for addr in &launch.bootstrap {
            command.args(["--bootstrap", &addr.to_string()]);
        }
        command
            .args(&launch.extra)
            .env("CRYPTOSPHERE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "node {} did not start ({e}): {}",
                self.name,
                std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
            )
        });
        self.child = Some(child);
        self.listen = ready["listen"].as_str().unwrap().parse().unwrap();
        self.api = ready["api"].as_str().unwrap().parse().unwrap();
        self.peer = ready["peer"].as_str().unwrap().to_string();
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn status(&self) -> serde_json::Value {
        let text = match &self.netns {
            // The API listens on the namespace's own loopback: ask from inside.
            Some(_) => self.cli(&["node", "status", "--api", &self.url()]),
            None => ureq::get(&format!("{}/v1/status", self.url()))
                .timeout(Duration::from_secs(10))
                .call()
                .unwrap()
                .into_string()
                .unwrap(),
        };
        serde_json::from_str(&text).unwrap()
    }

    /// Runs the command line where this node runs (inside its namespace, if any).
    pub fn cli(&self, args: &[&str]) -> String {
        let output = command(self.netns.as_deref()).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// `GET path` on the node's API (loopback only), as JSON.
    pub fn api_json(&self, path: &str) -> serde_json::Value {
        let text = ureq::get(&format!("{}{path}", self.url()))
            .timeout(Duration::from_secs(10))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn metrics(&self) -> String {
        ureq::get(&format!("{}/metrics", self.url()))
            .timeout(Duration::from_secs(10))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// CPU time the node has used so far (user and system), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Fields after the command name (which may hold spaces) start after its ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Waits until the node has been idle (under 2 % of a core) for half a second.
    pub fn wait_idle(&self, limit: Duration) {
        wait_until("the node to settle", limit, || {
            let before = self.cpu_ticks();
            std::thread::sleep(Duration::from_millis(500));
            self.cpu_ticks() - before <= 1
        });
    }

    /// The node's resident set size, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM; waits for the exit and returns its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {} ignored SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- log of node {} ---\n{}", self.name, self.log());
        }
    }
}

/// Polls `check` until it holds or `limit` passes; panics with `what` then.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the command line with `args`; returns stdout, panicking with stderr on failure.
pub fn cli(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The five-node scenario both network tests run: `nodes[0]` is the publisher. Puts a
/// random file of `len` bytes on it, waits for every chunk to have three holders and for
/// provider records of the root, kills the publisher with SIGKILL, and gets the file through
/// the node that holds least of it: the bytes must be identical, and every chunk it lacked
/// must have crossed the network. (A file larger than one contract, 16 MiB, is spread over
/// every contract partner, so each of the four may hold part of it.) `limit` bounds each
/// wait.
pub fn put_kill_get(nodes: &mut [Node], len: usize, limit: Duration) {
    let work = tempfile::tempdir().unwrap();
    // Inside a namespace the command line sees the same file system: a path works there too.
    let file = work.path().join("random");
    let content = random_file(&file, len, 4);
    let cap = nodes[0].cli(&["put", "--api", &nodes[0].url(), file.to_str().unwrap()]);
    assert!(cap.starts_with("cs:r:"), "{cap}");

    let mut owned = 0;
    wait_until(
        "the publisher's chunks to reach 3 holders each",
        limit,
        || {
            let status = nodes[0].status();
            owned = status["chunks_owned"].as_u64().unwrap();
            owned > 0 && status["chunks_replicated"].as_u64().unwrap() == owned
        },
    );
    let held: Vec<u64> = nodes[1..]
        .iter()
        .map(|node| node.status()["bytes_held_for_others"].as_u64().unwrap())
        .collect();
    // Three replicas of every byte (and of the manifests) are spread over the others.
    assert!(held.iter().sum::<u64>() >= 3 * len as u64, "{held:?}");
    assert!(
        held.iter().filter(|&&bytes| bytes > 0).count() >= 3,
        "{held:?}"
    );
    // The holders announced the root: peers close to its id keep provider records.
    wait_until("provider records for the root", limit, || {
        nodes
            .iter()
            .map(|node| node.status()["provider_records"].as_u64().unwrap())
            .sum::<u64>()
            >= 3
    });
    nodes[0].kill_9();

    // Get through the node that holds least of it, so what it lacks crosses the network.
    let getter = nodes[1..]
        .iter()
        .min_by_key(|node| node.status()["bytes_held_for_others"].as_u64().unwrap())
        .unwrap();
    let before = getter.status()["chunks_held"].as_u64().unwrap();
    assert!(before < owned, "the getter already held all {owned} chunks");
    let out = work.path().join("got");
    getter.cli(&[
        "get",
        "--api",
        &getter.url(),
        &cap,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&out).unwrap() == content,
        "the file came back different"
    );
    let status = getter.status();
    assert_eq!(status["fetches_ok"].as_u64().unwrap(), 1);
    // Every chunk of the tree now sits in the getter's store, the missing ones fetched from
    // the holders.
    assert_eq!(status["chunks_held"].as_u64().unwrap(), owned, "{status}");
}

/// A count from the environment (a benchmark's size or runs), or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Runs the initiator's side of the wire handshake over `stream` as the peer whose identity
/// key is `seed` repeated (a test peer, or an attacker with an identity of its own).
pub fn client_handshake(
    stream: &mut std::net::TcpStream,
    seed: [u8; 32],
) -> (
    cryptosphere::wire::noise::Sealer,
    cryptosphere::wire::noise::Opener,
) {
    use cryptosphere::wire::noise::{Handshake, NoiseIdentity};
    use std::io::{Read, Write};
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let identity = NoiseIdentity::generate(&key).unwrap();
    let mut handshake = Handshake::new(&identity, true).unwrap();
    while !handshake.is_finished() {
        if handshake.my_turn() {
            let message = handshake.write().unwrap();
            stream
                .write_all(&(message.len() as u16).to_be_bytes())
                .unwrap();
            stream.write_all(&message).unwrap();
        } else {
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix).unwrap();
            let mut message = vec![0u8; u16::from_be_bytes(prefix) as usize];
            stream.read_exact(&mut message).unwrap();
            handshake.read(&message).unwrap();
        }
    }
    let (sealer, opener, _) = handshake.finish(2 << 20).unwrap();
    (sealer, opener)
}

/// The body of a GET of `url` within `timeout`, or why there is none.
pub fn get_body(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let response = ureq::get(url)
        .timeout(timeout)
        .call()
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body)
        .map_err(|e| e.to_string())?;
    Ok(body)
}
