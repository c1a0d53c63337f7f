//! A NOR flash kept in a file, with the rules of real NOR (and of `otter-boot`'s
//! `SimFlash`): erase sets whole 4 KiB sectors to `0xFF`, a program can only clear bits,
//! offsets and lengths must respect the word and sector sizes.
//!
//! A program that would turn a 0 bit back into 1 is refused with
//! [`FileFlashError::ProgramOverZero`] before anything is written, exactly like `SimFlash`,
//! so code that forgets to erase fails in tests instead of silently storing the AND of old
//! and new data as a real chip would.
//!
//! Writes go through the OS page cache; [`FileFlash::sync`] makes them durable, as a
//! chip's program is.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::power_cut::{Fate, PowerCut, Tear, mixed};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Value of an erased byte.
pub const ERASED: u8 = 0xFF;

/// Program granularity of the simulated device (bytes).
const WORD: usize = 4;
/// Erase sector of the simulated device (bytes).
const SECTOR: usize = 4096;

/// A sector's worth of erased bytes, written by erase.
static ERASED_SECTOR: [u8; SECTOR] = [ERASED; SECTOR];

/// Why a [`FileFlash`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileFlashError {
    /// Offset or length is not a multiple of the word (program) or sector (erase) size.
    #[error("flash access not aligned")]
    NotAligned,
    /// The range does not lie inside the flash.
    #[error("flash access out of bounds")]
    OutOfBounds,
    /// A program would turn a 0 bit back into 1 (the sector needs an erase first).
    #[error("program would turn a 0 bit into 1 at offset {offset:#x}")]
    ProgramOverZero {
        /// First byte offset where that would happen.
        offset: u32,
    },
    /// The file's size is not a whole number of sectors, or is above 4 GiB (flash offsets
    /// are `u32`), or zero.
    #[error("flash size {0} is not a non-zero multiple of 4096 bytes up to 4 GiB")]
    BadSize(u64),
    /// The file could not be created, read or written.
    #[error("flash file: {0}")]
    Io(#[from] io::Error),
    /// The simulated power was cut ([`PowerCut`]); nothing more reaches the flash.
    #[error("power lost (simulated power cut)")]
    PowerLost,
}

impl NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::ProgramOverZero { .. } | Self::BadSize(_) | Self::Io(_) | Self::PowerLost => {
                NorFlashErrorKind::Other
            }
        }
    }
}

/// NOR flash in a file: 4-byte program words, 4 KiB erase sectors (the geometry of the
/// simulated device; common SPI NOR parts erase 4 KiB sectors too).
#[derive(Debug)]
pub struct FileFlash {
    file: File,
    capacity: u32,
    power: Option<PowerCut>,
}

impl FileFlash {
    /// A new, fully erased flash of `size` bytes at `path`. Refuses an existing file (it may
    /// be a device's only copy of its firmware) and a size that is not whole sectors.
    pub fn create(path: impl AsRef<Path>, size: u32) -> Result<Self, FileFlashError> {
        let capacity = check_size(u64::from(size))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path.as_ref())?;
        let flash = Self {
            file,
            capacity,
            power: None,
        };
        let mut at = 0u32;
        while at < capacity {
            flash.file.write_all_at(&ERASED_SECTOR, u64::from(at))?;
            at = at.saturating_add(SECTOR as u32);
        }
        Ok(flash)
    }

    /// An existing flash file (or a block device: its size is found by seeking to the end).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileFlashError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path.as_ref())?;
        let size = file.seek(SeekFrom::End(0))?;
        let capacity = check_size(size)?;
        Ok(Self {
            file,
            capacity,
            power: None,
        })
    }

    /// This flash with simulated power loss: `cut` counts its erases and programs and tears
    /// the chosen one (tests of power failure at every flash operation).
    pub fn with_power_cut(mut self, cut: Option<PowerCut>) -> Self {
        self.power = cut;
        self
    }

    /// What to do with the next erase or program, given the simulated power.
    fn fate(&self) -> Fate {
        self.power.as_ref().map_or(Fate::Run, PowerCut::next)
    }

    /// Makes every completed erase and program durable.
    pub fn sync(&self) -> Result<(), FileFlashError> {
        self.file.sync_data()?;
        Ok(())
    }

    /// `offset..offset + len` as file positions, if inside the flash.
    fn range(&self, offset: u32, len: usize) -> Result<(u64, u64), FileFlashError> {
        let len = u64::try_from(len).map_err(|_| FileFlashError::OutOfBounds)?;
        let start = u64::from(offset);
        let end = start.checked_add(len).ok_or(FileFlashError::OutOfBounds)?;
        if end > u64::from(self.capacity) {
            return Err(FileFlashError::OutOfBounds);
        }
        Ok((start, end))
    }

    /// Checks that programming `bytes` at `start` only clears bits, reading the current
    /// contents a sector at a time.
    fn check_clears_only(&self, start: u64, bytes: &[u8]) -> Result<(), FileFlashError> {
        let mut current = [0u8; SECTOR];
        let mut at = start;
        for new in bytes.chunks(SECTOR) {
            let old = current
                .get_mut(..new.len())
                .ok_or(FileFlashError::OutOfBounds)?;
            self.file.read_exact_at(old, at)?;
            if let Some(pos) = old.iter().zip(new).position(|(o, n)| o & n != *n) {
                let bad = at.saturating_add(pos as u64);
                let offset = u32::try_from(bad).map_err(|_| FileFlashError::OutOfBounds)?;
                return Err(FileFlashError::ProgramOverZero { offset });
            }
            at = at.saturating_add(new.len() as u64);
        }
        Ok(())
    }
}

