//! The keys the server holds online: TUF targets, snapshot and timestamp, and the director
//! key that signs device assignments; plus the vendor's firmware *public* keys, against which
//! every published image is checked. Root and firmware private keys belong offline.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use otter_boot::trust::TrustedKey;
use otter_keys::keyset::{KeySet, KeySetError, Role};
use otter_keys::signer::Signer;
use otter_keys::tuf::{TufError, write_initial_root};

/// Why the server's keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The key directory is unusable.
    #[error("key directory {dir}: {source}")]
    KeySet {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: KeySetError,
    },
    /// The TUF root could not be created or read.
    #[error("key directory {dir}: {source}")]
    Tuf {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: TufError,
    },
}

/// The online key that lists targets.
#[derive(Clone)]
pub enum ListingKey {
    /// The TUF targets key: the server lists images and deltas.
    Targets(Arc<dyn Signer>),
    /// The key of the delegated deltas role (offline release signing): the vendor's
    /// release role lists images, the server only deltas.
    Deltas(Arc<dyn Signer>),
}

/// The loaded online keys.
#[derive(Clone)]
pub struct ServerKeys {
    /// The key directory (its `<N>.root.json` files are the TUF roots).
    pub dir: PathBuf,
    /// Signs the metadata that lists targets.
    pub listing: ListingKey,
    /// Signs TUF snapshot metadata.
    pub snapshot: Arc<dyn Signer>,
    /// Signs TUF timestamp metadata.
    pub timestamp: Arc<dyn Signer>,
    /// Signs device assignments.
    pub director: Arc<dyn Signer>,
    /// Vendor firmware public keys that published images must be signed with.
    pub firmware: Vec<TrustedKey>,
    /// Fleet manager rollout public keys (`rollout-N.pub`) that uploaded rollout policies
    /// must be signed with; their private keys stay offline.
    pub rollout: Vec<[u8; 32]>,
    /// Whether these are development keys the server made itself.
    pub development: bool,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeys")
            .field("dir", &self.dir)
            .field("firmware_keys", &self.firmware.len())
            .field("rollout_keys", &self.rollout.len())
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

impl ServerKeys {
    /// Loads the configured key directory, or (when none is configured) the development key
    /// set in `data_dir/dev-keys`, creating it with a one-year root on first use.
    pub fn load_or_create(keys_dir: Option<&Path>, data_dir: &Path) -> Result<Self, KeysError> {
        match keys_dir {
            Some(dir) => Self::load(dir, false),
            None => {
                let dir = data_dir.join("dev-keys");
                if !dir.join("keyset.json").exists() {
                    create_development_keys(&dir)?;
                }
                Self::load(&dir, true)
            }
        }
    }

    fn load(dir: &Path, development: bool) -> Result<Self, KeysError> {
        let keyset_err = |source| KeysError::KeySet {
            dir: dir.to_path_buf(),
            source,
        };
        let set = KeySet::open(dir).map_err(keyset_err)?;
        // Each online key from its file, or from the PKCS#11 token its record names.
        let role = |role| set.role_signer(role).map_err(keyset_err);
        Ok(Self {
            dir: dir.to_path_buf(),
            listing: match set.release_keys() {
                Some(release) => {
                    ListingKey::Deltas(set.signer(&release.deltas).map_err(keyset_err)?)
                }
                None => ListingKey::Targets(role(Role::Targets)?),
            },
            snapshot: role(Role::Snapshot)?,
            timestamp: role(Role::Timestamp)?,
            director: role(Role::Director)?,
            firmware: set
                .firmware_public_keys()
                .map_err(keyset_err)?
                .into_iter()
                .map(TrustedKey::new)
                .collect(),
            rollout: set.rollout_public_keys().map_err(keyset_err)?,
            development,
        })
    }
}

/// The private keys in `dir/keys` that belong offline (root, firmware, rollout and release
/// signing keys, and the targets key under offline release signing), as key files or as
/// records of keys in a PKCS#11 token (`.pkcs11`; a server that can log in to that token can
/// sign with them): a server holding them could sign a new root, an image or a release
/// itself, so whoever takes the server would take the fleet.
pub fn offline_private_keys(dir: &Path) -> Vec<PathBuf> {
    // Under offline release signing the targets key belongs offline too.
    let offline_targets = KeySet::open(dir)
        .ok()
        .filter(|set| set.release_keys().is_some())
        .map(|set| set.manifest().targets.clone());
    let Ok(entries) = std::fs::read_dir(dir.join("keys")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let (stem, kind) = name.rsplit_once('.').unwrap_or((name, ""));
            (kind == "key" || kind == "pkcs11")
                && (["root", "firmware", "rollout", "release"]
                    .iter()
                    .any(|role| stem.starts_with(role))
                    || offline_targets.as_deref() == Some(stem))
        })
        .collect();
    found.sort();
    found
}

fn create_development_keys(dir: &Path) -> Result<(), KeysError> {
    let set = KeySet::create(dir, 1, 1).map_err(|source| KeysError::KeySet {
        dir: dir.to_path_buf(),
        source,
    })?;
    let expires = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 365 * 86_400)
        .unwrap_or(jiff::Timestamp::MAX);
    write_initial_root(&set, expires).map_err(|source| KeysError::Tuf {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::offline_private_keys;

    #[test]
    fn offline_keys_are_found_as_files_and_as_token_records() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        for name in [
            "root-1.pkcs11",
            "firmware-1.key",
            "rollout-1.pub",
            "targets.key",
            "director.pkcs11",
        ] {
            std::fs::write(keys.join(name), "x").unwrap();
        }
        let found: Vec<String> = (offline_private_keys(dir.path()).iter())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, ["firmware-1.key", "root-1.pkcs11"]);
    }

    #[test]
    fn under_offline_release_signing_release_and_targets_keys_are_offline() {
        let dir = tempfile::tempdir().unwrap();
        let set = otter_keys::keyset::KeySet::create_in(
            &dir.path().join("k"),
            1,
            1,
            None,
            None,
            Some((2, 1)),
        )
        .unwrap();
        let found: Vec<String> = (offline_private_keys(set.dir()).iter())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [
                "firmware-1.key",
                "release-1.key",
                "release-2.key",
                "rollout-1.key",
                "root-1.key",
                "targets.key"
            ]
        );
    }
}
