//! Write access to a slot. The only way to write flash from outside this module is a
//! [`SlotSink`], and the only way to get one is a [`WritableSlot`], which [`Device::writable`]
//! hands out only for a slot that is neither the confirmed slot (the fallback, maybe the only
//! known-good image) nor the running one. A cycle during an unconfirmed trial therefore cannot
//! erase the confirmed image: the trial slot runs, the other is confirmed, and no slot is
//! writable at all.

use otter_boot::flash::Shared;
use otter_boot::layout::Slot;

use super::{Device, DeviceError};
use crate::flash::{FileFlash, SlotWriter};
use crate::patch::Sink;

/// Permission to write one slot, checked against the boot state when it was made and again
/// when a writer is opened with it.
#[derive(Debug)]
pub struct WritableSlot {
    slot: Slot,
    grant: Grant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grant {
    /// Neither confirmed nor running.
    Inactive,
    /// Factory programming: the slot holds no image that verifies, so nothing is lost.
    Blank,
}

impl WritableSlot {
    /// The slot this permits writing.
    pub fn slot(&self) -> Slot {
        self.slot
    }
}

/// Fills a writable slot from its start, erasing sectors as it reaches them.
pub struct SlotSink<'a> {
    slot: Slot,
    writer: SlotWriter<Shared<'a, FileFlash>>,
}

impl SlotSink<'_> {
    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), DeviceError> {
        let slot = self.slot;
        self.writer.write(bytes).map_err(|e| DeviceError::Slot {
            slot,
            why: e.to_string(),
        })
    }

    /// Pads and flushes the last word; returns the bytes written.
    pub fn finish(self) -> Result<u64, DeviceError> {
        let slot = self.slot;
        self.writer
            .finish()
            .map(|(_, n)| n)
            .map_err(|e| DeviceError::Slot {
                slot,
                why: e.to_string(),
            })
    }
}

impl Sink for SlotSink<'_> {
    type Error = DeviceError;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.write(bytes)
    }
}

impl Device {
    /// Permission to write `slot`, refused for the confirmed and the running slot.
    pub fn writable(&self, slot: Slot) -> Result<WritableSlot, DeviceError> {
        let permit = WritableSlot {
            slot,
            grant: Grant::Inactive,
        };
        self.check_permit(&permit)?;
        Ok(permit)
    }

    /// Permission to program slot A at the factory, refused once it holds an image that
    /// verifies (a programmed device is updated through [`Device::writable`] only).
    pub fn factory_slot(&self) -> Result<WritableSlot, DeviceError> {
        let permit = WritableSlot {
            slot: Slot::A,
            grant: Grant::Blank,
        };
        self.check_permit(&permit)?;
        Ok(permit)
    }

    /// A writer filling the permitted slot from its start.
    pub fn slot_writer(&self, permit: &WritableSlot) -> Result<SlotSink<'_>, DeviceError> {
        self.check_permit(permit)?;
        let slot = permit.slot;
        let writer =
            SlotWriter::new(Shared::new(&self.flash), self.layout.slot(slot)).map_err(|e| {
                DeviceError::Slot {
                    slot,
                    why: e.to_string(),
                }
            })?;
        Ok(SlotSink { slot, writer })
    }

    /// Makes the permitted slot unbootable by erasing its first sector (its header). Used
    /// when an install fails or is refused part-way.
    pub fn invalidate(&self, permit: &WritableSlot) -> Result<(), DeviceError> {
        let mut sink = self.slot_writer(permit)?;
        // Writing one erased word makes the writer erase the first sector: the header is gone.
        sink.write(&[0xFF; 4])?;
        sink.finish()?;
        Ok(())
    }

    /// The boot state still permits what `permit` grants (it is re-checked at every use, so
    /// a permit kept across a state change cannot reach the confirmed or running slot).
    fn check_permit(&self, permit: &WritableSlot) -> Result<(), DeviceError> {
        let slot = permit.slot;
        match permit.grant {
            Grant::Inactive => {
                let status = self.status()?;
                if slot == status.confirmed {
                    return Err(DeviceError::NotWritable {
                        slot,
                        why: "it is the confirmed slot, the device's fallback image",
                    });
                }
                if slot == status.running() {
                    return Err(DeviceError::NotWritable {
                        slot,
                        why: "it is the running slot",
                    });
                }
            }
            Grant::Blank => {
                if self.slot_image(slot).is_ok() {
                    return Err(DeviceError::NotWritable {
                        slot,
                        why: "it already holds a verified image; factory programming \
                              writes only a blank slot",
                    });
                }
            }
        }
        Ok(())
    }
}
