//! The zstd layer around a patch. The server compresses with a window of at most
//! 2^[`DELTA_ZSTD_WINDOW_LOG`] bytes; the decoder here refuses anything larger, so a patch
//! can never make a device allocate more than that window.

use std::io::{self, BufReader, Read};

use otter_keys::targets::DELTA_ZSTD_WINDOW_LOG;

/// Bytes of compressed input buffered at a time (on the heap, fixed).
pub const COMPRESSED_BUFFER_LEN: usize = 16 * 1024;

/// zstd's message for a frame whose window exceeds the decoder's limit.
const WINDOW_TOO_LARGE: &str = "Frame requires too much memory for decoding";

/// Why the compressed patch could not be decompressed. Carried inside the `io::Error`s of
/// [`Decompressor`] and surfaced by [`super::apply`] as [`super::PatchError::Decompress`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The frame needs a window above the device limit (compressed with a larger window).
    #[error(
        "patch refused: its zstd window is larger than 2^{max_log} bytes (recompress with window log <= {max_log})"
    )]
    WindowTooLarge {
        /// The largest window log accepted.
        max_log: u32,
    },
    /// The compressed stream ends inside a frame.
    #[error("compressed patch truncated (incomplete zstd frame)")]
    Truncated,
    /// The stream is not valid zstd.
    #[error("compressed patch corrupt: {0}")]
    Corrupt(String),
    /// The decoder could not be set up.
    #[error("zstd decoder setup failed: {0}")]
    Setup(String),
}

/// A zstd-decompressing reader with the device's window limit. Errors of the compressed
/// stream come out as `io::Error`s wrapping a [`DecompressError`]; errors of the inner
/// reader pass through unchanged.
pub struct Decompressor<R: Read> {
    inner: zstd::stream::read::Decoder<'static, BufReader<Tagged<R>>>,
    max_log: u32,
}

impl<R: Read> std::fmt::Debug for Decompressor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("max_log", &self.max_log)
            .finish_non_exhaustive()
    }
}

/// Wraps a compressed patch stream (a download, a file) so [`super::apply`] reads it
/// decompressed, refusing windows above 2^[`DELTA_ZSTD_WINDOW_LOG`].
pub fn decompressor<R: Read>(reader: R) -> Result<Decompressor<R>, DecompressError> {
    decompressor_with_window_log(reader, DELTA_ZSTD_WINDOW_LOG)
}

/// Like [`decompressor`] with another window limit, for a device that can afford more or
/// less than the default.
pub fn decompressor_with_window_log<R: Read>(
    reader: R,
    max_log: u32,
) -> Result<Decompressor<R>, DecompressError> {
    let buffered = BufReader::with_capacity(COMPRESSED_BUFFER_LEN, Tagged(reader));
    let mut inner = zstd::stream::read::Decoder::with_buffer(buffered)
        .map_err(|e| DecompressError::Setup(e.to_string()))?;
    inner
        .window_log_max(max_log)
        .map_err(|e| DecompressError::Setup(e.to_string()))?;
    Ok(Decompressor { inner, max_log })
}

impl<R: Read> Decompressor<R> {
    /// Gives the compressed reader back.
    pub fn into_inner(self) -> R {
        self.inner.finish().into_inner().0
    }

    /// Turns an error of the decoder into a typed one, or unwraps the inner reader's error.
    fn classify(&self, e: io::Error) -> io::Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Passthrough>()) {
            let kind = e.kind();
            return match e.into_inner().map(|inner| inner.downcast::<Passthrough>()) {
                Some(Ok(p)) => p.0,
                _ => io::Error::from(kind),
            };
        }
        let typed = if e.kind() == io::ErrorKind::UnexpectedEof {
            DecompressError::Truncated
        } else {
            let message = e.to_string();
            if message == WINDOW_TOO_LARGE {
                DecompressError::WindowTooLarge {
                    max_log: self.max_log,
                }
            } else {
                DecompressError::Corrupt(message)
            }
        };
        io::Error::new(io::ErrorKind::InvalidData, typed)
    }
}

impl<R: Read> Read for Decompressor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| self.classify(e))
    }
}

/// The compressed reader, with its errors marked so they are told apart from zstd's.
struct Tagged<R>(R);

/// An error of the compressed reader, on its way through the zstd decoder.
#[derive(Debug)]
struct Passthrough(io::Error);

impl std::fmt::Display for Passthrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Passthrough {}

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                io::Error::new(e.kind(), Passthrough(e))
            }
        })
    }
}
