//! Trust anchors: the firmware keys a bootloader is built with, and the board it runs on.
//!
//! Several keys may be trusted at once so a vendor can rotate its signing key: images signed
//! by the old and the new key both boot until the old one is dropped from a later build.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::image::HardwareId;

/// Short name of a firmware key: the first 8 bytes of SHA-256 over its 32-byte public key.
/// Derived, never chosen, so the signer and the device cannot disagree about it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KeyId::LEN]);

impl KeyId {
    /// Length in bytes.
    pub const LEN: usize = 8;

    /// The id of an ed25519 public key.
    pub fn of(public_key: &[u8; 32]) -> Self {
        let digest: [u8; 32] = Sha256::digest(public_key).into();
        let mut id = [0u8; Self::LEN];
        id.copy_from_slice(digest.get(..Self::LEN).unwrap_or(&[0; Self::LEN]));
        Self(id)
    }

    /// A key id from its stored bytes.
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The stored bytes.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// One firmware key the device trusts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// Its id, as written in image headers.
    pub id: KeyId,
    /// The ed25519 public key.
    pub public_key: [u8; 32],
}

impl TrustedKey {
    /// A trusted key with its derived id.
    pub fn new(public_key: [u8; 32]) -> Self {
        Self {
            id: KeyId::of(&public_key),
            public_key,
        }
    }
}

/// Everything the verifier trusts: compiled into the bootloader, loaded from the trust
/// bundle by the agent.
#[derive(Clone, Copy, Debug)]
pub struct Anchors<'a> {
    /// The board this code runs on; images for other boards are refused.
    pub hardware_id: HardwareId,
    /// Firmware keys whose signatures are accepted.
    pub keys: &'a [TrustedKey],
}

impl Anchors<'_> {
    /// The trusted key with this id, if any.
    pub fn key(&self, id: KeyId) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_truncated_sha256_of_the_public_key() {
        let pk = [9u8; 32];
        let full: [u8; 32] = Sha256::digest(pk).into();
        assert_eq!(KeyId::of(&pk).as_bytes(), &full[..8]);
        extern crate std;
        assert_eq!(
            std::format!("{}", KeyId::from_bytes([0xab; 8])),
            "abababababababab"
        );
    }

    #[test]
    fn anchors_find_keys_by_id() {
        let keys = [TrustedKey::new([1; 32]), TrustedKey::new([2; 32])];
        let anchors = Anchors {
            hardware_id: HardwareId::new("board").unwrap(),
            keys: &keys,
        };
        assert_eq!(anchors.key(KeyId::of(&[2; 32])), Some(&keys[1]));
        assert_eq!(anchors.key(KeyId::of(&[3; 32])), None);
    }
}
