//! Real node processes for the multi-process tests: start one, read the line it prints when
//! it serves, ask its API, kill it. Each node lives in its own temporary data directory and
//! logs to `node.log` there (printed when a test fails).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods
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
    _temp: Option<tempfile::TempDir>,
}

/// How to start a node: a command prefix (for `ip netns exec`), and extra arguments.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    pub prefix: Vec<String>,
    pub listen: Option<String>,
    pub api: Option<String>,
    pub bootstrap: Vec<SocketAddr>,
    pub extra: Vec<String>,
}

impl Node {
    pub fn start(name: &str, launch: &Launch) -> Node {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let log = std::fs::File::create(dir.join("node.log")).unwrap();
        let (program, prefix) = match launch.prefix.split_first() {
            Some((program, rest)) => (program.clone(), rest.to_vec()),
            None => (BIN.to_string(), Vec::new()),
        };
        let mut command = Command::new(program);
        command.args(prefix);
        if !launch.prefix.is_empty() {
            command.arg(BIN);
        }
        command.args(["node", "run", "--data-dir"]).arg(&dir).args([
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
                "node {name} did not start ({e}): {}",
                std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
            )
        });
        Node {
            name: name.to_string(),
            child: Some(child),
            listen: ready["listen"].as_str().unwrap().parse().unwrap(),
            api: ready["api"].as_str().unwrap().parse().unwrap(),
            peer: ready["peer"].as_str().unwrap().to_string(),
            dir,
            _temp: Some(temp),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn status(&self) -> serde_json::Value {
        let text = ureq::get(&format!("{}/v1/status", self.url()))
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

pub fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
    bytes
}
