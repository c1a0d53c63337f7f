//! The device's check-in: what it runs and what happened at its last boot, signed with the
//! device key. The server answers with an [`Assignment`](super::Assignment).

use otter_boot::image::Version;
use otter_boot::state::Trial;
use otter_boot::verify::VerifyFailure;
use otter_boot::{Outcome, Slot};
use serde::{Deserialize, Serialize};

use super::canonical::{Encoder, MAX_DEVICE_ID_LEN, MAX_REASON_LEN};
use super::signed::DeviceMessage;
use super::{WireError, WireMessage, serde_helpers};

/// A device's periodic check-in. Signed over its [`canonical`](super::canonical) bytes,
/// tag `otter/checkin/v1\0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// The device's id, as provisioned.
    pub device_id: String,
    /// Monotonic per device: each check-in or report carries a higher one than the last.
    pub counter: u64,
    /// When it was sent (unix seconds, device clock).
    pub timestamp: u64,
    /// The version of the image running now.
    #[serde(with = "serde_helpers::version")]
    pub current_version: Version,
    /// SHA-256 of the running image's payload (hex in JSON).
    #[serde(with = "serde_helpers::hex32")]
    pub image_sha256: [u8; 32],
    /// Which slot runs, which is confirmed, and any trial.
    pub slots: SlotReport,
    /// What the bootloader recorded about the last update attempt.
    pub last_outcome: BootOutcome,
}

/// The A/B slot state as the device sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotReport {
    /// The slot the device booted from (`"A"`/`"B"` in JSON).
    #[serde(with = "serde_helpers::slot")]
    pub running: Slot,
    /// The slot known good.
    #[serde(with = "serde_helpers::slot")]
    pub confirmed: Slot,
    /// The slot on trial, if any.
    pub trial: Option<TrialReport>,
}

/// A slot on trial: booted a limited number of times until confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialReport {
    /// The slot on trial.
    #[serde(with = "serde_helpers::slot")]
    pub slot: Slot,
    /// The version it holds.
    #[serde(with = "serde_helpers::version")]
    pub version: Version,
    /// Boots left before the bootloader gives up on it.
    pub attempts_left: u8,
}

impl From<Trial> for TrialReport {
    fn from(trial: Trial) -> Self {
        Self {
            slot: trial.slot,
            version: trial.version,
            attempts_left: trial.attempts_left,
        }
    }
}

/// The bootloader's last outcome ([`otter_boot::Outcome`]), with reasons as text so the wire
/// does not depend on otter-boot's numeric failure codes.
///
/// JSON: `{"kind": "confirmed", "version": "1.4.0"}`, `{"kind": "none"}` and so on; the
/// canonical variant tags are in [`canonical`](super::canonical).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BootOutcome {
    /// Nothing to report.
    #[default]
    // serde ignores unknown fields of unit variants in internally tagged enums even with
    // deny_unknown_fields (serde-rs/serde#2123); this refuses them.
    #[serde(deserialize_with = "serde_helpers::no_fields")]
    None,
    /// The trial image passed its health check and is now confirmed.
    Confirmed {
        /// The confirmed version.
        #[serde(with = "serde_helpers::version")]
        version: Version,
    },
    /// The trial image used up its boots unconfirmed; the confirmed slot runs again.
    RolledBack {
        /// The abandoned version.
        #[serde(with = "serde_helpers::version")]
        from: Version,
    },
    /// The trial slot failed verification at boot and never started.
    TrialRejected {
        /// The version that was requested.
        #[serde(with = "serde_helpers::version")]
        version: Version,
        /// Why it was refused.
        reason: String,
    },
    /// The confirmed slot failed verification, so the other slot was booted.
    FellBack {
        /// Why the confirmed slot was refused.
        reason: String,
    },
}

