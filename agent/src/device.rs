//! The device's flash as otter-boot sees it: both slots and the boot state on one
//! `NorFlash` (a file for the simulated device), with the board's trust anchors. Everything
//! that reads or changes boot state goes through here.

use std::cell::RefCell;
use std::io::Read;

use otter_boot::flash::Shared;
use otter_boot::image::{HEADER_LEN, Header, SIGNATURE_LEN};
use otter_boot::layout::{Layout, Slot};
use otter_boot::state::{BootConfig, BootControl, BootError, BootState};
use otter_keys::trust_bundle::TrustBundle;
use sha2::{Digest, Sha256};

use crate::config::{Config, FlashConfig};
use crate::flash::{FileFlash, FileFlashError};
use crate::patch::{FlashRegion, OldImage};

mod writable;

pub use writable::{SlotSink, WritableSlot};

/// Why the device's flash or boot state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The flash backend failed to open.
    #[error("flash: {0}")]
    Flash(#[from] FileFlashError),
    /// The layout does not fit the flash or the state partition is unusable.
    #[error("layout: {0:?}")]
    Layout(otter_boot::layout::LayoutError),
    /// otter-boot refused an operation.
    #[error("boot state: {0}")]
    Boot(BootError),
    /// Write access to this slot is refused: it holds an image the device depends on.
    #[error("refusing to write slot {slot:?}: {why}")]
    NotWritable {
        /// The slot.
        slot: Slot,
        /// What it is (the confirmed or the running slot).
        why: &'static str,
    },
    /// The boot state is unreadable and the image that runs was rejected before: rebuilding
    /// the state would confirm it.
    #[error(
        "the boot state is unreadable and the running image in slot {slot:?} ({version}) was \
         rejected before ({reason}); refusing to confirm it by rebuilding the state"
    )]
    RejectedImageRunning {
        /// The slot it runs from.
        slot: Slot,
        /// Its version.
        version: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The slot holds no image that verifies.
    #[error("slot {slot:?}: {why}")]
    Slot {
        /// The slot.
        slot: Slot,
        /// Why.
        why: String,
    },
}

/// The image in a slot.
#[derive(Clone, Copy, Debug)]
pub struct SlotImage {
    /// Its verified header.
    pub header: Header,
    /// SHA-256 of the whole image (header, payload, signature), as TUF lists it.
    pub sha256: [u8; 32],
    /// Its length in bytes.
    pub length: u32,
}

/// The flash, layout and trust anchors of this device.
pub struct Device {
    flash: RefCell<FileFlash>,
    layout: Layout,
    bundle: TrustBundle,
}

/// The boot control over this device's flash.
pub type Control<'a> =
    BootControl<'a, Shared<'a, FileFlash>, Shared<'a, FileFlash>, Shared<'a, FileFlash>>;

impl Device {
    /// Opens the configured flash (creating an erased simulated flash if the file is absent).
    pub fn open(config: &Config, bundle: TrustBundle) -> Result<Self, DeviceError> {
        let FlashConfig::File { path } = &config.flash;
        let flash = if path.exists() {
            FileFlash::open(path)?
        } else {
            FileFlash::create(path, config.layout.flash_size())?
        }
        .with_power_cut(config.power_cut.clone());
        let device = Self {
            flash: RefCell::new(flash),
            layout: config.layout.layout().map_err(DeviceError::Layout)?,
            bundle,
        };
        device.control().map(|_| ())?;
        Ok(device)
    }

    /// The trust bundle.
    pub fn bundle(&self) -> &TrustBundle {
        &self.bundle
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// otter-boot's control over the slots and state. Crate-private: its flash handles
    /// could write any slot, so writes go through [`Device::slot_writer`] only.
    pub(crate) fn control(&self) -> Result<Control<'_>, DeviceError> {
        BootControl::new(
            self.layout,
            Shared::new(&self.flash),
            Shared::new(&self.flash),
            Shared::new(&self.flash),
            self.bundle.anchors(),
            BootConfig::default(),
        )
        .map_err(DeviceError::Layout)
    }

    /// The stored boot state.
    pub fn status(&self) -> Result<BootState, DeviceError> {
        self.control()?
            .status()
            .map_err(|e| DeviceError::Boot(BootError::State(e)))
    }

    /// Verifies the image in `slot` and hashes it whole.
    pub fn slot_image(&self, slot: Slot) -> Result<SlotImage, DeviceError> {
        let header = self
            .control()?
            .verify_slot(slot, 0)
            .map_err(|e| DeviceError::Slot {
                slot,
                why: e.to_string(),
            })?;
        let length = HEADER_LEN as u32 + header.payload_len + SIGNATURE_LEN as u32;
        let sha256 = self.hash_slot(slot, length)?;
        Ok(SlotImage {
            header,
            sha256,
            length,
        })
    }

    /// SHA-256 of the first `length` bytes of `slot`.
    pub fn hash_slot(&self, slot: Slot, length: u32) -> Result<[u8; 32], DeviceError> {
        let mut reader = self.slot_reader(slot, length)?;
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = reader.read(&mut buf).map_err(|e| DeviceError::Slot {
                slot,
                why: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
        }
        Ok(hasher.finalize().into())
    }

    /// Random-access reader of the first `length` bytes of `slot` (the old image of a patch).
    /// Crate-private for the same reason as [`Device::control`].
    pub(crate) fn slot_region(
        &self,
        slot: Slot,
        length: u32,
    ) -> Result<FlashRegion<Shared<'_, FileFlash>>, DeviceError> {
        let p = self.layout.slot(slot);
        if length > p.size {
            return Err(DeviceError::Slot {
                slot,
                why: format!("{length} bytes do not fit its {} bytes", p.size),
            });
        }
        FlashRegion::new(Shared::new(&self.flash), p.offset, length).map_err(|e| {
            DeviceError::Slot {
                slot,
                why: e.to_string(),
            }
        })
    }

    fn slot_reader(&self, slot: Slot, length: u32) -> Result<RegionReader<'_>, DeviceError> {
        Ok(RegionReader {
            region: self.slot_region(slot, length)?,
            at: 0,
            len: u64::from(length),
        })
    }

    /// Flushes the flash file to disk.
    pub fn sync(&self) -> Result<(), DeviceError> {
        self.flash.borrow().sync()?;
        Ok(())
    }
}

/// Sequential `Read` over a flash region.
struct RegionReader<'a> {
    region: FlashRegion<Shared<'a, FileFlash>>,
    at: u64,
    len: u64,
}

impl Read for RegionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len - self.at;
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let Some(out) = buf.get_mut(..n) else {
            return Ok(0);
        };
        self.region
            .read_at(self.at, out)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The other slot of an A/B pair.
pub fn other(slot: Slot) -> Slot {
    match slot {
        Slot::A => Slot::B,
        Slot::B => Slot::A,
    }
}
