//! The device's progress reports during an update, signed with the device key.

use otter_boot::image::Version;
use serde::{Deserialize, Serialize};

use super::canonical::{Encoder, MAX_DEVICE_ID_LEN, MAX_NAME_LEN, MAX_REASON_LEN, MAX_STAGE_LEN};
use super::signed::DeviceMessage;
use super::{WireError, WireMessage, serde_helpers};

/// One step of an update, as the device reports it. Signed over its
/// [`canonical`](super::canonical) bytes, tag `otter/report/v3\0`.
///
/// `counter` is the message counter (fresh for every send, so a retry is never a replay);
/// `event_seq` numbers the event itself, so the server stores a retried event once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The device's id, as provisioned.
    pub device_id: String,
    /// Monotonic per device, like the check-in's.
    pub counter: u64,
    /// When it was sent (unix seconds, device clock).
    pub timestamp: u64,
    /// The event's own number on this device: rises by one per event, and stays the same
    /// when the same event is sent again.
    pub event_seq: u64,
    /// What happened.
    pub event: Event,
}

/// What a report says happened.
///
/// JSON: `{"kind": "installed", "version": "1.4.0"}` and so on; the canonical variant tags
/// are in [`canonical`](super::canonical).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// Download progress of a target (full image or delta).
    Downloading {
        /// The target's name.
        target: String,
        /// Bytes received so far.
        bytes: u64,
        /// The target's length.
        total: u64,
    },
    /// The image is written and verified in the inactive slot, marked for trial.
    Installed {
        /// The installed version.
        #[serde(with = "serde_helpers::version")]
        version: Version,
    },
    /// The device booted the trial image.
    Booted {
        /// The booted version.
        #[serde(with = "serde_helpers::version")]
        version: Version,
        /// SHA-256 of the booted image as it lies in its slot (hex in JSON): what really
        /// runs, which the server matches against the release.
        #[serde(with = "serde_helpers::hex32")]
        image_sha256: [u8; 32],
    },
    /// The health check passed and the image is confirmed.
    Healthy {
        /// The confirmed version.
        #[serde(with = "serde_helpers::version")]
        version: Version,
        /// SHA-256 of the confirmed image (hex in JSON): a rollout counts a device as a
        /// success only when this is the release's hash.
        #[serde(with = "serde_helpers::hex32")]
        image_sha256: [u8; 32],
    },
    /// A step of the update failed.
    Failed {
        /// The step (`download`, `apply`, `verify`, `install`, …).
        stage: String,
        /// Why.
        reason: String,
    },
    /// The device returned to its confirmed image.
    RolledBack {
        /// The abandoned version.
        #[serde(with = "serde_helpers::version")]
        from: Version,
    },
}

impl Event {
    fn encode(&self, enc: &mut Encoder) -> Result<(), WireError> {
        match self {
            Self::Downloading {
                target,
                bytes,
                total,
            } => {
                enc.u8(0)
                    .str("event.target", target, MAX_NAME_LEN)?
                    .u64(*bytes)
                    .u64(*total);
            }
            Self::Installed { version } => {
                enc.u8(1).version(*version);
            }
            Self::Booted {
                version,
                image_sha256,
            } => {
                enc.u8(2).version(*version).digest(image_sha256);
            }
            Self::Healthy {
                version,
                image_sha256,
            } => {
                enc.u8(3).version(*version).digest(image_sha256);
            }
            Self::Failed { stage, reason } => {
                enc.u8(4).str("event.stage", stage, MAX_STAGE_LEN)?;
                enc.str("event.reason", reason, MAX_REASON_LEN)?;
            }
            Self::RolledBack { from } => {
                enc.u8(5).version(*from);
            }
        }
        Ok(())
    }
}

impl WireMessage for Report {
    const TAG: &'static [u8] = b"otter/report/v3\0";

    fn canonical_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut enc = Encoder::new(Self::TAG);
        enc.str("device_id", &self.device_id, MAX_DEVICE_ID_LEN)?
            .u64(self.counter)
            .u64(self.timestamp)
            .u64(self.event_seq);
        self.event.encode(&mut enc)?;
        Ok(enc.finish())
    }
}

impl DeviceMessage for Report {
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
