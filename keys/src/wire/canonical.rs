//! The canonical byte encoding that signatures cover.
//!
//! A signature must cover bytes that every implementation produces identically, which JSON
//! does not promise (key order, whitespace, escapes, number forms). So each message is
//! signed over this small binary encoding instead, and the verifier rebuilds it from the
//! parsed message. The encoding is never sent; only the JSON is.
//!
//! | item          | bytes                                                            |
//! |---------------|------------------------------------------------------------------|
//! | tag           | the message type's domain tag, NUL-terminated (below)            |
//! | `u8`          | 1 byte                                                           |
//! | `u16`         | 2 bytes, little-endian                                           |
//! | `u64`         | 8 bytes, little-endian                                           |
//! | string        | `u32` little-endian byte length, then the UTF-8 bytes            |
//! | digest        | 32 bytes as they are (fixed width, no length)                    |
//! | signature     | 64 bytes as they are (ed25519; fixed width, no length)           |
//! | version       | major, minor, patch: three `u32` little-endian (12 bytes)        |
//! | slot          | `u8`: 0 = A, 1 = B                                               |
//! | `Option<T>`   | `u8` 0 = absent; `u8` 1 = present, then `T`                      |
//! | enum          | `u8` variant tag, then the variant's fields in order             |
//! | signed msg    | the message's canonical bytes (tag first), then its signature    |
//!
//! Messages, after their tag (a field of a nested struct is written as its path):
//!
//! ```text
//! CheckIn      tag "otter/checkin/v1\0"
//!   device_id               string ≤ 128
//!   counter                 u64
//!   timestamp               u64
//!   current_version         version
//!   image_sha256            digest
//!   slots.running           slot
//!   slots.confirmed         slot
//!   slots.trial             option of:
//!     slot                    slot
//!     version                 version
//!     attempts_left           u8
//!   last_outcome            BootOutcome
//!
//! Report       tag "otter/report/v3\0"
//!   device_id               string ≤ 128
//!   counter                 u64
//!   timestamp               u64
//!   event_seq               u64
//!   event                   Event
//!
//! Assignment   tag "otter/assignment/v2\0"
//!   device_id               string ≤ 128
//!   counter                 u64
//!   expires                 u64
//!   target                  option of:
//!     name                    string ≤ 256
//!     version                 version
//!     sha256                  digest
//!     length                  u64
//!     policy                  option of signed message:
//!       message                 RolloutPolicy (below, from its tag)
//!       signature               signature
//!
//! RolloutPolicy tag "otter/rollout/v1\0"
//!   rollout_id              string ≤ 64
//!   hardware_id             string ≤ 32
//!   image_sha256            digest
//!   ceiling                 u16 (basis points, ≤ 10 000)
//!   window                  option of:
//!     days                    u8 bit set: bit 0 Monday … bit 6 Sunday
//!     start                   u16 (minutes after midnight)
//!     end                     u16 (minutes after midnight)
//!     time_zone               string ≤ 64
//!   expires                 u64
//!
//! BootOutcome  u8 tag, then:
//!   0 none
//!   1 confirmed             version
//!   2 rolled_back           from: version
//!   3 trial_rejected        version, reason: string ≤ 1024
//!   4 fell_back             reason: string ≤ 1024
//!
//! Event        u8 tag, then:
//!   0 downloading           target: string ≤ 256, bytes: u64, total: u64
//!   1 installed             version
//!   2 booted                version, image_sha256: digest
//!   3 healthy               version, image_sha256: digest
//!   4 failed                stage: string ≤ 64, reason: string ≤ 1024
//!   5 rolled_back           from: version
//! ```
//!
//! Every item is fixed width or length-prefixed, so an encoding decodes in exactly one way:
//! two messages of the same type with different fields never share bytes. A signed message
//! inside another (the rollout policy in an assignment) is such an encoding too, so it needs
//! no length: it ends where its last field ends, and its fixed-width signature follows. The tag names the
//! message type and its format version, so a signature made for one type never verifies as
//! another, even when the fields after the tag happen to be the same bytes. Nothing follows
//! the last field. A change to this table is a new format version: a new tag.
//!
//! String limits are in bytes and are checked when signing and when verifying
//! ([`WireError::TooLong`]): device id [`MAX_DEVICE_ID_LEN`], target names
//! [`MAX_NAME_LEN`], failure stage [`MAX_STAGE_LEN`], reasons [`MAX_REASON_LEN`], rollout id
//! [`MAX_ROLLOUT_ID_LEN`].

use otter_boot::Slot;
use otter_boot::image::Version;

