//! Everything that can go wrong while applying a patch, each with what a log or report
//! needs to say where.

use std::io;

use super::format::LengthField;
use super::zstd::DecompressError;

/// Why a patch could not be applied. `O` is the old image's read error, `S` the sink's
/// write error. After any error the sink holds a partial image that must not be used.
#[derive(Debug, thiserror::Error)]
pub enum PatchError<O, S> {
    /// Reading the patch stream failed.
    #[error("reading the patch failed: {0}")]
    Read(#[source] io::Error),
    /// The compressed patch could not be decompressed (corrupt, truncated, or a window
    /// larger than a device may allocate).
    #[error("{0}")]
    Decompress(#[source] DecompressError),
    /// The patch ends inside a control triple or its data.
    #[error("patch truncated: it ends at byte {at}, inside entry {entry}")]
    Truncated {
        /// Patch bytes read in all.
        at: u64,
        /// Index of the incomplete entry.
        entry: u64,
    },
    /// A length in a control triple is negative.
    #[error("patch entry {entry}: {field} length {raw:#x} is negative")]
    NegativeLength {
        /// Index of the entry.
        entry: u64,
        /// Which length.
        field: LengthField,
        /// Its raw 8 bytes as a little-endian integer.
        raw: u64,
    },
    /// A seek moves the old-image cursor below zero or beyond 2^63.
    #[error("patch entry {entry}: seek {seek} from old offset {from} leaves the old image")]
    BadSeek {
        /// Index of the entry.
        entry: u64,
        /// Old-image cursor before the seek.
        from: u64,
        /// The seek.
        seek: i64,
    },
    /// An entry adds to old bytes that the old image does not have.
    #[error(
        "patch entry {entry}: needs old bytes {start}..{end} but the old image has {old_len} bytes"
    )]
    OldOutOfBounds {
        /// Index of the entry.
        entry: u64,
        /// First old byte needed.
        start: u64,
        /// One past the last old byte needed.
        end: u64,
        /// Length of the old image.
        old_len: u64,
    },
    /// The patch would produce more bytes than the declared result length. Nothing past the
    /// declared length was written.
    #[error("patch entry {entry}: would write {needed} bytes in all, past the expected {expected}")]
    OutputTooLong {
        /// Index of the entry.
        entry: u64,
        /// Bytes the patch would have produced by the end of this entry (saturated).
        needed: u64,
        /// The declared result length.
        expected: u64,
    },
    /// Too many entries in a row write nothing: the patch spins instead of producing bytes.
    #[error("patch entry {entry}: {idle} entries in a row write nothing; refused")]
    NoProgress {
        /// Index of the entry.
        entry: u64,
        /// Entries in a row without output.
        idle: u32,
    },
    /// The patch ended before producing the declared result length.
    #[error("patch produced {written} bytes, short of the expected {expected}")]
    OutputTooShort {
        /// Bytes produced.
        written: u64,
        /// The declared result length.
        expected: u64,
    },
    /// Reading the old image failed.
    #[error("reading the old image failed: {0}")]
    Old(O),
    /// Writing the new image failed.
    #[error("writing the new image failed: {0}")]
    Sink(S),
}

impl<O, S> PatchError<O, S> {
    /// A read error of the patch stream, typed when it came from [`super::decompressor`].
    pub(crate) fn from_read(e: io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<DecompressError>())
        {
            Some(d) => Self::Decompress(d.clone()),
            None => Self::Read(e),
        }
    }
}
