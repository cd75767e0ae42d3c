//! The data directory's layout, the one the command line and the node share: `store/` (the
//! RocksDB store), `identity.key` (a node's ed25519 key, made by its first run) and `api`
//! (the URL of the API of the node running on the directory, written when it serves and
//! removed when it stops). It owns the names and reads the `api` file; it opens no store.

// Host code: it looks at the file system on behalf of the command line and the node.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

/// The node's identity key in its data directory.
pub const IDENTITY_FILE: &str = "identity.key";
/// The store (RocksDB) in a data directory.
pub const STORE_DIR: &str = "store";
/// The running node's API URL in its data directory.
pub const API_FILE: &str = "api";
/// A file RocksDB keeps at the top of every database.
const ROCKSDB_MARKER: &str = "CURRENT";

/// Where the store of data directory `dir` is: `dir/store`. A store that an earlier version
/// of the command line made directly in `dir` (no `store/` yet) stays where it is, so
/// nothing it holds is hidden.
pub fn store_dir(dir: &Path) -> PathBuf {
    let store = dir.join(STORE_DIR);
    if !store.exists() && dir.join(ROCKSDB_MARKER).is_file() {
        return dir.to_owned();
    }
    store
}

pub fn identity_file(dir: &Path) -> PathBuf {
    dir.join(IDENTITY_FILE)
}

pub fn api_file(dir: &Path) -> PathBuf {
    dir.join(API_FILE)
}

/// The API URL the node running on `dir` wrote, if it wrote one (a node killed with
/// SIGKILL leaves it behind: read it only when the store is known to be in use).
pub fn running_api(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(api_file(dir)).ok()?;
    let url = text.trim();
    (url.starts_with("http://") && url.len() < 256 && !url.contains(char::is_whitespace))
        .then(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_under_store_unless_an_old_one_is_at_the_top() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(store_dir(dir.path()), dir.path().join("store"));
        std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000001\n").unwrap();
        assert_eq!(store_dir(dir.path()), dir.path());
        std::fs::create_dir(dir.path().join("store")).unwrap();
        assert_eq!(store_dir(dir.path()), dir.path().join("store"));
        assert_eq!(running_api(dir.path()), None);
        std::fs::write(api_file(dir.path()), "http://127.0.0.1:5\n").unwrap();
        assert_eq!(
            running_api(dir.path()).as_deref(),
            Some("http://127.0.0.1:5")
        );
        std::fs::write(api_file(dir.path()), "garbage here").unwrap();
        assert_eq!(running_api(dir.path()), None);
    }
}
