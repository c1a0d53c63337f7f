//! Steps 7 and 8: write the new image into the inactive slot — by patching from the running
//! slot, streaming, or by copying the full image — then check the written slot against TUF
//! (length, SHA-256) and the vendor's signature with otter-boot's verifier, and the signed
//! header against the plan ([`crate::header_policy`]).

use std::io::Read;
use std::path::Path;

use otter_boot::image::Header;
use otter_boot::layout::Slot;
use otter_keys::targets::{DELTA_COMPRESSION, DeltaInfo};

use crate::device::{Device, DeviceError, WritableSlot};
use crate::header_policy::{self, Expected, HeaderError};
use crate::patch::{self, ApplyStats};
use crate::tuf_client::TargetEntry;

/// Why an install failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The flash or boot state failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The downloaded file cannot be read.
    #[error("reading {what}: {source}")]
    Read {
        /// What.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The running image is not the patch's base.
    #[error("the running image is not the delta's base (expected sha256 {expected})")]
    WrongBase {
        /// The declared base.
        expected: String,
    },
    /// A compression we do not speak.
    #[error("unsupported delta compression {0:?}")]
    Compression(String),
    /// The patch is malformed or does not fit.
    #[error("applying the delta: {0}")]
    Patch(String),
    /// The image is larger than the slot.
    #[error("the image ({length} bytes) does not fit slot {slot:?} ({size} bytes)")]
    DoesNotFit {
        /// The slot.
        slot: Slot,
        /// Image length.
        length: u64,
        /// Slot size.
        size: u32,
    },
    /// The written slot does not match TUF.
    #[error("the written slot does not hash to the signed sha256")]
    HashMismatch,
    /// The written image does not verify for this board.
    #[error("the written image does not verify: {0}")]
    Verify(String),
    /// The vendor-signed header contradicts the plan or would move the device backwards.
    #[error("the written image is refused: {0}")]
    Header(#[from] HeaderError),
}

/// Patches the running slot's image (`running_length` bytes, hash checked by the caller
/// against `info.from_sha256`) into `target`, streaming.
pub fn apply_delta(
    device: &Device,
    running: Slot,
    running_length: u32,
    running_sha256: &[u8; 32],
    target: &WritableSlot,
    info: &DeltaInfo,
    patch_file: &Path,
) -> Result<ApplyStats, InstallError> {
    if &info.from_sha256 != running_sha256 {
        return Err(InstallError::WrongBase {
            expected: hex::encode(info.from_sha256),
        });
    }
    if info.compression != DELTA_COMPRESSION {
        return Err(InstallError::Compression(info.compression.clone()));
    }
    fits(device, target.slot(), info.to_length)?;
    let file = std::fs::File::open(patch_file).map_err(|source| InstallError::Read {
        what: "the delta",
        source,
    })?;
    let reader = patch::decompressor(std::io::BufReader::new(file))
        .map_err(|e| InstallError::Patch(e.to_string()))?;
    let old = device.slot_region(running, running_length)?;
    let mut sink = device.slot_writer(target)?;
    let stats = patch::apply(reader, old, &mut sink, info.to_length)
        .map_err(|e| InstallError::Patch(e.to_string()))?;
    sink.finish()?;
    Ok(stats)
}

/// Copies a downloaded full image into `target`.
pub fn copy_full(
    device: &Device,
    target: &WritableSlot,
    image: &Path,
    length: u64,
) -> Result<(), InstallError> {
    fits(device, target.slot(), length)?;
    let read = |source| InstallError::Read {
        what: "the image",
        source,
    };
    let mut file = std::fs::File::open(image).map_err(read)?;
    let mut sink = device.slot_writer(target)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(read)?;
        if n == 0 {
            break;
        }
        sink.write(buf.get(..n).unwrap_or_default())?;
    }
    sink.finish()?;
    Ok(())
}

/// Step 8: the slot holds exactly the TUF target, otter-boot accepts it for this board, and
/// its signed header is what was planned and moves the device forward.
pub fn verify_written(
    device: &Device,
    target: Slot,
    full: &TargetEntry,
    expected: &Expected,
) -> Result<Header, InstallError> {
    let length = u32::try_from(full.length).map_err(|_| InstallError::HashMismatch)?;
    if device.hash_slot(target, length)? != full.sha256 {
        return Err(InstallError::HashMismatch);
    }
    let image = device
        .slot_image(target)
        .map_err(|e| InstallError::Verify(e.to_string()))?;
    if u64::from(image.length) != full.length {
        return Err(InstallError::Verify(format!(
            "header says {} bytes, TUF says {}",
            image.length, full.length
        )));
    }
    header_policy::check(&image.header, expected)?;
    device.sync()?;
    Ok(image.header)
}

fn fits(device: &Device, slot: Slot, length: u64) -> Result<(), InstallError> {
    let size = device.layout().slot(slot).size;
    if length > u64::from(size) {
        return Err(InstallError::DoesNotFit { slot, length, size });
    }
    Ok(())
}