/// Size of a flash file as a capacity: whole sectors, non-zero, within `u32`.
fn check_size(size: u64) -> Result<u32, FileFlashError> {
    match u32::try_from(size) {
        Ok(s) if s > 0 && (s as usize).is_multiple_of(SECTOR) => Ok(s),
        _ => Err(FileFlashError::BadSize(size)),
    }
}

impl ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if self.power.as_ref().is_some_and(PowerCut::is_dead) {
            return Err(FileFlashError::PowerLost);
        }
        let (start, _) = self.range(offset, bytes.len())?;
        self.file.read_exact_at(bytes, start)?;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if from > to {
            return Err(FileFlashError::OutOfBounds);
        }
        let (start, end) = self.range(from, (to - from) as usize)?;
        if !start.is_multiple_of(SECTOR as u64) || !end.is_multiple_of(SECTOR as u64) {
            return Err(FileFlashError::NotAligned);
        }
        let sectors = (end - start) / SECTOR as u64;
        let (done, torn) = match self.fate() {
            Fate::Run => (sectors, false),
            Fate::Dead | Fate::Tear(Tear::Before) => return Err(FileFlashError::PowerLost),
            Fate::Tear(Tear::Prefix) => (sectors / 2, true),
            Fate::Tear(Tear::Inside) => {
                let at = start + sectors / 2 * SECTOR as u64;
                let mut old = [0u8; 16];
                self.file.read_exact_at(&mut old, at)?;
                self.file.write_all_at(&mixed(&old, &[ERASED; 16]), at)?;
                (sectors / 2, true)
            }
        };
        for i in 0..done {
            self.file
                .write_all_at(&ERASED_SECTOR, start + i * SECTOR as u64)?;
        }
        if torn {
            return Err(FileFlashError::PowerLost);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let (start, _) = self.range(offset, bytes.len())?;
        if !start.is_multiple_of(WORD as u64) || !bytes.len().is_multiple_of(WORD) {
            return Err(FileFlashError::NotAligned);
        }
        // Checked in full first, so a refused program changes nothing. Once it passes, the
        // AND of old and new is `bytes` itself.
        self.check_clears_only(start, bytes)?;
        let half = bytes.len() / WORD / 2 * WORD;
        match self.fate() {
            Fate::Run => {
                self.file.write_all_at(bytes, start)?;
                Ok(())
            }
            Fate::Dead | Fate::Tear(Tear::Before) => Err(FileFlashError::PowerLost),
            Fate::Tear(tear) => {
                let (done, rest) = bytes.split_at(half);
                self.file.write_all_at(done, start)?;
                if let (Tear::Inside, Some(word)) = (tear, rest.get(..WORD)) {
                    let at = start + half as u64;
                    let mut old = [0u8; WORD];
                    self.file.read_exact_at(&mut old, at)?;
                    self.file.write_all_at(&mixed(&old, word), at)?;
                }
                Err(FileFlashError::PowerLost)
            }
        }
    }
}
