//! The rollout policy: the fleet manager's signed limit on what the server may do with one
//! rollout on its own. The device checks it before it installs, so a server whose online
//! keys are stolen can not widen a rollout past the signed ceiling, move it to another
//! image or board, or install outside the window.

use serde::{Deserialize, Serialize};

use super::canonical::{Encoder, MAX_ROLLOUT_ID_LEN};
use super::{Signed, WireError, WireMessage, serde_helpers};
use crate::rollout::{
    BasisPoints, Bucket, MAX_TIME_ZONE_LEN, MaintenanceWindow, WindowError, unix_time,
};

/// Longest hardware id, in bytes (as in the image header).
const MAX_HARDWARE_ID_LEN: usize = otter_boot::image::HardwareId::LEN;

/// What the rollout key allows for one rollout. Signed over its
/// [`canonical`](super::canonical) bytes, tag `otter/rollout/v1\0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// The rollout this is for; with the device id it gives the device's bucket.
    pub rollout_id: String,
    /// The board the release is for.
    pub hardware_id: String,
    /// SHA-256 of the release's signed image file (the assigned target's hash; hex in
    /// JSON).
    #[serde(with = "serde_helpers::hex32")]
    pub image_sha256: [u8; 32],
    /// The highest cutoff the server may reach without a new signature: only devices whose
    /// bucket is below it install.
    pub ceiling: BasisPoints,
    /// When devices may install; `None` means at any time.
    pub window: Option<MaintenanceWindow>,
    /// End of validity (unix seconds, exclusive).
    pub expires: u64,
}

impl WireMessage for RolloutPolicy {
    const TAG: &'static [u8] = b"otter/rollout/v1\0";

    fn canonical_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut enc = Encoder::new(Self::TAG);
        enc.str("rollout_id", &self.rollout_id, MAX_ROLLOUT_ID_LEN)?
            .str("hardware_id", &self.hardware_id, MAX_HARDWARE_ID_LEN)?
            .digest(&self.image_sha256)
            .u16(self.ceiling.get());
        if let Some(window) = enc.presence(self.window.as_ref()) {
            enc.u8(window.days().bits())
                .u16(window.start().minutes())
                .u16(window.end().minutes())
                .str("window.time_zone", window.time_zone(), MAX_TIME_ZONE_LEN)?;
        }
        enc.u64(self.expires);
        Ok(enc.finish())
    }
}

/// What the device knows when it checks a policy: who it is and what it was assigned.
#[derive(Clone, Copy, Debug)]
pub struct PolicyCheck<'a> {
    /// This device's id (with the policy's rollout id, its bucket).
    pub device_id: &'a str,
    /// This device's board.
    pub hardware_id: &'a str,
    /// SHA-256 of the image the director assigned.
    pub image_sha256: &'a [u8; 32],
    /// The device's clock (unix seconds).
    pub now: u64,
}

