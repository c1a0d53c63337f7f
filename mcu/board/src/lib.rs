//! `otter-mcu-board`: the QEMU `mps2-an386` demo board, shared by the bootloader
//! (`bootloader/firmware`) and the application (`mcu/app`) so both reach the same boot
//! state through the same flash driver and trust the same keys.
//!
//! - [`flash_map`]: where the slots, the boot state and an application's vector table are;
//! - [`RamNor`]: the simulated NOR flash, persisted across QEMU runs in a host file;
//! - [`anchors`]: the keys and board id this build trusts (written by `build.rs`);
//! - [`boot_control`]: otter-boot's state API over the board's flash;
//! - [`exit`]: ends the QEMU run with a status the host reads.

#![no_std]

mod nor;
#[cfg(feature = "persist")]
pub mod persist;

pub use nor::RamNor;

/// Where the slots and the boot state are (shared with the QEMU tests).
pub mod flash_map {
    include!("../flash_map.rs");
}

/// Trust anchors written by `build.rs` (the DEMO ONLY key unless `OTTER_TRUST_ANCHORS`):
/// `HARDWARE_ID` and `PUBLIC_KEYS`.
#[allow(missing_docs)] // an `otter-keys trust-bundle` anchors.rs has no doc comments
pub mod anchors {
    include!(concat!(env!("OUT_DIR"), "/anchors.rs"));
}

use core::cell::RefCell;
use core::fmt;

use otter_boot::flash::Shared;
use otter_boot::image::{HardwareId, ImageError};
use otter_boot::layout::LayoutError;
use otter_boot::trust::{Anchors, TrustedKey};
use otter_boot::{BootConfig, BootControl, Layout, Partition, Slot};

/// Slot A, on device 0 (the simulated NOR flash).
pub const SLOT_A: Partition = Partition::new(0, flash_map::SLOT_A, flash_map::SLOT_LEN);
/// Slot B.
pub const SLOT_B: Partition = Partition::new(0, flash_map::SLOT_B, flash_map::SLOT_LEN);
/// The boot state partition.
pub const STATE: Partition = Partition::new(0, flash_map::STATE, flash_map::STATE_LEN);

/// How many keys this build trusts.
pub const KEY_COUNT: usize = anchors::PUBLIC_KEYS.len();

/// One handle on the board's flash (the slots and the state share the device).
pub type Flash<'a> = Shared<'a, RamNor>;
/// otter-boot's boot state API on this board.
pub type Control<'a, 'k> = BootControl<'k, Flash<'a>, Flash<'a>, Flash<'a>>;

/// The keys this build trusts, for [`boot_control`] to borrow.
pub fn trusted_keys() -> [TrustedKey; KEY_COUNT] {
    anchors::PUBLIC_KEYS.map(TrustedKey::new)
}

/// Why the board's boot control could not be set up (a build with bad anchors or map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The anchors' hardware id is malformed.
    HardwareId(ImageError),
    /// The flash map is not a valid layout on this flash.
    Layout(LayoutError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HardwareId(e) => write!(f, "hardware id: {e}"),
            Self::Layout(e) => write!(f, "layout: {e}"),
        }
    }
}

/// The boot state API over the board's flash, with the default policy (3 trial boots).
pub fn boot_control<'a, 'k>(
    nor: &'a RefCell<RamNor>,
    keys: &'k [TrustedKey],
) -> Result<Control<'a, 'k>, SetupError> {
    let hardware_id = HardwareId::new(anchors::HARDWARE_ID).map_err(SetupError::HardwareId)?;
    let anchors = Anchors { hardware_id, keys };
    let layout = Layout::new(SLOT_A, SLOT_B, STATE).map_err(SetupError::Layout)?;
    let (a, b, state) = (Shared::new(nor), Shared::new(nor), Shared::new(nor));
    BootControl::new(layout, a, b, state, anchors, BootConfig::default())
        .map_err(SetupError::Layout)
}

/// Absolute address of a slot's first byte (its image header).
pub const fn slot_address(slot: Slot) -> u32 {
    flash_map::NOR_BASE
        + match slot {
            Slot::A => flash_map::SLOT_A,
            Slot::B => flash_map::SLOT_B,
        }
}

/// Ends the QEMU run with exit status `code` (semihosting `SYS_EXIT_EXTENDED`, which QEMU
/// turns into its own exit status). Halts if no semihosting host is attached.
pub fn exit(code: u32) -> ! {
    /// `ADP_Stopped_ApplicationExit`: the reason that makes QEMU exit with the subcode.
    const APPLICATION_EXIT: usize = 0x2_0026;
    /// `SYS_EXIT_EXTENDED`.
    const EXIT_EXTENDED: usize = 0x20;
    let block = [APPLICATION_EXIT, code as usize];
    // SAFETY: SYS_EXIT_EXTENDED reads the two-word block; it does not return under QEMU.
    unsafe {
        cortex_m_semihosting::syscall(EXIT_EXTENDED, &block);
    }
    loop {
        cortex_m::asm::wfi();
    }
}
