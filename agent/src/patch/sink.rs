//! Where the applier writes the new image: strictly in order, so a flash slot can take it
//! sector by sector without ever holding the image in RAM.

use core::convert::Infallible;
use core::fmt;
use std::io;

use embedded_storage::nor_flash::NorFlash;

use crate::flash::{SlotWriteError, SlotWriter};

/// Takes the new image in order, piece by piece.
pub trait Sink {
    /// Why a write failed.
    type Error: fmt::Debug + fmt::Display;

    /// Appends `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

impl<S: Sink + ?Sized> Sink for &mut S {
    type Error = S::Error;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        (**self).write_all(bytes)
    }
}

/// The whole new image in RAM: for tests and hosts, not for devices.
impl Sink for Vec<u8> {
    type Error = Infallible;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Any [`std::io::Write`] (a file, a socket to a device behind a gateway) as a sink.
#[derive(Debug)]
pub struct IoSink<W>(pub W);

impl<W: io::Write> Sink for IoSink<W> {
    type Error = io::Error;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write_all(bytes)
    }
}

/// The inactive slot: what a device installs into.
impl<F: NorFlash> Sink for SlotWriter<F> {
    type Error = SlotWriteError<F::Error>;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.write(bytes)
    }
}
