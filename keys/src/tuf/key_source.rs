//! Our [`Signer`] seen through tough's key traits, so every TUF signature — the offline
//! root ceremony here, the online targets/snapshot/timestamp roles on the server — goes
//! through the one signing trait (and so through a hardware module once there is one).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::rand::SecureRandom;
use tough::key_source::KeySource;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::{Ed25519Key, Ed25519Scheme, Key};
use tough::sign::Sign;

use super::TufError;
use crate::signer::Signer;

/// The TUF public key record of `signer`: `{"keytype": "ed25519", "scheme": "ed25519",
/// "keyval": {"public": HEX}}`.
pub fn tuf_key(signer: &dyn Signer) -> Key {
    Key::Ed25519 {
        keyval: Ed25519Key {
            public: signer.public_key().to_vec().into(),
            _extra: HashMap::new(),
        },
        scheme: Ed25519Scheme::Ed25519,
        _extra: HashMap::new(),
    }
}

/// The TUF key id of `signer`: SHA-256 of the canonical JSON of its key record, as tough,
/// python-tuf and tuftool compute it.
pub fn tuf_key_id(signer: &dyn Signer) -> Result<Decoded<Hex>, TufError> {
    tuf_key(signer).key_id().map_err(|e| TufError::Malformed {
        what: "key record".into(),
        why: e.to_string(),
    })
}

/// A [`Signer`] usable wherever tough wants keys: it implements both tough's
/// [`KeySource`] (what `RepositoryEditor::sign` and `SignedRole::new` take) and [`Sign`].
///
/// The random number generator tough passes is ignored: ed25519 signatures are
/// deterministic.
#[derive(Clone)]
pub struct SignerKeySource {
    signer: Arc<dyn Signer>,
}

impl SignerKeySource {
    /// Wraps a shared signer.
    pub fn new(signer: Arc<dyn Signer>) -> Self {
        Self { signer }
    }

    /// Wraps `signer` and boxes it as tough's `KeySource` list element.
    pub fn boxed(signer: impl Signer + 'static) -> Box<dyn KeySource> {
        Box::new(Self::new(Arc::new(signer)))
    }

    /// The wrapped signer.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }
}

impl fmt::Debug for SignerKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only public material: the TUF key id.
        let id = tuf_key_id(self.signer.as_ref())
            .map(hex::encode)
            .unwrap_or_default();
        f.debug_struct("SignerKeySource")
            .field("tuf_key_id", &id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sign for SignerKeySource {
    fn tuf_key(&self) -> Key {
        tuf_key(self.signer.as_ref())
    }

    async fn sign(
        &self,
        msg: &[u8],
        _rng: &(dyn SecureRandom + Sync),
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.signer.sign(msg)?.to_vec())
    }
}

#[async_trait]
impl KeySource for SignerKeySource {
    async fn as_sign(
        &self,
    ) -> Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(Box::new(self.clone()))
    }

    async fn write(
        &self,
        _value: &str,
        _key_id_hex: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Err("otter keys are created by `otter-keys`, not written through tough".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::FileKey;

    #[test]
    fn key_id_matches_tough_reading_the_same_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = FileKey::generate_at(&path).unwrap();
        let parsed = tough::sign::parse_keypair(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(parsed.tuf_key(), tuf_key(&key));
        assert_eq!(
            parsed.tuf_key().key_id().unwrap(),
            tuf_key_id(&key).unwrap()
        );
    }

    #[test]
    fn debug_shows_only_the_key_id() {
        let dir = tempfile::tempdir().unwrap();
        let key = FileKey::generate_at(&dir.path().join("k.key")).unwrap();
        let id = hex::encode(tuf_key_id(&key).unwrap());
        let shown = format!("{:?}", SignerKeySource::new(Arc::new(key)));
        assert!(shown.contains(&id), "{shown}");
    }
}
