//! The fixed, little-endian image header and its codec.
//!
//! ```text
//! offset size field
//! 0      4    magic "OTTR"
//! 4      2    format version (1)
//! 6      2    header length (128)
//! 8      4    flags (none defined in version 1: must be 0)
//! 12     32   hardware id, NUL-padded
//! 44     12   version major, minor, patch (u32 each)
//! 56     4    security counter
//! 60     4    payload length
//! 64     8    signing key id
//! 72     32   SHA-256 of the payload
//! 104    24   reserved, zero
//! ```

use super::{FORMAT_VERSION, HEADER_LEN, HardwareId, ImageError, MAGIC, Version, image_len};
use crate::trust::KeyId;

/// Flag bits defined by format version 1: none yet. Any other bit makes the header invalid,
/// so an old bootloader never silently ignores a meaning it does not know.
pub const KNOWN_FLAGS: u32 = 0;

/// What the vendor states about an image; covered by the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header flags; must be a subset of [`KNOWN_FLAGS`].
    pub flags: u32,
    /// Board the image is built for.
    pub hardware_id: HardwareId,
    /// Release version.
    pub version: Version,
    /// Anti-rollback counter: once an image is confirmed, nothing lower boots again.
    pub security_counter: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Which firmware key signed the image.
    pub key_id: KeyId,
    /// SHA-256 of the payload.
    pub payload_sha256: [u8; 32],
}

/// Fixed-size reader over the header bytes; every offset is a constant below `HEADER_LEN`.
struct Fields<'a>(&'a [u8; HEADER_LEN]);

impl Fields<'_> {
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.0.get(at..at + N) {
            out.copy_from_slice(src);
        }
        out
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.array(at))
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.array(at))
    }
}

