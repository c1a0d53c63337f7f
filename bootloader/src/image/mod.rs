//! The signed image format: one definition shared by the signer (otter-keys), the agent and
//! the bootloader, so the three can never disagree about what a valid image is.
//!
//! ```text
//! offset  size  field
//! 0       128   header (see [`Header`]), little-endian
//! 128     N     payload (the firmware itself), N = header.payload_len
//! 128+N   64    ed25519 signature over  header bytes ‖ SHA-256(payload)
//! ```
//!
//! The header also carries the payload's SHA-256, so a checker can say whether the payload
//! or the signature is at fault; the signature covers both.

mod hardware_id;
mod header;
mod version;

pub use hardware_id::HardwareId;
pub use header::{Header, KNOWN_FLAGS};
pub use version::{Version, VersionError};

/// First bytes of every image: "OTTR".
pub const MAGIC: [u8; 4] = *b"OTTR";
/// The only header layout this code reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the version 1 header in bytes.
pub const HEADER_LEN: usize = 128;
/// Length of the signature block that follows the payload.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;
/// Length of the message the vendor signs: header bytes ‖ SHA-256(payload).
pub const SIGNED_MESSAGE_LEN: usize = HEADER_LEN + DIGEST_LEN;

/// Why bytes are not a well-formed image. Every malformed case has its own variant so tools
/// can say exactly what is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Fewer bytes than the structure needs.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        found: u64,
    },
    /// The image does not start with [`MAGIC`].
    BadMagic([u8; 4]),
    /// A header layout this code does not know.
    UnsupportedFormat(u16),
    /// The header length field does not match the format version.
    BadHeaderLength(u16),
    /// The hardware id is empty, not NUL-padded, has characters outside `[A-Za-z0-9._-]`, or
    /// does not start and end with a letter or digit.
    BadHardwareId,
    /// Flag bits that this format version does not define.
    UnknownFlags(u32),
    /// Reserved header bytes are not zero.
    ReservedNotZero,
    /// header + payload + signature does not fit in 32 bits.
    LengthOverflow,
    /// The image is larger than the slot that holds it.
    TooLarge {
        /// Total image length in bytes.
        image_len: u64,
        /// Slot capacity in bytes.
        capacity: u32,
    },
    /// Bytes follow the signature (an image file must be exactly the image).
    TrailingData {
        /// Length the header declares.
        image_len: u64,
        /// Bytes present.
        found: u64,
    },
    /// An output buffer is too small for the encoded image.
    BufferTooSmall {
        /// Bytes needed.
        needed: u64,
    },
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { needed, found } => {
                write!(f, "image truncated: needed {needed} bytes, found {found}")
            }
            Self::BadMagic(m) => write!(f, "bad magic: expected {MAGIC:02x?}, found {m:02x?}"),
            Self::UnsupportedFormat(v) => {
                write!(
                    f,
                    "unsupported image format version {v} (expected {FORMAT_VERSION})"
                )
            }
            Self::BadHeaderLength(l) => {
                write!(f, "bad header length {l} (expected {HEADER_LEN})")
            }
            Self::BadHardwareId => write!(
                f,
                "bad hardware id: expected 1-32 characters of [A-Za-z0-9._-], starting and ending with a letter or digit, NUL-padded"
            ),
            Self::UnknownFlags(x) => write!(f, "unknown header flags {x:#010x}"),
            Self::ReservedNotZero => write!(f, "reserved header bytes are not zero"),
            Self::LengthOverflow => write!(f, "image length overflows 32 bits"),
            Self::TooLarge {
                image_len,
                capacity,
            } => write!(
                f,
                "image of {image_len} bytes does not fit in a slot of {capacity} bytes"
            ),
            Self::TrailingData { image_len, found } => write!(
                f,
                "{found} bytes where the header declares an image of {image_len}"
            ),
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
        }
    }
}

/// Total length of an image with a payload of `payload_len` bytes, or `None` on overflow.
pub const fn image_len(payload_len: u32) -> Option<u32> {
    payload_len.checked_add((HEADER_LEN + SIGNATURE_LEN) as u32)
}

/// The exact bytes the vendor key signs and the verifier checks.
pub fn signed_message(
    header: &[u8; HEADER_LEN],
    payload_sha256: &[u8; DIGEST_LEN],
) -> [u8; SIGNED_MESSAGE_LEN] {
    let mut msg = [0u8; SIGNED_MESSAGE_LEN];
    let (head, tail) = msg.split_at_mut(HEADER_LEN);
    head.copy_from_slice(header);
    tail.copy_from_slice(payload_sha256);
    msg
}

/// Writes a complete image (header, payload, signature) into `out`; returns its length.
///
/// The caller provides the buffer, so this works without an allocator.
pub fn encode_image(
    header: &Header,
    payload: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    out: &mut [u8],
) -> Result<usize, ImageError> {
    let total = image_len(header.payload_len).ok_or(ImageError::LengthOverflow)? as usize;
    if payload.len() as u64 != u64::from(header.payload_len) {
        return Err(ImageError::Truncated {
            needed: u64::from(header.payload_len),
            found: payload.len() as u64,
        });
    }
    let out = out.get_mut(..total).ok_or(ImageError::BufferTooSmall {
        needed: total as u64,
    })?;
    let (head, rest) = out.split_at_mut(HEADER_LEN);
    let (body, sig) = rest.split_at_mut(payload.len());
    head.copy_from_slice(&header.encode());
    body.copy_from_slice(payload);
    sig.copy_from_slice(signature);
    Ok(total)
}

impl core::error::Error for ImageError {}
