//! The simulated NOR flash in the code memory right after the bootloader. QEMU maps plain
//! RAM there, so this driver gives it NOR semantics: erase sets whole 4 KiB sectors to 0xFF,
//! programming can only clear bits (new = old AND data). When the host file
//! [`FLASH_FILE`] exists in QEMU's working directory, every erase and program is also
//! written through to it, so the flash outlives the QEMU run (see [`crate::persist`]).

use core::sync::atomic::{AtomicBool, Ordering};

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash, check_erase, check_read, check_write,
};

use crate::flash_map::{NOR_BASE, NOR_LEN};
#[cfg(feature = "persist")]
use crate::persist::HostFile;

/// Set once the flash has been handed out, so there is only ever one `RamNor`.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The simulated NOR flash (offset 0 is absolute address `NOR_BASE`).
///
/// It is reached through a raw pointer, never a `&mut [u8]`: an application executes in
/// place from its slot, so its own code and constants live in this memory while it runs.
pub struct RamNor {
    base: *mut u8,
    /// Where writes persist; `None` when the host file is absent (the flash then lasts
    /// one QEMU run, as when a test loads fixed regions).
    #[cfg(feature = "persist")]
    file: Option<HostFile>,
}

impl RamNor {
    /// The flash, the first time this is called; `None` after that.
    pub fn take() -> Option<Self> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Self {
            base: NOR_BASE as *mut u8,
            #[cfg(feature = "persist")]
            file: HostFile::open_existing(crate::flash_map::FLASH_FILE).ok(),
        })
    }

    /// Pointer to `offset`, for `len` bytes already checked by `check_*` to be inside.
    fn at(&self, offset: u32, len: usize) -> Result<*mut u8, NorFlashErrorKind> {
        let end = (offset as usize).checked_add(len);
        if end.is_none_or(|end| end > NOR_LEN as usize) {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        // SAFETY: offset + len <= NOR_LEN (checked above), so the pointer stays inside the
        // NOR_LEN bytes QEMU maps at NOR_BASE.
        Ok(unsafe { self.base.add(offset as usize) })
    }

    /// Writes the bytes now at `offset..offset + len` through to the host file.
    #[cfg(feature = "persist")]
    fn persist(&mut self, offset: u32, len: usize) -> Result<(), NorFlashErrorKind> {
        let ptr = self.at(offset, len)?;
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        // SAFETY: `at` checked the range; the slice lives only for this call, during which
        // nothing else writes the flash (`&mut self`).
        let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
        // A write the host lost would make the next run see other flash than this one.
        file.write_at(offset, bytes)
            .map_err(|_| NorFlashErrorKind::Other)
    }

    /// Without `persist`, the flash is the memory alone.
    #[cfg(not(feature = "persist"))]
    fn persist(&mut self, offset: u32, len: usize) -> Result<(), NorFlashErrorKind> {
        self.at(offset, len).map(|_| ())
    }
}

impl ErrorType for RamNor {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamNor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len())?;
        let src = self.at(offset, bytes.len())?;
        // SAFETY: `at` checked the range, and `bytes` (our caller's buffer in RAM) cannot
        // overlap the flash region, which memory.x keeps the linker out of.
        unsafe { core::ptr::copy_nonoverlapping(src, bytes.as_mut_ptr(), bytes.len()) };
        Ok(())
    }

    fn capacity(&self) -> usize {
        NOR_LEN as usize
    }
}

impl NorFlash for RamNor {
    /// Word programming, as on an STM32F4.
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to)?;
        let len = (to - from) as usize;
        let dst = self.at(from, len)?;
        // SAFETY: `at` checked the range. Nothing erases the slot that is executing: the
        // boot state API erases only the state partition and a given-up trial slot.
        unsafe { core::ptr::write_bytes(dst, 0xff, len) };
        self.persist(from, len)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len())?;
        let dst = self.at(offset, bytes.len())?;
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: `at` checked offset..offset + bytes.len(), so dst + i is inside.
            unsafe {
                let cell = dst.add(i);
                cell.write_volatile(cell.read_volatile() & *b);
            }
        }
        self.persist(offset, bytes.len())
    }
}
