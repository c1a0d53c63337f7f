//! The director's answer to a check-in: which image this device should run, signed with the
//! director key and bound to the device and to the check-in it answers, with the rollout
//! policy that allows it.

use otter_boot::image::Version;
use serde::{Deserialize, Serialize};

use super::canonical::{Encoder, MAX_DEVICE_ID_LEN, MAX_NAME_LEN};
use super::signed::{check_device, parse_signature};
use super::{RolloutPolicy, Signed, WireError, WireMessage, serde_helpers};

/// The director's assignment for one device. Signed over its
/// [`canonical`](super::canonical) bytes, tag `otter/assignment/v2\0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The device this is for.
    pub device_id: String,
    /// The counter of the check-in this answers, echoed so an old answer can not be replayed.
    pub counter: u64,
    /// End of validity (unix seconds, exclusive).
    pub expires: u64,
    /// The image to run; `None` means stay on the current image.
    pub target: Option<AssignedTarget>,
}

/// The image a device is assigned. The agent installs it only if the TUF repository lists
/// the same name with the same length and hash, and (on a device that trusts rollout keys)
/// only if `policy` allows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignedTarget {
    /// The TUF target name of the full image.
    pub name: String,
    /// Its version.
    #[serde(with = "serde_helpers::version")]
    pub version: Version,
    /// SHA-256 of the target file (hex in JSON).
    #[serde(with = "serde_helpers::hex32")]
    pub sha256: [u8; 32],
    /// Length of the target file in bytes.
    pub length: u64,
    /// The fleet manager's signed rollout policy that allows this assignment; `None` when
    /// the server has none. The director's signature covers it whole (message and
    /// signature), so nobody on the way can strip or swap it; whether it allows this device
    /// is for the device to check ([`Signed::<RolloutPolicy>::verify`]), since the
    /// director's key is the one a compromised server holds.
    pub policy: Option<Signed<RolloutPolicy>>,
}

impl WireMessage for Assignment {
    const TAG: &'static [u8] = b"otter/assignment/v2\0";

    fn canonical_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut enc = Encoder::new(Self::TAG);
        enc.str("device_id", &self.device_id, MAX_DEVICE_ID_LEN)?
            .u64(self.counter)
            .u64(self.expires);
        if let Some(target) = enc.presence(self.target.as_ref()) {
            enc.str("target.name", &target.name, MAX_NAME_LEN)?
                .version(target.version)
                .digest(&target.sha256)
                .u64(target.length);
            if let Some(policy) = enc.presence(target.policy.as_ref()) {
                enc.nested(&policy.message.canonical_bytes()?)
                    .signature(&parse_signature(&policy.signature)?.to_bytes());
            }
        }
        Ok(enc.finish())
    }
}

impl Signed<Assignment> {
    /// Verifies an assignment received by the agent and returns it.
    ///
    /// In order: the signature by `director_key` over the canonical bytes
    /// ([`WireError::BadKey`], [`WireError::MalformedSignature`], [`WireError::TooLong`],
    /// [`WireError::BadSignature`]); the device id equals `my_device`
    /// ([`WireError::WrongDevice`]); the echoed counter equals `my_counter`, the counter of
    /// the check-in just sent ([`WireError::CounterMismatch`]); `now` is before `expires`
    /// ([`WireError::Expired`]). A target's rollout policy is authenticated here only as
    /// part of the director's message (a malformed policy signature is
    /// [`WireError::MalformedSignature`]); the device checks it against its rollout keys
    /// itself.
    pub fn verify(
        &self,
        director_key: &[u8; 32],
        my_device: &str,
        my_counter: u64,
        now: u64,
    ) -> Result<&Assignment, WireError> {
        self.verify_signature(director_key)?;
        let message = &self.message;
        check_device(my_device, &message.device_id)?;
        if message.counter != my_counter {
            return Err(WireError::CounterMismatch {
                expected: my_counter,
                found: message.counter,
            });
        }
        if now >= message.expires {
            return Err(WireError::Expired {
                expires: message.expires,
                now,
            });
        }
        Ok(message)
    }
}
