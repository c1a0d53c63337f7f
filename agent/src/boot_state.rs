//! The boot state as the agent reads it. A factory-fresh device stores its first record
//! before anything is installed. An unreadable state partition is rebuilt from the running
//! image and the repair reported, so a device whose state was damaged keeps checking in and
//! updating instead of failing every cycle before its check-in; unless that image was
//! rejected, which a rebuild would confirm.

use otter_boot::state::{BootError, BootState};
use otter_keys::wire::Event;

use crate::agent::Agent;
use crate::device::DeviceError;

/// The `stage` of the report sent after a repair.
pub const REPAIR_STAGE: &str = "boot-state";

impl Agent {
    /// The stored boot state. A factory-fresh device first stores its first record (the
    /// factory image confirmed, its security counter the floor), before anything is
    /// installed. An unreadable state is first rebuilt from the image that runs
    /// (otter-boot's `rebuild_state`: that image confirmed, its security counter the floor),
    /// and the repair is reported as a `failed` event of stage `boot-state`; but never when
    /// that image is on the rejected list (the rebuild would confirm it).
    pub async fn boot_status(&self) -> Result<BootState, DeviceError> {
        let sealed = self.device.control()?.seal_factory_state();
        let unreadable = match self.device.status() {
            Ok(state) => {
                // A readable state whose first record could not be stored: go no further,
                // or an install would leave two images beside an empty state.
                if let Some(first) = sealed.map_err(DeviceError::Boot)? {
                    self.device.sync()?;
                    tracing::info!(
                        floor = first.min_security_counter,
                        "stored the first boot state: the factory image confirmed"
                    );
                }
                return Ok(state);
            }
            Err(DeviceError::Boot(BootError::State(e))) => e,
            Err(e) => return Err(e),
        };
        self.refuse_rebuild_of_rejected()?;
        let state = self
            .device
            .control()?
            .rebuild_state()
            .map_err(DeviceError::Boot)?;
        self.device.sync()?;
        let reason = format!(
            "the boot state was unreadable ({unreadable}); rebuilt it from the running image \
             in slot {} with security counter floor {}",
            state.confirmed, state.min_security_counter
        );
        tracing::warn!(%reason, "boot state rebuilt");
        let event = Event::Failed {
            stage: REPAIR_STAGE.into(),
            reason,
        };
        // Kept in the outbox until the server has it.
        self.report(event).await;
        Ok(state)
    }

    /// Refuses when the image a rebuild would confirm (the one the bootloader boots without
    /// a state) is one this device rejected.
    fn refuse_rebuild_of_rejected(&self) -> Result<(), DeviceError> {
        let running = self
            .device
            .control()?
            .decide_without_state()
            .map_err(DeviceError::Boot)?;
        let image = self.device.slot_image(running.slot)?;
        match self.rejected().find(&image.sha256) {
            Some(entry) => {
                let err = DeviceError::RejectedImageRunning {
                    slot: running.slot,
                    version: entry.version.clone(),
                    reason: entry.reason.clone(),
                };
                tracing::error!(error = %err, "boot state not rebuilt");
                Err(err)
            }
            None => Ok(()),
        }
    }
}