fn put(out: &mut [u8; HEADER_LEN], at: usize, bytes: &[u8]) {
    if let Some(dst) = out.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

const RESERVED: core::ops::Range<usize> = 104..HEADER_LEN;

impl Header {
    /// Total image length: header, payload and signature.
    pub fn image_len(&self) -> Result<u32, ImageError> {
        image_len(self.payload_len).ok_or(ImageError::LengthOverflow)
    }

    /// The 128 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        put(&mut out, 0, &MAGIC);
        put(&mut out, 4, &FORMAT_VERSION.to_le_bytes());
        put(&mut out, 6, &(HEADER_LEN as u16).to_le_bytes());
        put(&mut out, 8, &self.flags.to_le_bytes());
        put(&mut out, 12, self.hardware_id.as_bytes());
        put(&mut out, 44, &self.version.to_le_bytes());
        put(&mut out, 56, &self.security_counter.to_le_bytes());
        put(&mut out, 60, &self.payload_len.to_le_bytes());
        put(&mut out, 64, self.key_id.as_bytes());
        put(&mut out, 72, &self.payload_sha256);
        out
    }

    /// Parses the start of `bytes` as a header and checks everything that can be checked
    /// without the payload: magic, format, lengths, hardware id syntax, flags, reserved bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ImageError> {
        let raw: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(ImageError::Truncated {
                needed: HEADER_LEN as u64,
                found: bytes.len() as u64,
            })?;
        let f = Fields(raw);
        let magic: [u8; 4] = f.array(0);
        if magic != MAGIC {
            return Err(ImageError::BadMagic(magic));
        }
        let format = f.u16(4);
        if format != FORMAT_VERSION {
            return Err(ImageError::UnsupportedFormat(format));
        }
        let header_len = f.u16(6);
        if usize::from(header_len) != HEADER_LEN {
            return Err(ImageError::BadHeaderLength(header_len));
        }
        let flags = f.u32(8);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(ImageError::UnknownFlags(flags));
        }
        if raw.get(RESERVED).is_none_or(|r| r.iter().any(|&b| b != 0)) {
            return Err(ImageError::ReservedNotZero);
        }
        let header = Self {
            flags,
            hardware_id: HardwareId::from_bytes(f.array(12))?,
            version: Version::from_le_bytes(f.array(44)),
            security_counter: f.u32(56),
            payload_len: f.u32(60),
            key_id: KeyId::from_bytes(f.array(64)),
            payload_sha256: f.array(72),
        };
        header.image_len()?;
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            flags: 0,
            hardware_id: HardwareId::new("acme-thermo-v2").unwrap(),
            version: Version::new(1, 4, 0),
            security_counter: 7,
            payload_len: 4096,
            key_id: KeyId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]),
            payload_sha256: [0xab; 32],
        }
    }

    fn with(mut raw: [u8; HEADER_LEN], at: usize, bytes: &[u8]) -> [u8; HEADER_LEN] {
        raw[at..at + bytes.len()].copy_from_slice(bytes);
        raw
    }

    #[test]
    fn round_trips_every_field() {
        let h = sample();
        let raw = h.encode();
        assert_eq!(&raw[..4], b"OTTR");
        assert_eq!(Header::decode(&raw), Ok(h));
    }

    #[test]
    fn layout_is_little_endian_at_documented_offsets() {
        let raw = sample().encode();
        assert_eq!(raw[4..6], [1, 0]);
        assert_eq!(raw[6..8], [128, 0]);
        assert_eq!(raw[44..48], [1, 0, 0, 0]);
        assert_eq!(raw[48..52], [4, 0, 0, 0]);
        assert_eq!(raw[56..60], [7, 0, 0, 0]);
        assert_eq!(raw[60..64], [0, 0x10, 0, 0]);
        assert_eq!(raw[64..72], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(raw[104..].iter().all(|&b| b == 0));
    }

    #[test]
    fn refuses_truncated_header() {
        let raw = sample().encode();
        assert_eq!(
            Header::decode(&raw[..127]),
            Err(ImageError::Truncated {
                needed: 128,
                found: 127
            })
        );
        assert!(matches!(
            Header::decode(&[]),
            Err(ImageError::Truncated { .. })
        ));
    }

    #[test]
    fn refuses_bad_magic() {
        let raw = with(sample().encode(), 0, b"OTTX");
        assert_eq!(Header::decode(&raw), Err(ImageError::BadMagic(*b"OTTX")));
    }

    #[test]
    fn refuses_unknown_format_version() {
        let raw = with(sample().encode(), 4, &2u16.to_le_bytes());
        assert_eq!(Header::decode(&raw), Err(ImageError::UnsupportedFormat(2)));
    }

    #[test]
    fn refuses_wrong_header_length() {
        let raw = with(sample().encode(), 6, &256u16.to_le_bytes());
        assert_eq!(Header::decode(&raw), Err(ImageError::BadHeaderLength(256)));
    }

    #[test]
    fn refuses_unknown_flags() {
        let raw = with(sample().encode(), 8, &1u32.to_le_bytes());
        assert_eq!(Header::decode(&raw), Err(ImageError::UnknownFlags(1)));
    }

    #[test]
    fn refuses_nonzero_reserved_bytes() {
        let raw = with(sample().encode(), 127, &[1]);
        assert_eq!(Header::decode(&raw), Err(ImageError::ReservedNotZero));
    }

    #[test]
    fn refuses_malformed_hardware_id() {
        let raw = with(sample().encode(), 12, &[0; 32]);
        assert_eq!(Header::decode(&raw), Err(ImageError::BadHardwareId));
        let raw = with(sample().encode(), 12, b"bad/id");
        assert_eq!(Header::decode(&raw), Err(ImageError::BadHardwareId));
    }

    #[test]
    fn refuses_payload_length_that_overflows() {
        let raw = with(sample().encode(), 60, &u32::MAX.to_le_bytes());
        assert_eq!(Header::decode(&raw), Err(ImageError::LengthOverflow));
    }
}
