//! Where the applier reads the old image from: any random-access source, so the running
//! slot is read straight from flash and never copied into RAM.

use core::fmt;

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// The image a patch applies to, read at arbitrary offsets (bsdiff seeks back and forth).
pub trait OldImage {
    /// Why a read failed.
    type Error: fmt::Debug + fmt::Display;

    /// Length of the image in bytes; the applier never reads past it.
    fn len(&self) -> u64;

    /// Whether the image has no bytes (a patch can still build a new image from extra data).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
}

impl<T: OldImage + ?Sized> OldImage for &mut T {
    type Error = T::Error;

    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read_at(offset, buf)
    }
}

/// A read outside a slice. The applier checks bounds first, so this means a bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("read of {len} bytes at {offset} is outside the {size}-byte old image")]
pub struct SliceOutOfBounds {
    /// Requested offset.
    pub offset: u64,
    /// Requested length.
    pub len: usize,
    /// Size of the slice.
    pub size: usize,
}

impl OldImage for &[u8] {
    type Error = SliceOutOfBounds;

    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let err = SliceOutOfBounds {
            offset,
            len: buf.len(),
            size: <[u8]>::len(self),
        };
        let start = usize::try_from(offset).map_err(|_| err)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(err)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Largest `READ_SIZE` a [`FlashRegion`] supports (reads of unaligned edges go through a
/// bounce buffer of this size).
pub const MAX_READ_SIZE: usize = 64;

/// The old image as a region of a NOR flash (usually the running slot, `len` the length
/// of the image in it).
#[derive(Debug)]
pub struct FlashRegion<F> {
    flash: F,
    offset: u32,
    len: u32,
}

/// Why a [`FlashRegion`] could not be made or read.
#[derive(Debug, PartialEq, Eq)]
pub enum RegionError<E> {
    /// The region or a read lies outside it or outside the device.
    OutOfBounds,
    /// The flash's `READ_SIZE` is zero or above [`MAX_READ_SIZE`].
    UnsupportedReadSize(usize),
    /// The flash driver failed.
    Flash(E),
}

impl<E: NorFlashError> fmt::Display for RegionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfBounds => f.write_str("read outside the old image's flash region"),
            Self::UnsupportedReadSize(n) => {
                write!(
                    f,
                    "flash read size {n} is not supported (max {MAX_READ_SIZE})"
                )
            }
            Self::Flash(e) => write!(f, "reading the old image: flash {}: {e:?}", e.kind()),
        }
    }
}

impl<E: NorFlashError> std::error::Error for RegionError<E> {}

impl<E: NorFlashError> NorFlashError for RegionError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::UnsupportedReadSize(_) => NorFlashErrorKind::NotAligned,
            Self::Flash(e) => e.kind(),
        }
    }
}

impl<F: ReadNorFlash> FlashRegion<F> {
    /// The `len` bytes at `offset` of `flash`; refused if they are not all on the device or
    /// the device's read size is unsupported.
    pub fn new(flash: F, offset: u32, len: u32) -> Result<Self, RegionError<F::Error>> {
        if F::READ_SIZE == 0 || F::READ_SIZE > MAX_READ_SIZE {
            return Err(RegionError::UnsupportedReadSize(F::READ_SIZE));
        }
        let end = offset.checked_add(len).ok_or(RegionError::OutOfBounds)?;
        if end as usize > flash.capacity() {
            return Err(RegionError::OutOfBounds);
        }
        Ok(Self { flash, offset, len })
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Reads `buf` at absolute flash offset `at`, splitting off edges that are not aligned
    /// to `READ_SIZE` into a small bounce buffer.
    fn read_aligned(&mut self, at: u32, buf: &mut [u8]) -> Result<(), RegionError<F::Error>> {
        let rs = F::READ_SIZE;
        if rs == 1 {
            return self.flash.read(at, buf).map_err(RegionError::Flash);
        }
        let rs32 = u32::try_from(rs).map_err(|_| RegionError::UnsupportedReadSize(rs))?;
        let mut at = at;
        let mut rest = buf;
        while !rest.is_empty() {
            let skew = (at % rs32) as usize;
            if skew == 0 && rest.len() >= rs {
                // Aligned middle: straight into the caller's buffer.
                let n = rest.len() - rest.len() % rs;
                let (head, tail) = rest.split_at_mut(n);
                self.flash.read(at, head).map_err(RegionError::Flash)?;
                at = at.checked_add(n as u32).ok_or(RegionError::OutOfBounds)?;
                rest = tail;
            } else {
                // Unaligned edge: one read-size block through the bounce buffer.
                let mut bounce = [0u8; MAX_READ_SIZE];
                let block = bounce
                    .get_mut(..rs)
                    .ok_or(RegionError::UnsupportedReadSize(rs))?;
                let base = at - skew as u32;
                self.flash.read(base, block).map_err(RegionError::Flash)?;
                let n = (rs - skew).min(rest.len());
                let src = block.get(skew..skew + n).ok_or(RegionError::OutOfBounds)?;
                let (head, tail) = rest.split_at_mut(n);
                head.copy_from_slice(src);
                at = at.checked_add(n as u32).ok_or(RegionError::OutOfBounds)?;
                rest = tail;
            }
        }
        Ok(())
    }
}

impl<F: ReadNorFlash> OldImage for FlashRegion<F> {
    type Error = RegionError<F::Error>;

