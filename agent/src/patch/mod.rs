//! Applying server deltas on the device: `bsdiff` patches (the `bsdiff` crate's format),
//! zstd-compressed with a bounded window, applied streaming from the running slot into the
//! inactive one.
//!
//! `bsdiff::patch` builds the whole new image in RAM; a device cannot afford that. Here the
//! patch is read once, in order ([`decompressor`] over the download), the old image is read
//! at random offsets through [`OldImage`] (a [`FlashRegion`] of the running slot), and the
//! new image is written in order through [`Sink`] (a [`crate::flash::SlotWriter`] on the
//! other slot). Memory is two [`APPLY_BUFFER_LEN`] stack buffers, the zstd window
//! (2^[`otter_keys::targets::DELTA_ZSTD_WINDOW_LOG`]) and the sink's own buffer.

mod apply;
mod error;
mod format;
mod sink;
mod source;
mod zstd;

pub use apply::{APPLY_BUFFER_LEN, ApplyStats, MAX_IDLE_ENTRIES, apply};
pub use error::PatchError;
pub use format::{CONTROL_LEN, Control, LengthField};
pub use sink::{IoSink, Sink};
pub use source::{FlashRegion, MAX_READ_SIZE, OldImage, RegionError, SliceOutOfBounds};
pub use zstd::{
    COMPRESSED_BUFFER_LEN, DecompressError, Decompressor, decompressor,
    decompressor_with_window_log,
};
