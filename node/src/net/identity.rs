//! The node's ed25519 identity key: 32 secret bytes in `identity.key` in the data directory,
//! created (from the OS's randomness, readable by the owner only) on first run.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::RngCore;

use super::NodeError;

fn from_seed(path: &Path, bytes: &[u8]) -> Result<SigningKey, NodeError> {
    let seed: [u8; 32] = bytes.try_into().map_err(|_| NodeError::Identity {
        path: path.to_path_buf(),
        reason: format!("{} bytes; an identity key is exactly 32", bytes.len()),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The key in `path`, which must exist (for tools that read a node's data directory).
pub fn load(path: &Path) -> Result<SigningKey, NodeError> {
    let bytes = std::fs::read(path).map_err(|e| NodeError::Identity {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    from_seed(path, &bytes)
}

/// Writes a new key file at `path` holding `seed` (never over an existing one), synced.
pub fn create(path: &Path, seed: &[u8; 32]) -> Result<SigningKey, NodeError> {
    let error = |reason: String| NodeError::Identity {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| error(e.to_string()))?;
    file.write_all(seed)
        .and_then(|()| file.sync_all())
        .map_err(|e| error(e.to_string()))?;
    Ok(SigningKey::from_bytes(seed))
}

pub fn load_or_create(path: &Path) -> Result<SigningKey, NodeError> {
    let error = |reason: String| NodeError::Identity {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => from_seed(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            create(path, &seed)
        }
        Err(e) => Err(error(e.to_string())),
    }
}
