//! The QEMU `mps2-an386` board: a simulated NOR flash in the code memory right after the
//! bootloader. QEMU maps plain RAM there, so this driver gives it NOR semantics: erase sets
//! whole 4 KiB sectors to 0xFF, programming can only clear bits (new = old AND data).

use core::sync::atomic::{AtomicBool, Ordering};

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash, check_erase, check_read, check_write,
};

use crate::flash_map::{NOR_BASE, NOR_LEN};

/// Set once the flash has been handed out, so there is only ever one `RamNor`.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The simulated NOR flash (offset 0 is absolute address `NOR_BASE`).
pub struct RamNor {
    mem: &'static mut [u8],
}

impl RamNor {
    /// The flash, the first time this is called; `None` after that.
    pub fn take() -> Option<Self> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: QEMU maps RAM at NOR_BASE..NOR_BASE + NOR_LEN; memory.x keeps the linker
        // (code, data, stack) out of it, and TAKEN makes this the only reference to it.
        let mem = unsafe { core::slice::from_raw_parts_mut(NOR_BASE as *mut u8, NOR_LEN as usize) };
        Some(Self { mem })
    }

    /// The bytes `offset..offset + len`, already checked by `check_*`.
    fn range(&mut self, offset: u32, len: usize) -> Result<&mut [u8], NorFlashErrorKind> {
        let start = offset as usize;
        self.mem
            .get_mut(start..start + len)
            .ok_or(NorFlashErrorKind::OutOfBounds)
    }
}

impl ErrorType for RamNor {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamNor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len())?;
        bytes.copy_from_slice(self.range(offset, bytes.len())?);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for RamNor {
    /// Word programming, as on an STM32F4.
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to)?;
        self.range(from, (to - from) as usize)?.fill(0xff);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len())?;
        for (cell, b) in self.range(offset, bytes.len())?.iter_mut().zip(bytes) {
            *cell &= *b;
        }
        Ok(())
    }
}
