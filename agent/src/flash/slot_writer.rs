//! Filling an image slot from a byte stream: the sink of a patch apply or a full-image
//! download.
//!
//! Each erase sector is erased just before the first write that reaches it, so a stream of
//! unknown length erases only what it uses, and sectors past the image keep their old
//! bytes (the verifier reads only the image's own length). Bytes are gathered into a fixed
//! buffer and programmed in whole words; [`SlotWriter::finish`] pads the last word with
//! `0xFF` (the erased value, so the padding programs nothing).

use core::fmt;

use embedded_storage::nor_flash::{NorFlash, NorFlashError};
use otter_boot::layout::{Partition, PartitionName};

use super::file::ERASED;

/// Largest `WRITE_SIZE` supported; also the size of the writer's buffer, so programs are
/// issued in pieces of up to this many bytes.
pub const MAX_WRITE_SIZE: usize = 4096;

/// Why a [`SlotWriter`] refused or failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotWriteError<E> {
    /// The stream is longer than the partition.
    PartitionFull {
        /// Partition size in bytes.
        capacity: u32,
        /// Bytes the stream would have needed.
        needed: u64,
    },
    /// The partition is not whole sectors on the device, or the device's word size does not
    /// divide [`MAX_WRITE_SIZE`].
    Geometry,
    /// The flash driver failed.
    Flash(E),
}

impl<E: NorFlashError> fmt::Display for SlotWriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PartitionFull { capacity, needed } => write!(
                f,
                "image does not fit the slot: {needed} bytes needed, {capacity} available"
            ),
            Self::Geometry => f.write_str(
                "slot is not whole erase sectors on its flash, or the flash word size is unsupported",
            ),
            Self::Flash(e) => write!(f, "writing the slot: flash {}: {e:?}", e.kind()),
        }
    }
}

impl<E: NorFlashError> std::error::Error for SlotWriteError<E> {}

/// Writes a byte stream into one partition of a flash, front to back.
pub struct SlotWriter<F> {
    flash: F,
    partition: Partition,
    /// Bytes accepted so far (buffered or programmed).
    written: u64,
    /// Flash offset where the buffer's first byte goes (word-aligned).
    flush_at: u32,
    /// Flash offset up to which sectors have been erased by this writer.
    erased_to: u32,
    buf: [u8; MAX_WRITE_SIZE],
    buf_len: usize,
}

impl<F> fmt::Debug for SlotWriter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotWriter")
            .field("partition", &self.partition)
            .field("written", &self.written)
            .field("erased_to", &self.erased_to)
            .finish_non_exhaustive()
    }
}

impl<F: NorFlash> SlotWriter<F> {
    /// A writer at the start of `partition` of `flash`. Nothing is erased until the first
    /// write needs it.
    pub fn new(flash: F, partition: Partition) -> Result<Self, SlotWriteError<F::Error>> {
        let word = F::WRITE_SIZE;
        if word == 0
            || !MAX_WRITE_SIZE.is_multiple_of(word)
            || !F::ERASE_SIZE.is_multiple_of(word)
            || partition.check_on(PartitionName::SlotB, &flash).is_err()
        {
            return Err(SlotWriteError::Geometry);
        }
        Ok(Self {
            flash,
            partition,
            written: 0,
            flush_at: partition.offset,
            erased_to: partition.offset,
            buf: [ERASED; MAX_WRITE_SIZE],
            buf_len: 0,
        })
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The partition being written.
    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// Appends `bytes`. Refused as a whole, before any of it is written, if the stream
    /// would pass the end of the partition.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), SlotWriteError<F::Error>> {
        let needed = self.written.saturating_add(bytes.len() as u64);
        if needed > u64::from(self.partition.size) {
            return Err(SlotWriteError::PartitionFull {
                capacity: self.partition.size,
                needed,
            });
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(space) = self.buf.get_mut(self.buf_len..) else {
                break;
            };
            let n = space.len().min(rest.len());
            let (now, later) = rest.split_at(n);
            if let Some(dst) = space.get_mut(..n) {
                dst.copy_from_slice(now);
            }
            self.buf_len += n;
            rest = later;
            if self.buf_len == MAX_WRITE_SIZE {
                self.flush()?;
            }
        }
        self.written = needed;
        Ok(())
    }

    /// Programs what is buffered, the last word padded with `0xFF`, and gives the flash
    /// back with the number of bytes written.
    pub fn finish(mut self) -> Result<(F, u64), SlotWriteError<F::Error>> {
        self.flush()?;
        Ok((self.flash, self.written))
    }

    /// Programs the buffer (padded to a whole word), erasing the sectors it reaches first.
    fn flush(&mut self) -> Result<(), SlotWriteError<F::Error>> {
        if self.buf_len == 0 {
            return Ok(());
        }
        let len = self.buf_len.next_multiple_of(F::WRITE_SIZE);
        let chunk = self.buf.get_mut(..len).ok_or(SlotWriteError::Geometry)?;
        chunk
            .get_mut(self.buf_len..)
            .ok_or(SlotWriteError::Geometry)?
            .fill(ERASED);
        let end = self
            .flush_at
            .checked_add(len as u32)
            .ok_or(SlotWriteError::Geometry)?;
        let sector = F::ERASE_SIZE as u32;
        while self.erased_to < end {
            let next = self
                .erased_to
                .checked_add(sector)
                .ok_or(SlotWriteError::Geometry)?;
            self.flash
                .erase(self.erased_to, next)
                .map_err(SlotWriteError::Flash)?;
            self.erased_to = next;
        }
        self.flash
            .write(self.flush_at, chunk)
            .map_err(SlotWriteError::Flash)?;
        self.flush_at = end;
        self.buf_len = 0;
        Ok(())
    }
}