/// The reason text for a bootloader verification failure, as [`BootOutcome`] carries it.
pub fn failure_reason(failure: VerifyFailure) -> &'static str {
    match failure {
        VerifyFailure::Malformed => "malformed",
        VerifyFailure::WrongHardware => "wrong-hardware",
        VerifyFailure::UntrustedKey => "untrusted-key",
        VerifyFailure::PayloadHash => "payload-hash",
        VerifyFailure::Signature => "signature",
        VerifyFailure::Downgrade => "downgrade",
        VerifyFailure::Flash => "flash",
    }
}

impl From<Outcome> for BootOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::None => Self::None,
            Outcome::Confirmed { version } => Self::Confirmed { version },
            Outcome::RolledBack { from } => Self::RolledBack { from },
            Outcome::TrialRejected { version, reason } => Self::TrialRejected {
                version,
                reason: failure_reason(reason).to_owned(),
            },
            Outcome::FellBack { reason } => Self::FellBack {
                reason: failure_reason(reason).to_owned(),
            },
        }
    }
}

impl BootOutcome {
    fn encode(&self, enc: &mut Encoder) -> Result<(), WireError> {
        const REASON: &str = "last_outcome.reason";
        match self {
            Self::None => {
                enc.u8(0);
            }
            Self::Confirmed { version } => {
                enc.u8(1).version(*version);
            }
            Self::RolledBack { from } => {
                enc.u8(2).version(*from);
            }
            Self::TrialRejected { version, reason } => {
                enc.u8(3)
                    .version(*version)
                    .str(REASON, reason, MAX_REASON_LEN)?;
            }
            Self::FellBack { reason } => {
                enc.u8(4).str(REASON, reason, MAX_REASON_LEN)?;
            }
        }
        Ok(())
    }
}

impl WireMessage for CheckIn {
    const TAG: &'static [u8] = b"otter/checkin/v1\0";

    fn canonical_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut enc = Encoder::new(Self::TAG);
        enc.str("device_id", &self.device_id, MAX_DEVICE_ID_LEN)?
            .u64(self.counter)
            .u64(self.timestamp)
            .version(self.current_version)
            .digest(&self.image_sha256)
            .slot(self.slots.running)
            .slot(self.slots.confirmed);
        if let Some(trial) = enc.presence(self.slots.trial.as_ref()) {
            enc.slot(trial.slot)
                .version(trial.version)
                .u8(trial.attempts_left);
        }
        self.last_outcome.encode(&mut enc)?;
        Ok(enc.finish())
    }
}

impl DeviceMessage for CheckIn {
    fn device_id(&self) -> &str {
        &self.device_id
    }

    fn counter(&self) -> u64 {
        self.counter
    }

    fn timestamp(&self) -> u64 {
        self.timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootloader_outcomes_and_trials_convert_to_their_wire_form() {
        let v = Version::new(1, 2, 3);
        assert_eq!(BootOutcome::from(Outcome::None), BootOutcome::None);
        assert_eq!(
            BootOutcome::from(Outcome::Confirmed { version: v }),
            BootOutcome::Confirmed { version: v }
        );
        assert_eq!(
            BootOutcome::from(Outcome::RolledBack { from: v }),
            BootOutcome::RolledBack { from: v }
        );
        assert_eq!(
            BootOutcome::from(Outcome::TrialRejected {
                version: v,
                reason: VerifyFailure::Downgrade
            }),
            BootOutcome::TrialRejected {
                version: v,
                reason: "downgrade".into()
            }
        );
        assert_eq!(
            BootOutcome::from(Outcome::FellBack {
                reason: VerifyFailure::PayloadHash
            }),
            BootOutcome::FellBack {
                reason: "payload-hash".into()
            }
        );
        let trial = Trial {
            slot: Slot::B,
            version: v,
            attempts_left: 2,
            started: true,
        };
        assert_eq!(
            TrialReport::from(trial),
            TrialReport {
                slot: Slot::B,
                version: v,
                attempts_left: 2
            }
        );
    }
}
