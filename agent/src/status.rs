//! `otter-agent status`: the device's view of itself — running slot and version, the other
//! slot, the boot state, the last bootloader outcome, a pending update.

use std::fmt;

use otter_boot::layout::Slot;
use otter_boot::state::BootState;
use otter_keys::wire::BootOutcome;

use crate::agent::Agent;
use crate::device::{DeviceError, other};

/// A slot's content: (version, sha256 hex), or why it does not verify.
pub type SlotContent = Result<(String, String), String>;

/// The status report.
#[derive(Clone, Debug)]
pub struct Status {
    /// Device id.
    pub device_id: String,
    /// Board.
    pub hardware_id: String,
    /// The slot running now.
    pub running: Slot,
    /// What is in each slot: version and hash, or why it does not verify.
    pub slots: [(Slot, SlotContent); 2],
    /// The stored boot state.
    pub boot: BootState,
}

impl Agent {
    /// Reads the device's status.
    pub fn status(&self) -> Result<Status, DeviceError> {
        let boot = self.device.status()?;
        let running = boot.running();
        let describe = |slot| {
            self.device
                .slot_image(slot)
                .map(|i| (i.header.version.to_string(), hex::encode(i.sha256)))
                .map_err(|e| e.to_string())
        };
        Ok(Status {
            device_id: self.identity.device_id.clone(),
            hardware_id: self.identity.hardware_id.clone(),
            running,
            slots: [
                (running, describe(running)),
                (other(running), describe(other(running))),
            ],
            boot,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "device        {} ({})", self.device_id, self.hardware_id)?;
        for (slot, content) in &self.slots {
            let role = if *slot == self.running {
                "running"
            } else {
                "other"
            };
            let confirmed = if *slot == self.boot.confirmed {
                ", confirmed"
            } else {
                ""
            };
            match content {
                Ok((version, sha)) => writeln!(
                    f,
                    "slot {slot:?}        {version} ({role}{confirmed}) sha256 {}…",
                    &sha[..16]
                )?,
                Err(why) => writeln!(
                    f,
                    "slot {slot:?}        no bootable image ({role}{confirmed}): {why}"
                )?,
            }
        }
        match self.boot.trial {
            Some(t) if t.started => writeln!(
                f,
                "trial         {} in slot {:?} running unconfirmed ({} attempts left)",
                t.version, t.slot, t.attempts_left
            )?,
            Some(t) => writeln!(
                f,
                "pending       {} in slot {:?} boots on trial at the next reset",
                t.version, t.slot
            )?,
            None => writeln!(f, "pending       none")?,
        }
        writeln!(f, "min counter   {}", self.boot.min_security_counter)?;
        let outcome =
            serde_json::to_string(&BootOutcome::from(self.boot.last_outcome)).unwrap_or_default();
        write!(f, "last outcome  {outcome}")
    }
}
