//! Signing keys behind one trait, so a hardware module (PKCS#11) can replace key files
//! without touching any caller.
//!
//! Key files hold an ed25519 private key as PKCS#8 DER (the form `tough` and `tuftool`
//! read), are created with mode 0600 and never overwritten, and are refused when group or
//! others can read them. Private key bytes are never printed or logged.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer as _, SigningKey};
use otter_boot::trust::KeyId;
use zeroize::Zeroizing;

/// Why a key could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Refused to overwrite an existing key file.
    #[error("{0}: already exists; refusing to overwrite a key")]
    Exists(PathBuf),
    /// The file is not an ed25519 PKCS#8 private key.
    #[error("{0}: not an ed25519 private key in PKCS#8 DER form")]
    Malformed(PathBuf),
    /// Group or others may read the file.
    #[error("{path}: mode {mode:o} lets others read a private key; run chmod 600")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The signing backend failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// A key in a hardware security module could not be opened.
    #[error(transparent)]
    Hsm(#[from] crate::hsm::HsmError),
}

/// An ed25519 signing key, wherever it lives.
pub trait Signer: Send + Sync {
    /// The 32-byte public key.
    fn public_key(&self) -> [u8; 32];

    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError>;

    /// The firmware key id (truncated SHA-256 of the public key), as in image headers.
    fn key_id(&self) -> KeyId {
        KeyId::of(&self.public_key())
    }
}

/// Opens the key `spec` names: a PKCS#11 URI (`pkcs11:token=...;object=...`, the key stays
/// in its token) or the path of a key file.
pub fn open(spec: &str) -> Result<Box<dyn Signer>, KeyError> {
    if crate::hsm::KeyUri::is_uri(spec) {
        let uri = spec.parse().map_err(crate::hsm::HsmError::from)?;
        return Ok(Box::new(crate::hsm::open_key(&uri)?));
    }
    Ok(Box::new(FileKey::load(Path::new(spec))?))
}

/// A fresh ed25519 key from the operating system's randomness.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A private key kept in a file.
pub struct FileKey {
    key: SigningKey,
    path: PathBuf,
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKey")
            .field("path", &self.path)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl FileKey {
    /// Writes `key` to a new file at `path` (mode 0600); fails if the file exists.
    pub fn create(path: &Path, key: SigningKey) -> Result<Self, KeyError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|_| KeyError::Malformed(path.to_owned()))?;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => KeyError::Exists(path.to_owned()),
                _ => io(e),
            })?;
        file.write_all(der.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self {
            key,
            path: path.to_owned(),
        })
    }

    /// Generates a key and writes it to a new file at `path`.
    pub fn generate_at(path: &Path) -> Result<Self, KeyError> {
        Self::create(path, generate()?)
    }

    /// Loads a key file, refusing one that others may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
        let der = Zeroizing::new(fs::read(path).map_err(io)?);
        let key =
            SigningKey::from_pkcs8_der(&der).map_err(|_| KeyError::Malformed(path.to_owned()))?;
        Ok(Self {
            key,
            path: path.to_owned(),
        })
    }

    /// Where the key lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Signer for FileKey {
    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        Ok(self.key.sign(message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, VerifyingKey};

    #[test]
    fn key_files_are_created_0600_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let created = FileKey::generate_at(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = FileKey::load(&path).unwrap();
        assert_eq!(loaded.public_key(), created.public_key());
        let sig = loaded.sign(b"msg").unwrap();
        VerifyingKey::from_bytes(&created.public_key())
            .unwrap()
            .verify_strict(b"msg", &Signature::from_bytes(&sig))
            .unwrap();
    }

    #[test]
    fn refuses_to_overwrite_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let first = FileKey::generate_at(&path).unwrap();
        assert!(matches!(
            FileKey::generate_at(&path),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(
            FileKey::load(&path).unwrap().public_key(),
            first.public_key()
        );
    }

    #[test]
    fn refuses_a_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        FileKey::generate_at(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            FileKey::load(&path),
            Err(KeyError::TooOpen { mode: 0o644, .. })
        ));
    }

    #[test]
    fn refuses_a_file_that_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        fs::write(&path, b"not a key").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(FileKey::load(&path), Err(KeyError::Malformed(_))));
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = FileKey::generate_at(&dir.path().join("k.key")).unwrap();
        let secret = hex::encode(key.key.to_bytes());
        assert!(!format!("{key:?}").contains(&secret));
    }

    #[test]
    fn tough_reads_our_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = FileKey::generate_at(&path).unwrap();
        let parsed = tough::sign::parse_keypair(&fs::read(&path).unwrap()).unwrap();
        use tough::sign::Sign as _;
        match parsed.tuf_key() {
            tough::schema::key::Key::Ed25519 { keyval, .. } => {
                assert_eq!(keyval.public.as_ref(), &key.public_key()[..]);
            }
            other => panic!("tough read a non-ed25519 key: {other:?}"),
        }
    }
}
