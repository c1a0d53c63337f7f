//! Streaming verification of an image stored in flash.
//!
//! One pass over the image with a fixed buffer: RAM use does not depend on the image size.
//! Checks run in this order, and the first failure is reported: header well-formed and
//! fitting the slot, hardware id, key id trusted, payload SHA-256, ed25519 signature,
//! security counter at least the stored minimum.

use core::fmt;
use core::ops::Range;

use ed25519_dalek::{Signature, VerifyingKey};
use embedded_storage::nor_flash::ReadNorFlash;
use sha2::{Digest, Sha256};

use crate::flash::{FlashError, SliceFlash};
use crate::image::{HEADER_LEN, HardwareId, Header, ImageError, SIGNATURE_LEN, signed_message};
use crate::trust::{Anchors, KeyId};

/// Size of the buffer [`verify`] keeps on the stack.
pub const VERIFY_BUFFER_LEN: usize = 512;

/// Why an image must not boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The header is malformed or the image does not fit.
    Image(ImageError),
    /// Built for another board.
    WrongHardware {
        /// The image's hardware id (this board's is in the anchors).
        found: HardwareId,
    },
    /// Signed by a key this device does not trust.
    UnknownKey(KeyId),
    /// A compiled-in trust anchor is not a valid ed25519 public key.
    BadTrustAnchor(KeyId),
    /// The payload's SHA-256 is not the one in the header.
    PayloadHashMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The security counter is below the minimum this device has confirmed.
    Downgrade {
        /// The image's counter.
        security_counter: u32,
        /// The device's minimum.
        minimum: u32,
    },
    /// The scratch buffer is shorter than a header or not a multiple of the flash read size.
    BadBuffer,
    /// Reading the flash failed.
    Flash(FlashError),
}

impl From<ImageError> for VerifyError {
    fn from(e: ImageError) -> Self {
        Self::Image(e)
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(e) => write!(f, "malformed image: {e}"),
            Self::WrongHardware { found } => {
                write!(f, "image is for another board (hardware id {found})")
            }
            Self::UnknownKey(id) => write!(f, "image signed by untrusted key id {id}"),
            Self::BadTrustAnchor(id) => write!(f, "trusted key {id} is not a valid ed25519 key"),
            Self::PayloadHashMismatch => {
                write!(
                    f,
                    "payload SHA-256 does not match the header (payload corrupted)"
                )
            }
            Self::BadSignature => {
                write!(f, "signature does not verify (header or signature altered)")
            }
            Self::Downgrade {
                security_counter,
                minimum,
            } => write!(
                f,
                "security counter {security_counter} is below the device minimum {minimum}"
            ),
            Self::BadBuffer => write!(f, "verification buffer unusable with this flash"),
            Self::Flash(e) => write!(f, "{e}"),
        }
    }
}

/// The failure class of a [`VerifyError`], small enough to keep in the boot state so the
/// agent can report why a slot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum VerifyFailure {
    /// [`VerifyError::Image`] or [`VerifyError::BadBuffer`].
    Malformed = 1,
    /// [`VerifyError::WrongHardware`].
    WrongHardware = 2,
    /// [`VerifyError::UnknownKey`] or [`VerifyError::BadTrustAnchor`].
    UntrustedKey = 3,
    /// [`VerifyError::PayloadHashMismatch`].
    PayloadHash = 4,
    /// [`VerifyError::BadSignature`].
    Signature = 5,
    /// [`VerifyError::Downgrade`].
    Downgrade = 6,
    /// [`VerifyError::Flash`].
    Flash = 7,
}

impl VerifyFailure {
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Malformed,
            2 => Self::WrongHardware,
            3 => Self::UntrustedKey,
            4 => Self::PayloadHash,
            5 => Self::Signature,
            6 => Self::Downgrade,
            7 => Self::Flash,
            _ => return None,
        })
    }
}

impl VerifyError {
    /// The failure class, for the boot state.
    pub fn failure(&self) -> VerifyFailure {
        match self {
            Self::Image(_) | Self::BadBuffer => VerifyFailure::Malformed,
            Self::WrongHardware { .. } => VerifyFailure::WrongHardware,
            Self::UnknownKey(_) | Self::BadTrustAnchor(_) => VerifyFailure::UntrustedKey,
            Self::PayloadHashMismatch => VerifyFailure::PayloadHash,
            Self::BadSignature => VerifyFailure::Signature,
            Self::Downgrade { .. } => VerifyFailure::Downgrade,
            Self::Flash(_) => VerifyFailure::Flash,
        }
    }
}

/// Verifies the image at `offset` in `flash`, in a region of `capacity` bytes, with a
/// [`VERIFY_BUFFER_LEN`]-byte stack buffer. Returns the verified header.
pub fn verify<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    capacity: u32,
    anchors: &Anchors<'_>,
    min_security_counter: u32,
) -> Result<Header, VerifyError> {
    let mut buf = [0u8; VERIFY_BUFFER_LEN];
    verify_with_buffer(
        flash,
        offset,
        capacity,
        anchors,
        min_security_counter,
        &mut buf,
    )
}

/// Verifies a whole image held in memory; the slice must be exactly the image.
pub fn verify_bytes(
    image: &[u8],
    anchors: &Anchors<'_>,
    min_security_counter: u32,
) -> Result<Header, VerifyError> {
    let found = image.len() as u64;
    let capacity = u32::try_from(image.len()).map_err(|_| ImageError::LengthOverflow)?;
    let mut flash = SliceFlash(image);
    let result = verify(&mut flash, 0, capacity, anchors, min_security_counter);
    let header = result.map_err(|e| match e {
        VerifyError::Image(ImageError::TooLarge { image_len, .. }) => {
            VerifyError::Image(ImageError::Truncated {
                needed: image_len,
                found,
            })
        }
        other => other,
    })?;
    let len = header.image_len()?;
    if len != capacity {
        return Err(ImageError::TrailingData {
            image_len: u64::from(len),
            found,
        }
        .into());
    }
    Ok(header)
}

