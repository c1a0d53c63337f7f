//! Building one delta, with no I/O: bsdiff ([`super::differ`]) between two whole images, zstd with the bounded
//! window a device can afford ([`DELTA_ZSTD_WINDOW_LOG`]), and a self-check that the patch
//! really turns the old image into the new one. Blocking and CPU-heavy: callers run it in
//! `spawn_blocking` under the worker's concurrency limit.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use otter_keys::targets::DELTA_ZSTD_WINDOW_LOG;
use sha2::{Digest, Sha256};

use super::differ::{self, DiffError};

/// A patch is published only if it is at most this percentage of the zstd-compressed full
/// image: below that, a device saves enough download to pay for applying it; above, the
/// full image is the simpler and safer choice.
pub const MAX_PATCH_PERCENT: u64 = 75;

/// zstd level of patches and of the full-image reference. Patches are built once and
/// downloaded by the whole fleet, so a high level pays; the small window keeps it quick.
pub const ZSTD_LEVEL: i32 = 19;

/// The differ's memory per byte of the old image (suffix array of `isize` plus its
/// inverse, and the inputs), for sizing `delta_max_image_size`.
pub const DIFF_BYTES_PER_OLD_BYTE: u64 = 17;

/// A built, self-checked, compressed patch.
#[derive(Debug, Clone)]
pub struct BuiltDelta {
    /// The compressed patch file, as published.
    pub patch: Vec<u8>,
    /// SHA-256 of `patch`.
    pub sha256: [u8; 32],
    /// Length of the uncompressed bsdiff patch.
    pub raw_len: u64,
    /// Time spent in the differ alone.
    pub diff_time: Duration,
}

/// Why a delta could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The differ refused the input.
    #[error("bsdiff failed: {0}")]
    Diff(#[from] DiffError),
    /// Compressing or decompressing failed.
    #[error("zstd failed: {0}")]
    Zstd(io::Error),
    /// The patch does not reproduce the new image (a differ bug; never published).
    #[error("self-check failed: {0}")]
    SelfCheck(String),
}

/// Diffs `old` into `new`, compresses the patch and checks it by applying it.
pub fn build_delta(old: &[u8], new: &[u8]) -> Result<BuiltDelta, BuildError> {
    let unchecked = diff_and_compress(old, new)?;
    check(old, new, unchecked)
}

/// A compressed patch not yet checked (what a differ child process sends back).
#[derive(Debug, Clone)]
pub struct Unchecked {
    /// The compressed patch file.
    pub patch: Vec<u8>,
    /// Length of the uncompressed bsdiff patch.
    pub raw_len: u64,
    /// Time spent in the differ alone.
    pub diff_time: Duration,
}

/// The CPU- and memory-heavy half of [`build_delta`]: diff and compress.
pub fn diff_and_compress(old: &[u8], new: &[u8]) -> Result<Unchecked, BuildError> {
    let started = Instant::now();
    let mut raw = Vec::new();
    differ::diff(old, new, &mut raw).map_err(BuildError::Diff)?;
    let diff_time = started.elapsed();
    let patch = compress(&raw).map_err(BuildError::Zstd)?;
    Ok(Unchecked {
        patch,
        raw_len: raw.len() as u64,
        diff_time,
    })
}

/// The cheap half of [`build_delta`]: the patch must turn `old` into `new` exactly.
pub fn check(old: &[u8], new: &[u8], unchecked: Unchecked) -> Result<BuiltDelta, BuildError> {
    let rebuilt = apply(old, &unchecked.patch).map_err(|e| BuildError::SelfCheck(e.to_string()))?;
    if rebuilt != new {
        return Err(BuildError::SelfCheck(format!(
            "the patch produces {} bytes that differ from the {}-byte new image",
            rebuilt.len(),
            new.len()
        )));
    }
    Ok(BuiltDelta {
        sha256: Sha256::digest(&unchecked.patch).into(),
        raw_len: unchecked.raw_len,
        patch: unchecked.patch,
        diff_time: unchecked.diff_time,
    })
}

/// Whether a patch of `patch_len` bytes is worth publishing next to a full image that
/// compresses to `full_compressed_len` bytes (see [`MAX_PATCH_PERCENT`]).
pub fn worth_publishing(patch_len: u64, full_compressed_len: u64) -> bool {
    u128::from(patch_len) * 100 <= u128::from(full_compressed_len) * u128::from(MAX_PATCH_PERCENT)
}