/// Why a device refuses a rollout policy, and so the assignment it came with.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy or its signature is malformed (too long a field, not 128 hex digits).
    #[error("rollout policy: {0}")]
    Wire(#[from] WireError),
    /// The trust bundle has no rollout key, so no policy can be trusted.
    #[error("rollout policy: this device trusts no rollout key; provision a trust bundle with one")]
    NoRolloutKey,
    /// No trusted rollout key made this signature.
    #[error(
        "rollout policy: not signed by any of the {keys} trusted rollout keys (forged, altered, \
         or signed by another key)"
    )]
    UntrustedSignature {
        /// How many rollout keys were tried.
        keys: usize,
    },
    /// The policy is for another board.
    #[error("rollout policy is for hardware {found:?}, this device is {expected:?}")]
    WrongHardware {
        /// This device's board.
        expected: String,
        /// The board the policy names.
        found: String,
    },
    /// The policy names another image than the one assigned.
    #[error("rollout policy names image {found}, the assignment is image {expected}")]
    WrongImage {
        /// SHA-256 of the assigned image, hex.
        expected: String,
        /// SHA-256 the policy names, hex.
        found: String,
    },
    /// The policy is past its expiry.
    #[error("rollout policy expired: valid until {expires}, now is {now}")]
    Expired {
        /// End of validity (unix seconds, exclusive).
        expires: u64,
        /// The device's clock.
        now: u64,
    },
    /// The device's bucket is not under the signed ceiling: the server assigned it further
    /// than the rollout key allows.
    #[error(
        "this device's bucket {bucket} is not under the signed ceiling {ceiling} ({} buckets): \
         the assignment goes beyond what the rollout key allows",
        ceiling.get()
    )]
    AboveCeiling {
        /// This device's bucket in the rollout.
        bucket: Bucket,
        /// The signed ceiling.
        ceiling: BasisPoints,
    },
    /// Now is outside the maintenance window.
    #[error("outside the maintenance window {window}: it is {local} there")]
    OutsideWindow {
        /// The window, as text.
        window: String,
        /// The local time in the window's zone.
        local: String,
    },
    /// The window could not be evaluated (a time zone this device does not know).
    #[error("rollout policy window: {0}")]
    Window(#[from] WindowError),
}

impl Signed<RolloutPolicy> {
    /// Checks the signature alone: made by one of `rollout_keys` (several during a
    /// rotation). The server checks an uploaded policy this way; the device calls
    /// [`verify`](Self::verify), which starts with it.
    pub fn verify_authentic(
        &self,
        rollout_keys: &[[u8; 32]],
    ) -> Result<&RolloutPolicy, PolicyError> {
        if rollout_keys.is_empty() {
            return Err(PolicyError::NoRolloutKey);
        }
        for key in rollout_keys {
            match self.verify_signature(key) {
                Ok(()) => return Ok(&self.message),
                Err(WireError::BadSignature | WireError::BadKey) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(PolicyError::UntrustedSignature {
            keys: rollout_keys.len(),
        })
    }

    /// Verifies a policy received with an assignment and returns it; the device installs
    /// the assigned image only when this passes.
    ///
    /// In order: signed by one of `rollout_keys` ([`PolicyError::NoRolloutKey`],
    /// [`PolicyError::UntrustedSignature`], [`PolicyError::Wire`]); names this device's
    /// board ([`PolicyError::WrongHardware`]) and exactly the assigned image
    /// ([`PolicyError::WrongImage`]); `now` is before `expires` ([`PolicyError::Expired`]);
    /// the device's bucket is under the ceiling ([`PolicyError::AboveCeiling`]); `now` is
    /// inside the window, if any ([`PolicyError::OutsideWindow`], [`PolicyError::Window`]).
    pub fn verify(
        &self,
        rollout_keys: &[[u8; 32]],
        check: &PolicyCheck<'_>,
    ) -> Result<&RolloutPolicy, PolicyError> {
        let policy = self.verify_authentic(rollout_keys)?;
        if policy.hardware_id != check.hardware_id {
            return Err(PolicyError::WrongHardware {
                expected: check.hardware_id.to_owned(),
                found: policy.hardware_id.clone(),
            });
        }
        if policy.image_sha256 != *check.image_sha256 {
            return Err(PolicyError::WrongImage {
                expected: hex::encode(check.image_sha256),
                found: hex::encode(policy.image_sha256),
            });
        }
        if check.now >= policy.expires {
            return Err(PolicyError::Expired {
                expires: policy.expires,
                now: check.now,
            });
        }
        let bucket = crate::rollout::bucket(check.device_id, &policy.rollout_id);
        if !policy.ceiling.admits(bucket) {
            return Err(PolicyError::AboveCeiling {
                bucket,
                ceiling: policy.ceiling,
            });
        }
        if let Some(window) = &policy.window {
            let now = unix_time(check.now)?;
            if !window.contains(now)? {
                return Err(PolicyError::OutsideWindow {
                    window: window.to_string(),
                    local: window.local_time(now)?,
                });
            }
        }
        Ok(policy)
    }
}