/// [`verify`] with a caller-chosen buffer (a multiple of the flash read size, at least a
/// header long). A larger buffer means fewer flash reads.
pub fn verify_with_buffer<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    capacity: u32,
    anchors: &Anchors<'_>,
    min_security_counter: u32,
    buf: &mut [u8],
) -> Result<Header, VerifyError> {
    let read_size = F::READ_SIZE.max(1);
    if buf.len() < HEADER_LEN || !buf.len().is_multiple_of(read_size) {
        return Err(VerifyError::BadBuffer);
    }
    let mut reader = Reader {
        flash,
        base: offset,
        capacity,
        read_size,
    };

    // Header: the first chunk holds it whole (the buffer is at least a header long).
    let first = reader.read(0, buf)?;
    let header = Header::decode(first)?;
    let image_len = header.image_len()?;
    if image_len > capacity {
        return Err(ImageError::TooLarge {
            image_len: u64::from(image_len),
            capacity,
        }
        .into());
    }
    if header.hardware_id != anchors.hardware_id {
        return Err(VerifyError::WrongHardware {
            found: header.hardware_id,
        });
    }
    let key = anchors
        .key(header.key_id)
        .ok_or(VerifyError::UnknownKey(header.key_id))?;
    let key = VerifyingKey::from_bytes(&key.public_key)
        .map_err(|_| VerifyError::BadTrustAnchor(header.key_id))?;

    // Payload and signature, streamed.
    let payload_end = image_len - SIGNATURE_LEN as u32;
    let mut sink = Sink {
        payload: HEADER_LEN as u32..payload_end,
        signature_at: payload_end,
        hasher: Sha256::new(),
        signature: [0u8; SIGNATURE_LEN],
    };
    sink.take(0, first);
    let mut pos = first.len() as u32;
    while pos < image_len {
        let chunk = reader.read(pos, buf)?;
        sink.take(pos, chunk);
        pos = pos.saturating_add(chunk.len() as u32);
    }

    let digest: [u8; 32] = sink.hasher.finalize().into();
    if digest != header.payload_sha256 {
        return Err(VerifyError::PayloadHashMismatch);
    }
    let message = signed_message(&header.encode(), &digest);
    key.verify_strict(&message, &Signature::from_bytes(&sink.signature))
        .map_err(|_| VerifyError::BadSignature)?;
    if header.security_counter < min_security_counter {
        return Err(VerifyError::Downgrade {
            security_counter: header.security_counter,
            minimum: min_security_counter,
        });
    }
    Ok(header)
}

/// Reads aligned chunks of a region.
struct Reader<'f, F> {
    flash: &'f mut F,
    base: u32,
    capacity: u32,
    read_size: usize,
}

impl<F: ReadNorFlash> Reader<'_, F> {
    /// Reads up to `buf.len()` bytes at region offset `pos` (a multiple of the buffer
    /// length, so aligned), never past the region; returns what was read.
    fn read<'b>(&mut self, pos: u32, buf: &'b mut [u8]) -> Result<&'b [u8], VerifyError> {
        let left = self.capacity.saturating_sub(pos) as usize;
        let len = buf.len().min(left);
        // Round down to the read size; the region is erase-aligned, so nothing is lost.
        let len = len - len % self.read_size;
        let chunk = buf.get_mut(..len).ok_or(VerifyError::BadBuffer)?;
        if chunk.is_empty() {
            return Err(ImageError::Truncated {
                needed: u64::from(pos) + 1,
                found: u64::from(pos),
            }
            .into());
        }
        let at = self
            .base
            .checked_add(pos)
            .ok_or(ImageError::LengthOverflow)?;
        self.flash
            .read(at, chunk)
            .map_err(|e| VerifyError::Flash(FlashError::from_driver(e)))?;
        Ok(chunk)
    }
}

/// Routes streamed bytes to the payload hash and the signature.
struct Sink {
    payload: Range<u32>,
    signature_at: u32,
    hasher: Sha256,
    signature: [u8; SIGNATURE_LEN],
}

/// The part of `chunk` (which starts at region offset `at`) that falls in `range`, and
/// where that part starts relative to `range.start`.
fn overlap(at: u32, chunk: &[u8], range: Range<u32>) -> Option<(usize, &[u8])> {
    let end = at.saturating_add(chunk.len() as u32);
    let lo = at.max(range.start);
    let hi = end.min(range.end);
    if lo >= hi {
        return None;
    }
    let part = chunk.get((lo - at) as usize..(hi - at) as usize)?;
    Some(((lo - range.start) as usize, part))
}

impl Sink {
    fn take(&mut self, at: u32, chunk: &[u8]) {
        if let Some((_, part)) = overlap(at, chunk, self.payload.clone()) {
            self.hasher.update(part);
        }
        let sig_range = self.signature_at..self.signature_at.saturating_add(SIGNATURE_LEN as u32);
        if let Some((into, part)) = overlap(at, chunk, sig_range)
            && let Some(dst) = self.signature.get_mut(into..into + part.len())
        {
            dst.copy_from_slice(part);
        }
    }
}

impl core::error::Error for VerifyError {}