/// Compresses `data` the way patches are published: [`ZSTD_LEVEL`], a window of
/// 2^[`DELTA_ZSTD_WINDOW_LOG`] bytes, no long-distance matching, content size and checksum
/// in the frame.
pub fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 4);
    compress_into(data, &mut out)?;
    Ok(out)
}

/// Length of `data` compressed like a patch: the reference a patch must beat.
pub fn compressed_len(data: &[u8]) -> io::Result<u64> {
    let mut counter = Counter(0);
    compress_into(data, &mut counter)?;
    Ok(counter.0)
}

fn compress_into<W: Write>(data: &[u8], out: W) -> io::Result<()> {
    let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    encoder.window_log(DELTA_ZSTD_WINDOW_LOG)?;
    encoder.long_distance_matching(false)?;
    encoder.include_checksum(true)?;
    encoder.include_contentsize(true)?;
    encoder.set_pledged_src_size(Some(data.len() as u64))?;
    encoder.write_all(data)?;
    encoder.finish()?;
    Ok(())
}

/// Decompresses a published patch as a device would, refusing windows above
/// 2^[`DELTA_ZSTD_WINDOW_LOG`].
pub fn decompress(patch: &[u8]) -> io::Result<Vec<u8>> {
    let mut decoder = zstd::stream::read::Decoder::new(patch)?;
    decoder.window_log_max(DELTA_ZSTD_WINDOW_LOG)?;
    let mut out = Vec::new();
    decoder.read_to_end(&mut out)?;
    Ok(out)
}

/// Applies a published (compressed) patch to `old`.
pub fn apply(old: &[u8], patch: &[u8]) -> io::Result<Vec<u8>> {
    let raw = decompress(patch)?;
    let mut new = Vec::new();
    bsdiff::patch(old, &mut raw.as_slice(), &mut new)?;
    Ok(new)
}

/// A writer that only counts.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_small_edit_gives_a_small_patch_that_reproduces_the_new_image() {
        let old = noise(300_000, 1);
        let mut new = old.clone();
        new[1000] ^= 0xff;
        new[200_000..200_010].copy_from_slice(b"0123456789");
        new.extend_from_slice(b"appended");
        let built = build_delta(&old, &new).unwrap();
        assert_eq!(apply(&old, &built.patch).unwrap(), new);
        let full = compressed_len(&new).unwrap();
        assert!(built.patch.len() < 1000, "{}", built.patch.len());
        assert!(worth_publishing(built.patch.len() as u64, full));
        assert_eq!(built.sha256, <[u8; 32]>::from(Sha256::digest(&built.patch)));
    }

    #[test]
    fn unrelated_images_are_not_worth_a_patch() {
        let old = noise(100_000, 1);
        let new = noise(100_000, 2);
        let built = build_delta(&old, &new).unwrap();
        let full = compressed_len(&new).unwrap();
        assert!(!worth_publishing(built.patch.len() as u64, full));
    }

    #[test]
    fn the_window_is_bounded_for_devices() {
        let data = noise(1 << 20, 3);
        let packed = compress(&data).unwrap();
        assert_eq!(compressed_len(&data).unwrap(), packed.len() as u64);
        assert_eq!(decompress(&packed).unwrap(), data);
        // A decoder with a smaller window than the server's refuses the frame.
        let mut small = zstd::stream::read::Decoder::new(packed.as_slice()).unwrap();
        small.window_log_max(DELTA_ZSTD_WINDOW_LOG - 1).unwrap();
        assert!(small.read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn empty_images_still_diff() {
        let built = build_delta(&[], b"new").unwrap();
        assert_eq!(apply(&[], &built.patch).unwrap(), b"new");
        let built = build_delta(b"old", &[]).unwrap();
        assert_eq!(apply(b"old", &built.patch).unwrap(), b"");
    }

    #[test]
    fn the_threshold_is_inclusive_and_overflow_free() {
        assert!(worth_publishing(75, 100));
        assert!(!worth_publishing(76, 100));
        assert!(!worth_publishing(u64::MAX, u64::MAX / 2));
    }
}
