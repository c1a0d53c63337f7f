//! The boot state as the agent reads it. An unreadable state partition is rebuilt from the
//! running image and the repair reported, so a device whose state was damaged keeps checking
//! in and updating instead of failing every cycle before its check-in.

use otter_boot::state::{BootError, BootState};
use otter_keys::wire::Event;

use crate::agent::Agent;
use crate::device::DeviceError;

/// The `stage` of the report sent after a repair.
pub const REPAIR_STAGE: &str = "boot-state";

impl Agent {
    /// The stored boot state. If it cannot be read, it is first rebuilt from the image that
    /// runs (otter-boot's `rebuild_state`: that image confirmed, its security counter the
    /// floor), and the repair is reported as a `failed` event of stage `boot-state`.
    pub async fn boot_status(&self) -> Result<BootState, DeviceError> {
        let unreadable = match self.device.status() {
            Ok(state) => return Ok(state),
            Err(DeviceError::Boot(BootError::State(e))) => e,
            Err(e) => return Err(e),
        };
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
}
