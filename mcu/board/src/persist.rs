//! The host file that keeps the simulated NOR flash across QEMU runs, reached through ARM
//! semihosting file I/O. mps2-an386 has no flash device QEMU could back with a file (no
//! pflash), so the driver writes every program and erase through to this file, and the next
//! run loads the file back into the flash region with `-device loader`.

use cortex_m_semihosting::{nr, syscall};

/// An open host file (a semihosting file handle).
pub struct HostFile {
    handle: usize,
}

/// The host refused a semihosting file operation (no semihosting host, a missing file, a
/// full disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostIoError;

impl HostFile {
    /// Opens an existing file for reading and writing ("r+b"); `name` ends with a NUL.
    pub fn open_existing(name: &str) -> Result<Self, HostIoError> {
        let Some(len) = name.len().checked_sub(1).filter(|_| name.ends_with('\0')) else {
            return Err(HostIoError);
        };
        // SAFETY: SYS_OPEN reads `len` bytes of the name (plus its NUL) from a live &str.
        let handle = unsafe { syscall!(OPEN, name.as_ptr(), nr::open::RW_BINARY, len) };
        if handle as isize == -1 {
            return Err(HostIoError);
        }
        Ok(Self { handle })
    }

    /// Writes all of `bytes` at byte `offset` of the file.
    pub fn write_at(&mut self, offset: u32, bytes: &[u8]) -> Result<(), HostIoError> {
        // SAFETY: SYS_SEEK takes the handle and a position; it touches no target memory.
        if unsafe { syscall!(SEEK, self.handle, offset) } != 0 {
            return Err(HostIoError);
        }
        // SAFETY: SYS_WRITE reads `bytes.len()` bytes from a live slice.
        let not_written = unsafe { syscall!(WRITE, self.handle, bytes.as_ptr(), bytes.len()) };
        if not_written != 0 {
            return Err(HostIoError);
        }
        Ok(())
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        // SAFETY: SYS_CLOSE takes the handle only; it is not used again.
        unsafe {
            syscall!(CLOSE, self.handle);
        }
    }
}