use super::WireError;
#[cfg(doc)]
use super::{Assignment, CheckIn, Report, RolloutPolicy};

/// Longest device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 128;
/// Longest target (file) name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest failure stage name, in bytes.
pub const MAX_STAGE_LEN: usize = 64;
/// Longest free-text reason, in bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Longest rollout id, in bytes.
pub const MAX_ROLLOUT_ID_LEN: usize = 64;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::super::CheckIn {}
    impl Sealed for super::super::Report {}
    impl Sealed for super::super::Assignment {}
    impl Sealed for super::super::RolloutPolicy {}
}

/// A message that can be signed: one of [`CheckIn`], [`Report`], [`Assignment`] and
/// [`RolloutPolicy`].
/// Sealed: the set of message types, and so of domain tags, is fixed here.
pub trait WireMessage: sealed::Sealed {
    /// The domain-separation tag that starts the canonical bytes: message type and format
    /// version, NUL-terminated.
    const TAG: &'static [u8];

    /// The bytes a signature covers: [`Self::TAG`], then the fields in their fixed order.
    /// Fails with [`WireError::TooLong`] when a string exceeds its limit.
    fn canonical_bytes(&self) -> Result<Vec<u8>, WireError>;
}

/// Appends items in the canonical encoding.
pub(crate) struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// Starts a message with its domain tag.
    pub(crate) fn new(tag: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(tag);
        Self { buf }
    }

    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.buf.push(value);
        self
    }

    pub(crate) fn u16(&mut self, value: u16) -> &mut Self {
        self.buf.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.buf.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A length-prefixed string of at most `max` bytes; `field` names it in the error.
    pub(crate) fn str(
        &mut self,
        field: &'static str,
        value: &str,
        max: usize,
    ) -> Result<&mut Self, WireError> {
        let too_long = WireError::TooLong {
            field,
            max,
            len: value.len(),
        };
        if value.len() > max {
            return Err(too_long);
        }
        let len = u32::try_from(value.len()).map_err(|_| too_long)?;
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        Ok(self)
    }

    pub(crate) fn digest(&mut self, value: &[u8; 32]) -> &mut Self {
        self.buf.extend_from_slice(value);
        self
    }

    pub(crate) fn signature(&mut self, value: &[u8; 64]) -> &mut Self {
        self.buf.extend_from_slice(value);
        self
    }

    /// Another message's canonical bytes, as they are: they start with its tag and end
    /// where its last field ends, so they need no length of their own.
    pub(crate) fn nested(&mut self, canonical: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(canonical);
        self
    }

    pub(crate) fn version(&mut self, value: Version) -> &mut Self {
        for part in [value.major, value.minor, value.patch] {
            self.buf.extend_from_slice(&part.to_le_bytes());
        }
        self
    }

    pub(crate) fn slot(&mut self, value: Slot) -> &mut Self {
        self.u8(match value {
            Slot::A => 0,
            Slot::B => 1,
        })
    }

    /// The presence tag of an option; the caller encodes the value after a `true`.
    pub(crate) fn presence<'a, T>(&mut self, value: Option<&'a T>) -> Option<&'a T> {
        self.u8(u8::from(value.is_some()));
        value
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_fixed_width_or_length_prefixed() {
        let mut enc = Encoder::new(b"t\0");
        enc.u8(7).u16(0x0a0b).u64(0x0102_0304_0506_0708);
        enc.str("s", "hé", 8).unwrap();
        enc.digest(&[0xAA; 32])
            .version(Version::new(1, 2, 3))
            .slot(Slot::B);
        let mut expected =
            b"t\0\x07\x0b\x0a\x08\x07\x06\x05\x04\x03\x02\x01\x03\0\0\0h\xc3\xa9".to_vec();
        expected.extend([0xAA; 32]);
        expected.extend([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1]);
        assert_eq!(enc.finish(), expected);
    }

    #[test]
    fn refuses_a_string_over_its_limit_counting_bytes() {
        let mut enc = Encoder::new(b"t\0");
        enc.str("f", "abcd", 4).unwrap();
        // Two characters, four bytes: the limit is on bytes.
        enc.str("f", "éé", 4).unwrap();
        assert!(matches!(
            enc.str("f", "ééé", 4),
            Err(WireError::TooLong {
                field: "f",
                max: 4,
                len: 6
            })
        ));
    }

    #[test]
    fn presence_tags_absent_as_zero_and_present_as_one() {
        let mut enc = Encoder::new(b"");
        assert!(enc.presence::<u8>(None).is_none());
        assert_eq!(enc.presence(Some(&5u8)), Some(&5));
        assert_eq!(enc.finish(), vec![0, 1]);
    }
}
