//! Glue between our code and the `embedded-storage` traits: one error type for any flash,
//! a handle that lets several partitions share one device, and the adapter that runs the
//! async `sequential-storage` over a blocking flash driver.

use core::cell::RefCell;
use core::fmt;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// A flash driver failed; the kind is all that is kept, so errors of different drivers
/// fit in one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashError(pub NorFlashErrorKind);

impl FlashError {
    pub(crate) fn from_driver<E: NorFlashError>(e: E) -> Self {
        Self(e.kind())
    }
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flash error: {}", self.0)
    }
}

/// A flash device used through several handles (slot A and the state partition on the same
/// chip, say). Each operation borrows the device only for its own duration.
pub struct Shared<'a, F>(&'a RefCell<F>);

impl<'a, F> Shared<'a, F> {
    /// A handle on a shared device.
    pub fn new(device: &'a RefCell<F>) -> Self {
        Self(device)
    }
}

/// Error of a [`Shared`] handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedError<E> {
    /// The device was already in use through another handle (a re-entrancy bug, not a
    /// flash fault); reported instead of panicking.
    Busy,
    /// The device itself failed.
    Device(E),
}

impl<E: NorFlashError> NorFlashError for SharedError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::Busy => NorFlashErrorKind::Other,
            Self::Device(e) => e.kind(),
        }
    }
}

impl<F: ErrorType> ErrorType for Shared<'_, F> {
    type Error = SharedError<F::Error>;
}

impl<F: ErrorType> Shared<'_, F> {
    fn with<T>(
        &self,
        op: impl FnOnce(&mut F) -> Result<T, F::Error>,
    ) -> Result<T, SharedError<F::Error>> {
        let mut dev = self.0.try_borrow_mut().map_err(|_| SharedError::Busy)?;
        op(&mut dev).map_err(SharedError::Device)
    }
}

impl<F: ReadNorFlash> ReadNorFlash for Shared<'_, F> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.with(|f| f.read(offset, bytes))
    }

    fn capacity(&self) -> usize {
        self.0.try_borrow().map_or(0, |f| f.capacity())
    }
}

impl<F: NorFlash> NorFlash for Shared<'_, F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.with(|f| f.erase(from, to))
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.with(|f| f.write(offset, bytes))
    }
}

impl<F: MultiwriteNorFlash> MultiwriteNorFlash for Shared<'_, F> {}

/// Read-only flash over a byte slice, so an image in RAM is verified by the same code as an
/// image in a slot.
pub struct SliceFlash<'a>(pub &'a [u8]);

/// Error of [`SliceFlash`]: the only failure is reading past the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds;

impl NorFlashError for OutOfBounds {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::OutOfBounds
    }
}

impl ErrorType for SliceFlash<'_> {
    type Error = OutOfBounds;
}

impl ReadNorFlash for SliceFlash<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), OutOfBounds> {
        let start = offset as usize;
        let src = start
            .checked_add(bytes.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or(OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.0.len()
    }
}

/// Presents a blocking driver through the async traits `sequential-storage` is written
/// against. Every future it returns is ready at once.
pub(crate) struct Async<'a, F>(pub &'a mut F);

impl<F: ErrorType> embedded_storage_async::nor_flash::ErrorType for Async<'_, F> {
    type Error = F::Error;
}

impl<F: ReadNorFlash> embedded_storage_async::nor_flash::ReadNorFlash for Async<'_, F> {
    const READ_SIZE: usize = F::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> embedded_storage_async::nor_flash::NorFlash for Async<'_, F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0.erase(from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write(offset, bytes)
    }
}

/// Runs a future to completion by polling. Used only on futures over [`Async`], which
/// never wait, so this never spins.
pub(crate) fn block_on<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

impl core::error::Error for FlashError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_flash_reads_in_bounds_and_refuses_past_the_end() {
        let data = [1u8, 2, 3, 4];
        let mut f = SliceFlash(&data);
        let mut buf = [0u8; 2];
        f.read(2, &mut buf).unwrap();
        assert_eq!(buf, [3, 4]);
        assert_eq!(f.read(3, &mut buf), Err(OutOfBounds));
        assert_eq!(f.read(u32::MAX, &mut buf), Err(OutOfBounds));
    }

    #[test]
    fn shared_handle_reports_reentrant_use_instead_of_panicking() {
        let data = [0u8; 4];
        let cell = RefCell::new(SliceFlash(&data));
        let mut a = Shared::new(&cell);
        let _held = cell.borrow_mut();
        assert_eq!(a.read(0, &mut [0u8; 1]), Err(SharedError::Busy));
    }
}
