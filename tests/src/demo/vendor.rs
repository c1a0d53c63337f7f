//! The vendor's side: firmware-like bytes for each release, images signed with the
//! development firmware key, rollout policies signed with the development rollout key (the
//! keys `otter-server serve` makes in its data dir when none are given).

use std::path::Path;

use otter_boot::image::{HardwareId, Version};
use otter_keys::image::{ImageSpec, sign_image};
use otter_keys::keyset::KeySet;
use otter_keys::wire::{RolloutPolicy, Signed};
use serde_json::Value;

use super::DemoError;
use super::api::text;

/// The development key set of a server's data dir.
pub struct Vendor {
    keys: KeySet,
}

impl Vendor {
    /// Opens the key set in `keys_dir`.
    pub fn open(keys_dir: &Path) -> Result<Self, DemoError> {
        let keys = KeySet::open(keys_dir).map_err(|e| DemoError::new(format!("keys: {e}")))?;
        Ok(Self { keys })
    }

    /// `payload` signed as release `version` of `board`.
    pub fn image(&self, board: &str, version: &str, payload: &[u8]) -> Result<Vec<u8>, DemoError> {
        let key = (self.keys.signing_firmware_key()).map_err(|e| DemoError::new(e.to_string()))?;
        let spec = ImageSpec {
            hardware_id: HardwareId::new(board).map_err(|e| DemoError::new(format!("{e:?}")))?,
            version: version
                .parse::<Version>()
                .map_err(|e| DemoError::new(format!("{version}: {e:?}")))?,
            security_counter: 1,
        };
        sign_image(payload, &spec, &key).map_err(|e| DemoError::new(e.to_string()))
    }

    /// The rollout policy of rollout `id` for `release` (as the API shows it), the server
    /// allowed up to `ceiling` on its own, signed with the newest rollout key.
    pub fn policy(
        &self,
        id: &str,
        release: &Value,
        ceiling: &str,
    ) -> Result<Signed<RolloutPolicy>, DemoError> {
        let keys = (self.keys.rollout_keys()).map_err(|e| DemoError::new(e.to_string()))?;
        let key = (keys.last()).ok_or_else(|| DemoError::new("no rollout key in the key set"))?;
        let mut image_sha256 = [0u8; 32];
        hex::decode_to_slice(text(&release["sha256"])?, &mut image_sha256)
            .map_err(|e| DemoError::new(format!("release sha256: {e}")))?;
        let policy = RolloutPolicy {
            rollout_id: id.to_owned(),
            hardware_id: text(&release["hardware_id"])?.to_owned(),
            image_sha256,
            ceiling: ceiling
                .parse()
                .map_err(|e| DemoError::new(format!("{ceiling}: {e}")))?,
            window: None,
            expires: u64::MAX,
        };
        Signed::sign(policy, key).map_err(|e| DemoError::new(e.to_string()))
    }
}

/// Deterministic firmware-like bytes: instruction-like prefixes between pseudo-random words,
/// so they compress and diff the way code does.
pub fn firmware(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if i % 16 < 4 {
                (i / 16 % 7) as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            }
        })
        .collect()
}

/// `base` with a few scattered edits and an inserted block: the next release.
pub fn next_release(base: &[u8], seed: u64) -> Vec<u8> {
    let mut out = base.to_vec();
    let step = out.len() / 5;
    for i in 1..5 {
        let at = i * step;
        out[at..at + 64].copy_from_slice(&firmware(64, seed + i as u64));
    }
    let insert_at = out.len() / 3;
    out.splice(insert_at..insert_at, firmware(1024, seed + 99));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_differ_a_little_and_deterministically() {
        let base = firmware(64 * 1024, 1);
        assert_eq!(base, firmware(64 * 1024, 1));
        let next = next_release(&base, 2);
        assert_eq!(next.len(), base.len() + 1024);
        let same = base.iter().zip(&next).filter(|(a, b)| a == b).count();
        assert!(same > base.len() / 4 && same < base.len(), "{same}");
    }
}
