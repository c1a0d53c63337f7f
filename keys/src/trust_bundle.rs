//! The trust bundle: what a device is provisioned with, public data only.
//!
//! ```text
//! DIR/
//!   root.json     the TUF root the agent starts from
//!   trust.json    board hardware id, director public key, firmware keys with their ids,
//!                 rollout keys (which sign rollout policies)
//!   anchors.rs    the same firmware keys as Rust source for the bootloader build
//!                 (bootloader/firmware reads it through OTTER_TRUST_ANCHORS)
//! ```

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use otter_boot::image::HardwareId;
use otter_boot::trust::{Anchors, TrustedKey};
use serde::{Deserialize, Serialize};

use crate::keyset::{KeySet, KeySetError, Role};

/// Why a bundle could not be written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Key directory problem.
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// File problem.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key directory has no signed root yet.
    #[error("{0}: no root.json; run `otter-keys init` first")]
    NoRoot(PathBuf),
    /// A bundle file does not hold what it should.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// A firmware key as listed in `trust.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareKeyEntry {
    /// Key id, hex (as in image headers).
    pub key_id: String,
    /// ed25519 public key, hex.
    pub public_key: String,
}

/// Contents of `trust.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    /// Layout version of this file.
    pub format: u32,
    /// The board.
    pub hardware_id: String,
    /// Director public key, hex.
    pub director_public_key: String,
    /// Trusted firmware keys.
    pub firmware_keys: Vec<FirmwareKeyEntry>,
    /// Rollout public keys, hex, oldest first. Absent in bundles made before rollout keys
    /// existed: such a device trusts no rollout policy.
    #[serde(default)]
    pub rollout_keys: Vec<String>,
}

/// A loaded, checked trust bundle.
#[derive(Clone, Debug)]
pub struct TrustBundle {
    /// The board.
    pub hardware_id: HardwareId,
    /// Director public key.
    pub director: [u8; 32],
    /// Trusted firmware keys.
    pub firmware_keys: Vec<TrustedKey>,
    /// Rollout public keys (verify rollout policies), oldest first.
    pub rollout_keys: Vec<[u8; 32]>,
    /// The TUF root, as written by `otter-keys`.
    pub root_json: Vec<u8>,
}

impl TrustBundle {
    /// The anchors otter-boot's verifier takes.
    pub fn anchors(&self) -> Anchors<'_> {
        Anchors {
            hardware_id: self.hardware_id,
            keys: &self.firmware_keys,
        }
    }

    /// Writes the bundle for board `hardware_id` from a key directory into `out`.
    pub fn write(set: &KeySet, hardware_id: HardwareId, out: &Path) -> Result<Self, BundleError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BundleError::Io { path, source }
        };
        let root_path = set.dir().join("root.json");
        let root_json = fs::read(&root_path).map_err(|_| BundleError::NoRoot(root_path))?;
        let director = set.role_public_key(Role::Director)?;
        let firmware_keys: Vec<TrustedKey> = (set.firmware_public_keys()?.into_iter())
            .map(TrustedKey::new)
            .collect();
        let rollout_keys = set.rollout_public_keys()?;
        let bundle = Self {
            hardware_id,
            director,
            firmware_keys,
            rollout_keys,
            root_json,
        };
        fs::create_dir_all(out).map_err(io(out))?;
        let write = |name: &str, bytes: &[u8]| {
            let p = out.join(name);
            fs::write(&p, bytes).map_err(io(&p))
        };
        write("root.json", &bundle.root_json)?;
        let mut trust = serde_json::to_string_pretty(&bundle.trust_file()).map_err(|e| {
            BundleError::Invalid {
                path: out.join("trust.json"),
                why: e.to_string(),
            }
        })?;
        trust.push('\n');
        write("trust.json", trust.as_bytes())?;
        write("anchors.rs", bundle.anchors_rs().as_bytes())?;
        Ok(bundle)
    }

    /// Loads and checks a bundle directory.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let path = dir.join("trust.json");
        let invalid = |why: String| BundleError::Invalid {
            path: path.clone(),
            why,
        };
        let text = fs::read_to_string(&path).map_err(|source| BundleError::Io {
            path: path.clone(),
            source,
        })?;
        let file: TrustFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.format != 1 {
            return Err(invalid(format!("unknown format {}", file.format)));
        }
        let hardware_id = HardwareId::new(&file.hardware_id).map_err(|e| invalid(e.to_string()))?;
        let director = parse_key(&file.director_public_key).map_err(invalid)?;
        let mut firmware_keys = Vec::new();
        for entry in &file.firmware_keys {
            let key = TrustedKey::new(parse_key(&entry.public_key).map_err(invalid)?);
            if key.id.to_string() != entry.key_id {
                return Err(invalid(format!(
                    "key id {} does not match its public key (expected {})",
                    entry.key_id, key.id
                )));
            }
            firmware_keys.push(key);
        }
        if firmware_keys.is_empty() {
            return Err(invalid("no firmware keys".into()));
        }
        let rollout_keys = (file.rollout_keys.iter())
            .map(|k| parse_key(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let root_path = dir.join("root.json");
        let root_json = fs::read(&root_path).map_err(|source| BundleError::Io {
            path: root_path,
            source,
        })?;
        Ok(Self {
            hardware_id,
            director,
            firmware_keys,
            rollout_keys,
            root_json,
        })
    }

    fn trust_file(&self) -> TrustFile {
        TrustFile {
            format: 1,
            hardware_id: self.hardware_id.to_string(),
            director_public_key: hex::encode(self.director),
            firmware_keys: self
                .firmware_keys
                .iter()
                .map(|k| FirmwareKeyEntry {
                    key_id: k.id.to_string(),
                    public_key: hex::encode(k.public_key),
                })
                .collect(),
            rollout_keys: self.rollout_keys.iter().map(hex::encode).collect(),
        }
    }

    /// Rust source for the bootloader build: `HARDWARE_ID` and `PUBLIC_KEYS`.
    pub fn anchors_rs(&self) -> String {
        let mut s = String::from(
            "// Generated by `otter-keys trust-bundle`: the board and firmware keys otter-boot\n\
             // trusts. Public data; regenerate after `otter-keys rotate-firmware-key`.\n",
        );
        let _ = writeln!(
            s,
            "pub const HARDWARE_ID: &str = {:?};",
            self.hardware_id.as_str()
        );
        let _ = writeln!(
            s,
            "pub const PUBLIC_KEYS: [[u8; 32]; {}] = [",
            self.firmware_keys.len()
        );
        for k in &self.firmware_keys {
            let bytes: Vec<String> = k.public_key.iter().map(|b| format!("{b:#04x}")).collect();
            let _ = writeln!(s, "    // key id {}", k.id);
            let _ = writeln!(s, "    [{}],", bytes.join(", "));
        }
        s.push_str("];\n");
        s
    }
}

fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text).map_err(|e| format!("public key {text:?}: {e}"))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| format!("public key {text:?}: expected 32 bytes"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| format!("public key {text:?} is not an ed25519 point"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::Signer;

    fn keyset() -> (tempfile::TempDir, KeySet) {
        let dir = tempfile::tempdir().unwrap();
        let set = KeySet::create(&dir.path().join("k"), 1, 1).unwrap();
        fs::write(set.dir().join("root.json"), b"{\"signed\":{}}").unwrap();
        (dir, set)
    }

    #[test]
    fn written_bundle_loads_back_with_the_same_keys() {
        let (dir, mut set) = keyset();
        set.add_firmware_key().unwrap();
        let out = dir.path().join("bundle");
        let hw = HardwareId::new("board-7").unwrap();
        let written = TrustBundle::write(&set, hw, &out).unwrap();
        let loaded = TrustBundle::load(&out).unwrap();
        assert_eq!(loaded.hardware_id, hw);
        assert_eq!(loaded.firmware_keys, written.firmware_keys);
        assert_eq!(loaded.firmware_keys.len(), 2);
        assert_eq!(
            loaded.director,
            set.role_key(Role::Director).unwrap().public_key()
        );
        assert_eq!(loaded.root_json, b"{\"signed\":{}}");
        assert_eq!(loaded.rollout_keys, set.rollout_public_keys().unwrap());
        assert_eq!(loaded.rollout_keys.len(), 1);
    }

    #[test]
    fn a_bundle_carries_every_rollout_key_after_a_rotation() {
        let (dir, mut set) = keyset();
        let new = set.add_rollout_key().unwrap().public_key();
        let out = dir.path().join("bundle");
        TrustBundle::write(&set, HardwareId::new("b").unwrap(), &out).unwrap();
        let loaded = TrustBundle::load(&out).unwrap();
        assert_eq!(loaded.rollout_keys.len(), 2);
        assert_eq!(loaded.rollout_keys[1], new);
    }

    #[test]
    fn a_bundle_from_before_rollout_keys_still_loads_and_trusts_none() {
        let (dir, set) = keyset();
        let out = dir.path().join("o");
        TrustBundle::write(&set, HardwareId::new("b").unwrap(), &out).unwrap();
        let path = out.join("trust.json");
        let mut json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("rollout_keys");
        fs::write(&path, json.to_string()).unwrap();
        let loaded = TrustBundle::load(&out).unwrap();
        assert!(loaded.rollout_keys.is_empty());
    }

    #[test]
    fn refuses_a_rollout_key_that_is_not_a_key() {
        let (dir, set) = keyset();
        let out = dir.path().join("o");
        TrustBundle::write(&set, HardwareId::new("b").unwrap(), &out).unwrap();
        let path = out.join("trust.json");
        let mut file: TrustFile =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        file.rollout_keys.push("abcd".into());
        fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let err = TrustBundle::load(&out).unwrap_err().to_string();
        assert!(err.contains("expected 32 bytes"), "{err}");
    }

    #[test]
    fn anchors_source_lists_every_key_as_bytes() {
        let (dir, mut set) = keyset();
        set.add_firmware_key().unwrap();
        let b =
            TrustBundle::write(&set, HardwareId::new("b").unwrap(), &dir.path().join("o")).unwrap();
        let src = fs::read_to_string(dir.path().join("o/anchors.rs")).unwrap();
        assert!(src.contains("pub const HARDWARE_ID: &str = \"b\";"));
        assert!(src.contains("pub const PUBLIC_KEYS: [[u8; 32]; 2] = ["));
        for k in &b.firmware_keys {
            let first = format!("[{:#04x}, {:#04x},", k.public_key[0], k.public_key[1]);
            assert!(src.contains(&first), "{src}");
        }
    }

    #[test]
    fn refuses_a_bundle_whose_key_id_does_not_match() {
        let (dir, set) = keyset();
        let out = dir.path().join("o");
        TrustBundle::write(&set, HardwareId::new("b").unwrap(), &out).unwrap();
        let path = out.join("trust.json");
        let mut file: TrustFile =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        file.firmware_keys[0].key_id = "0000000000000000".into();
        fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let err = TrustBundle::load(&out).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn needs_a_signed_root_first() {
        let dir = tempfile::tempdir().unwrap();
        let set = KeySet::create(&dir.path().join("k"), 1, 1).unwrap();
        let r = TrustBundle::write(&set, HardwareId::new("b").unwrap(), &dir.path().join("o"));
        assert!(matches!(r, Err(BundleError::NoRoot(_))));
    }
}
