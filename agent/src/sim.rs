//! The simulated device's missing pieces: the factory image in slot A, and a reset that runs
//! otter-boot's `decide()` on the flash file, as the real bootloader does at power-on.

use std::path::Path;

use otter_boot::layout::Slot;
use otter_boot::state::BootDecision;

use crate::device::{Device, DeviceError};
use crate::install::{self, InstallError};

/// Writes a signed image into slot A (factory programming of a fresh simulated device).
pub fn write_factory_image(device: &Device, image: &Path) -> Result<(), InstallError> {
    let length = std::fs::metadata(image)
        .map_err(|source| InstallError::Read {
            what: "the factory image",
            source,
        })?
        .len();
    let slot = device.factory_slot()?;
    install::copy_full(device, &slot, image, length)?;
    device
        .slot_image(Slot::A)
        .map_err(|e| InstallError::Verify(e.to_string()))?;
    device.sync()?;
    Ok(())
}

/// A reset: the bootloader decides which slot runs (counting a trial attempt, rolling back).
pub fn reset(device: &Device) -> Result<BootDecision, DeviceError> {
    let decision = device.control()?.decide().map_err(DeviceError::Boot)?;
    device.sync()?;
    Ok(decision)
}

/// Asks for a trial boot of `slot` as the agent does after an install (tests that replay a
/// trial of an image already in the slot). The bootloader verifies the slot before booting it.
pub fn request_trial(device: &Device, slot: Slot) -> Result<(), DeviceError> {
    device
        .control()?
        .request_trial(slot)
        .map_err(DeviceError::Boot)?;
    device.sync()
}
