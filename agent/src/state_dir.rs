//! The device's state directory: its key (0600), identity, message counter, trust bundle,
//! TUF metadata and partial downloads. The counter is written to disk before a message
//! carrying it leaves, so a crash can never make the device reuse one.

use std::path::{Path, PathBuf};

use otter_keys::signer::FileKey;
use otter_keys::trust_bundle::TrustBundle;
use serde::{Deserialize, Serialize};

/// Why the state directory is unusable.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The device is not provisioned yet.
    #[error("{0}: not provisioned; run `otter-agent provision` first")]
    NotProvisioned(PathBuf),
    /// A file holds garbage.
    #[error("{path}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The device key cannot be created or loaded.
    #[error("device key: {0}")]
    Key(#[from] otter_keys::signer::KeyError),
    /// The trust bundle cannot be loaded.
    #[error("trust bundle: {0}")]
    Bundle(#[from] otter_keys::trust_bundle::BundleError),
}

/// Who this device is, as registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Server-assigned device id.
    pub device_id: String,
    /// Server base URL it registered with.
    pub server: String,
    /// Board type.
    pub hardware_id: String,
    /// Serial number.
    pub serial: String,
}

/// An opened state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating, mode 0700) the directory.
    pub fn open(root: &Path) -> Result<Self, StateDirError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|source| StateDirError::Io {
                path: root.to_path_buf(),
                source,
            })?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The device key file.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("device.key")
    }

    /// The trust bundle copy.
    pub fn trust_dir(&self) -> PathBuf {
        self.root.join("trust")
    }

    /// tough's datastore and the newest trusted root.
    pub fn tuf_dir(&self) -> PathBuf {
        self.root.join("tuf")
    }

    /// Partial and finished downloads.
    pub fn downloads_dir(&self) -> PathBuf {
        self.root.join("downloads")
    }

    fn identity_path(&self) -> PathBuf {
        self.root.join("device.json")
    }

    fn counter_path(&self) -> PathBuf {
        self.root.join("counter")
    }

    /// Whether `provision` has completed here.
    pub fn is_provisioned(&self) -> bool {
        self.identity_path().exists()
    }

    /// The registered identity.
    pub fn identity(&self) -> Result<Identity, StateDirError> {
        let path = self.identity_path();
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StateDirError::NotProvisioned(self.root.clone())
            } else {
                StateDirError::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        serde_json::from_str(&text).map_err(|e| StateDirError::Corrupt {
            path,
            why: e.to_string(),
        })
    }

    /// Records the identity (the last step of provisioning).
    pub fn save_identity(&self, identity: &Identity) -> Result<(), StateDirError> {
        let text = serde_json::to_vec_pretty(identity).map_err(|e| StateDirError::Corrupt {
            path: self.identity_path(),
            why: e.to_string(),
        })?;
        write_atomic(&self.identity_path(), &text)
    }

    /// The device key.
    pub fn key(&self) -> Result<FileKey, StateDirError> {
        Ok(FileKey::load(&self.key_path())?)
    }

    /// The trust bundle.
    pub fn trust(&self) -> Result<TrustBundle, StateDirError> {
        Ok(TrustBundle::load(&self.trust_dir())?)
    }

    /// The next message counter, already persisted (strictly above every earlier one).
    pub fn next_counter(&self) -> Result<u64, StateDirError> {
        let path = self.counter_path();
        let last = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|e| StateDirError::Corrupt {
                    path: path.clone(),
                    why: format!("not a counter: {e}"),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(StateDirError::Io { path, source }),
        };
        let next = last.checked_add(1).ok_or_else(|| StateDirError::Corrupt {
            path: path.clone(),
            why: "counter exhausted".into(),
        })?;
        write_atomic(&path, next.to_string().as_bytes())?;
        Ok(next)
    }
}

/// Writes `bytes` to a temporary file, syncs it and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateDirError> {
    use std::io::Write;
    let io = |source| StateDirError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_rises_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.next_counter().unwrap(), 1);
        assert_eq!(state.next_counter().unwrap(), 2);
        let again = StateDir::open(dir.path()).unwrap();
        assert_eq!(again.next_counter().unwrap(), 3);
        std::fs::write(dir.path().join("counter"), "x").unwrap();
        assert!(matches!(
            again.next_counter(),
            Err(StateDirError::Corrupt { .. })
        ));
    }

    #[test]
    fn identity_is_required_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert!(matches!(
            state.identity(),
            Err(StateDirError::NotProvisioned(_))
        ));
        let id = Identity {
            device_id: "dev_1".into(),
            server: "http://x".into(),
            hardware_id: "acme-1".into(),
            serial: "SN".into(),
        };
        state.save_identity(&id).unwrap();
        assert_eq!(state.identity().unwrap(), id);
    }
}
