//! The node's ed25519 identity key: 32 secret bytes in `identity.key` in the data directory,
//! created (from the OS's randomness, readable by the owner only) on first run.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::RngCore;

use super::NodeError;

pub fn load_or_create(path: &Path) -> Result<SigningKey, NodeError> {
    let error = |reason: String| NodeError::Identity {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                error(format!(
                    "{} bytes; an identity key is exactly 32",
                    bytes.len()
                ))
            })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| error(e.to_string()))?;
            file.write_all(&seed)
                .and_then(|()| file.sync_all())
                .map_err(|e| error(e.to_string()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(error(e.to_string())),
    }
}