    fn len(&self) -> u64 {
        u64::from(self.len)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(RegionError::OutOfBounds)?;
        if end > u64::from(self.len) {
            return Err(RegionError::OutOfBounds);
        }
        // In range of a u32 region, so these fit.
        let at = u32::try_from(offset)
            .ok()
            .and_then(|o| self.offset.checked_add(o))
            .ok_or(RegionError::OutOfBounds)?;
        self.read_aligned(at, buf)
    }
}

#[cfg(test)]
mod tests {
    use embedded_storage::nor_flash::ErrorType;
    use otter_boot::flash::{OutOfBounds, SliceFlash};

    use super::*;

    /// A read-only flash that insists on 4-byte aligned reads, like many real parts.
    struct Aligned4<'a>(SliceFlash<'a>);

    #[derive(Debug)]
    enum E {
        Unaligned,
        Inner(OutOfBounds),
    }

    impl NorFlashError for E {
        fn kind(&self) -> NorFlashErrorKind {
            match self {
                Self::Unaligned => NorFlashErrorKind::NotAligned,
                Self::Inner(e) => e.kind(),
            }
        }
    }

    impl ErrorType for Aligned4<'_> {
        type Error = E;
    }

    impl ReadNorFlash for Aligned4<'_> {
        const READ_SIZE: usize = 4;

        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), E> {
            if !offset.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
                return Err(E::Unaligned);
            }
            self.0.read(offset, bytes).map_err(E::Inner)
        }

        fn capacity(&self) -> usize {
            self.0.capacity()
        }
    }

    #[test]
    fn region_reads_any_range_through_an_aligned_only_flash() {
        let data: Vec<u8> = (0..=255u8).collect();
        let mut region = FlashRegion::new(Aligned4(SliceFlash(&data)), 6, 200).unwrap();
        assert_eq!(region.len(), 200);
        for (offset, len) in [(0, 1), (1, 2), (3, 9), (2, 0), (0, 200), (199, 1), (7, 64)] {
            let mut buf = vec![0u8; len];
            region.read_at(offset, &mut buf).unwrap();
            let start = 6 + offset as usize;
            assert_eq!(buf, data[start..start + len], "offset {offset} len {len}");
        }
    }

    #[test]
    fn region_refuses_reads_outside_itself() {
        let data = [0u8; 64];
        let mut region = FlashRegion::new(SliceFlash(&data), 8, 16).unwrap();
        let mut buf = [0u8; 4];
        assert!(matches!(
            region.read_at(13, &mut buf),
            Err(RegionError::OutOfBounds)
        ));
        assert!(matches!(
            region.read_at(u64::MAX, &mut buf),
            Err(RegionError::OutOfBounds)
        ));
        assert!(region.read_at(12, &mut buf).is_ok());
        assert!(matches!(
            FlashRegion::new(SliceFlash(&data), 60, 8),
            Err(RegionError::OutOfBounds)
        ));
        assert!(matches!(
            FlashRegion::new(SliceFlash(&data), u32::MAX, 8),
            Err(RegionError::OutOfBounds)
        ));
    }

    #[test]
    fn slice_refuses_reads_past_its_end() {
        let data = [1u8, 2, 3];
        let mut old: &[u8] = &data;
        let mut buf = [0u8; 2];
        old.read_at(1, &mut buf).unwrap();
        assert_eq!(buf, [2, 3]);
        assert_eq!(
            old.read_at(2, &mut buf),
            Err(SliceOutOfBounds {
                offset: 2,
                len: 2,
                size: 3
            })
        );
        assert!(old.read_at(u64::MAX, &mut buf).is_err());
    }
}
