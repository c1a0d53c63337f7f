//! A read-only `ReadNorFlash` view of a local file, so an uploaded image is checked by
//! otter-boot's own streaming verifier, the same code the bootloader runs, and never has to
//! be loaded into memory whole.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// A file presented as NOR flash that can only be read.
#[derive(Debug)]
pub struct FileFlash {
    file: File,
    len: u64,
    /// Where the file cursor is, so sequential reads skip the seek.
    pos: u64,
}

/// Why a read of a [`FileFlash`] failed. The I/O detail is logged; the verifier keeps only
/// the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFlashError {
    /// The read reaches past the end of the file.
    OutOfBounds,
    /// The operating system failed the read.
    Io,
}

impl NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::Io => NorFlashErrorKind::Other,
        }
    }
}

impl FileFlash {
    /// Wraps `file`, whose current length is the flash capacity.
    pub fn new(file: File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, len, pos: 0 })
    }

    /// The file length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FileFlashError> {
        let start = u64::from(offset);
        let end = start
            .checked_add(bytes.len() as u64)
            .ok_or(FileFlashError::OutOfBounds)?;
        if end > self.len {
            return Err(FileFlashError::OutOfBounds);
        }
        let io = |e: std::io::Error| {
            tracing::warn!(error = %e, "reading a staged file failed");
            FileFlashError::Io
        };
        if self.pos != start {
            self.file.seek(SeekFrom::Start(start)).map_err(io)?;
            self.pos = start;
        }
        self.file.read_exact(bytes).map_err(io)?;
        self.pos = end;
        Ok(())
    }

    fn capacity(&self) -> usize {
        usize::try_from(self.len).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_anywhere_inside_and_refuses_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut flash = FileFlash::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(flash.len(), 10);
        let mut buf = [0u8; 3];
        flash.read(7, &mut buf).unwrap();
        assert_eq!(&buf, b"789");
        flash.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"012");
        flash.read(3, &mut buf).unwrap();
        assert_eq!(&buf, b"345");
        assert_eq!(flash.read(8, &mut buf), Err(FileFlashError::OutOfBounds));
        assert_eq!(
            flash.read(u32::MAX, &mut buf),
            Err(FileFlashError::OutOfBounds)
        );
    }
}
