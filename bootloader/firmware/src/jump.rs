//! Handing the core to the application in the chosen slot.
//!
//! Images execute in place, each linked for the slot it is installed in (see README.md,
//! "Booting the application"): the vector table sits at slot + `APP_VECTOR_OFFSET`, inside
//! the signed payload. The signature says who built the image, not that it was linked for
//! this slot, so before the jump the table is checked to belong here: its stack pointer in
//! RAM, its reset handler a Thumb address inside this slot's payload. An image linked for
//! the other slot would otherwise run the other slot's code.

use core::fmt;

use embedded_storage::nor_flash::ReadNorFlash;
use otter_boot::Slot;
use otter_boot::image::{HEADER_LEN, Header};
use otter_mcu_board::flash_map::{APP_VECTOR_OFFSET, NOR_BASE, RAM_BASE, RAM_LEN};
use otter_mcu_board::slot_address;

/// A checked application entry: where its vector table is.
pub struct Entry {
    vector_table: u32,
}

/// Why a verified image is not an application this bootloader can start from its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The payload ends before the vector table's first two words.
    TooShort {
        /// The payload's length.
        payload_len: u32,
    },
    /// The vector table could not be read.
    Unreadable,
    /// The initial stack pointer is not an 8-byte aligned address in RAM.
    Stack(u32),
    /// The reset handler is not a Thumb address inside this slot's payload (an image linked
    /// for the other slot, or not an application at all).
    Reset(u32),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { payload_len } => write!(
                f,
                "payload of {payload_len} bytes ends before the vector table at offset {APP_VECTOR_OFFSET:#x}"
            ),
            Self::Unreadable => write!(f, "vector table unreadable"),
            Self::Stack(sp) => write!(f, "initial stack pointer {sp:#010x} is not in RAM"),
            Self::Reset(pc) => write!(
                f,
                "reset handler {pc:#010x} is not in this slot's image (linked for another slot?)"
            ),
        }
    }
}

/// Finds and checks the application entry of the verified image `header` in `slot`.
pub fn find<F: ReadNorFlash>(
    nor: &mut F,
    slot: Slot,
    header: &Header,
) -> Result<Entry, EntryError> {
    let base = slot_address(slot);
    let padding = APP_VECTOR_OFFSET - HEADER_LEN as u32;
    let payload_len = header.payload_len;
    if payload_len < padding + 8 {
        return Err(EntryError::TooShort { payload_len });
    }
    let vector_table = base + APP_VECTOR_OFFSET;
    let mut words = [0u8; 8];
    nor.read(vector_table - NOR_BASE, &mut words)
        .map_err(|_| EntryError::Unreadable)?;
    let [s0, s1, s2, s3, r0, r1, r2, r3] = words;
    let stack = u32::from_le_bytes([s0, s1, s2, s3]);
    let reset = u32::from_le_bytes([r0, r1, r2, r3]);

    if stack <= RAM_BASE || stack > RAM_BASE + RAM_LEN || !stack.is_multiple_of(8) {
        return Err(EntryError::Stack(stack));
    }
    // The handler's code must be in the payload, after the table's first two words.
    let payload_end = base + HEADER_LEN as u32 + payload_len;
    let code = reset & !1;
    if reset & 1 == 0 || code < vector_table + 8 || code >= payload_end {
        return Err(EntryError::Reset(reset));
    }
    Ok(Entry { vector_table })
}

/// Points VTOR at the application's vector table, loads its stack pointer and branches to
/// its reset handler. Call it last: nothing of the bootloader survives.
pub fn start(entry: &Entry) -> ! {
    let table = entry.vector_table as *const u32;
    // SAFETY: `find` checked that a verified, signed image holds the table at this 1 KiB
    // aligned address (as VTOR requires for 256 entries), with a stack pointer in RAM and a
    // Thumb reset handler inside the same image. The bootloader enabled no interrupt, so no
    // handler of its own can run once VTOR points at the application's table; the
    // application's reset handler re-initialises RAM and the FPU as at a cold reset.
    unsafe {
        let scb = &*cortex_m::peripheral::SCB::PTR;
        scb.vtor.write(entry.vector_table);
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
        cortex_m::asm::bootload(table)
    }
}
