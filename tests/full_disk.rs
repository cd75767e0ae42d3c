//! A node on a full disk: a real node on a 64 MiB tmpfs. A put larger than the disk is
//! answered `507 Insufficient Storage` with the reason, which the command line prints (exit
//! 3); `GET /v1/status` shows the store's health; once space is freed puts succeed again and
//! what was stored before is intact; and a flush that fails at shutdown exits non-zero.
//! Mounting needs root: where it is impossible the test says why and does nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{random_file, Launch, Node, BIN};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// `put --api`: (exit code, stdout, stderr).
fn put(api: &str, file: &Path) -> (Option<i32>, String, String) {
    let output = Command::new(BIN)
        .args(["put", "--api", api])
        .arg(file)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Fills the file system at `dir` with a file `name` until it is full.
fn fill(dir: &Path, name: &str) -> PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0x5au8; 1 << 16];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_disk_is_a_507_and_the_store_recovers_when_space_is_freed() {
    let disk = match Tmpfs::mount("64m") {
        Ok(disk) => disk,
        Err(reason) => {
            println!("SKIPPED: cannot mount a small tmpfs here ({reason}); run as root");
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();
    // Room kept back, to free once the disk has filled.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 12 << 20]).unwrap();
    let mut node = Node::start(
        "full",
        &Launch {
            data_in: Some(disk.path().to_owned()),
            ..Launch::default()
        },
    );
    let api = node.url();
    let first = work.path().join("first");
    let first_bytes = random_file(&first, 2 << 20, 41);
    let (code, cap, stderr) = put(&api, &first);
    assert_eq!(code, Some(0), "{stderr}");

    // Larger than the disk: 507 with the reason, and the command line says so (exit 3).
    let huge = work.path().join("huge");
    random_file(&huge, 200 << 20, 42);
    let (code, _, stderr) = put(&api, &huge);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("507") && stderr.contains("disk is full"),
        "the server's own message: {stderr}"
    );
    assert!(!stderr.contains("could not be reached"), "{stderr}");
    let status = node.status();
    assert_eq!(status["store"]["healthy"], false, "{status}");
    assert!(
        status["store"]["problem"]
            .as_str()
            .unwrap()
            .contains("space"),
        "{status}"
    );
    assert!(node.log().contains("a put failed"), "the failure is logged");

    // Space freed: a put succeeds again, the store is healthy, and the first file is whole.
    std::fs::remove_file(&ballast).unwrap();
    let small = work.path().join("small");
    std::fs::write(&small, b"hello").unwrap();
    let (code, _, stderr) = put(&api, &small);
    assert_eq!(code, Some(0), "after freeing space: {stderr}");
    let status = node.status();
    assert_eq!(status["store"]["healthy"], true, "{status}");
    let out = work.path().join("first.out");
    let output = Command::new(BIN)
        .args(["get", "--api", &api, &cap, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        std::fs::read(&out).unwrap() == first_bytes,
        "the first file changed"
    );

    // The disk filled to the last byte, a put fails, and the shutdown's flush cannot be
    // done: the node exits non-zero.
    let filler = fill(disk.path(), "filler");
    let (code, _, stderr) = put(&api, &huge);
    assert_eq!(code, Some(3), "{stderr}");
    let exit = node.terminate();
    assert!(
        !exit.success(),
        "a failed flush at shutdown exited {exit:?}"
    );
    drop(filler);
}
