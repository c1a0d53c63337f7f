//! The wire format of a `bsdiff` 0.2 patch, as the server's `bsdiff::diff` writes it.
//!
//! No header: the patch is a run of entries until end of input. Each entry is a 24-byte
//! control triple followed by its data:
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | `mix_len` | bytes of "add" data; each is wrapping-added to the next old byte |
//! | 8..16 | `copy_len` | bytes of "extra" data, copied to the output as they are |
//! | 16..24 | `seek` | signed move of the old-image cursor after the add data |
//!
//! then `mix_len` add bytes and `copy_len` extra bytes. All three integers are 8-byte
//! little-endian sign-magnitude (bit 63 is the sign). `bsdiff::patch` reads the two lengths
//! as plain `u64`, so a length with bit 63 set can never be satisfied: we refuse it as
//! negative.

/// Size of one control triple in bytes.
pub const CONTROL_LEN: usize = 24;

/// The sign bit of a sign-magnitude integer.
const SIGN: u64 = 1 << 63;

/// One decoded control triple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// Bytes of add data (old byte + patch byte).
    pub mix_len: u64,
    /// Bytes of extra data (patch byte).
    pub copy_len: u64,
    /// Move of the old cursor after the add data.
    pub seek: i64,
}

/// Which length field of a control triple was unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthField {
    /// The add-data length.
    Mix,
    /// The extra-data length.
    Copy,
}

impl core::fmt::Display for LengthField {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Mix => "add-data",
            Self::Copy => "extra-data",
        })
    }
}

impl Control {
    /// Decodes a control triple. A length with the sign bit set is refused (with the raw
    /// value) rather than read as a huge count.
    pub fn decode(raw: &[u8; CONTROL_LEN]) -> Result<Self, (LengthField, u64)> {
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            if let Some(src) = raw.get(i * 8..i * 8 + 8) {
                bytes.copy_from_slice(src);
            }
            u64::from_le_bytes(bytes)
        };
        let (mix, copy, seek) = (word(0), word(1), word(2));
        if mix & SIGN != 0 {
            return Err((LengthField::Mix, mix));
        }
        if copy & SIGN != 0 {
            return Err((LengthField::Copy, copy));
        }
        Ok(Self {
            mix_len: mix,
            copy_len: copy,
            seek: sign_magnitude(seek),
        })
    }
}

/// Reads an 8-byte sign-magnitude integer (a negative zero is zero).
fn sign_magnitude(raw: u64) -> i64 {
    // The magnitude has 63 bits, so it always fits and its negation never overflows.
    let magnitude = i64::try_from(raw & !SIGN).unwrap_or(i64::MAX);
    if raw & SIGN == 0 {
        magnitude
    } else {
        -magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(mix: u64, copy: u64, seek: u64) -> [u8; CONTROL_LEN] {
        let mut out = [0u8; CONTROL_LEN];
        out[..8].copy_from_slice(&mix.to_le_bytes());
        out[8..16].copy_from_slice(&copy.to_le_bytes());
        out[16..].copy_from_slice(&seek.to_le_bytes());
        out
    }

    #[test]
    fn decodes_sign_magnitude_seeks() {
        let c = Control::decode(&raw(5, 7, SIGN | 3)).unwrap();
        assert_eq!(
            c,
            Control {
                mix_len: 5,
                copy_len: 7,
                seek: -3
            }
        );
        assert_eq!(Control::decode(&raw(0, 0, 9)).unwrap().seek, 9);
        assert_eq!(Control::decode(&raw(0, 0, SIGN)).unwrap().seek, 0);
        assert_eq!(
            Control::decode(&raw(0, 0, u64::MAX)).unwrap().seek,
            -i64::MAX
        );
    }

    #[test]
    fn refuses_negative_lengths() {
        assert_eq!(
            Control::decode(&raw(SIGN | 1, 0, 0)),
            Err((LengthField::Mix, SIGN | 1))
        );
        assert_eq!(
            Control::decode(&raw(1, u64::MAX, 0)),
            Err((LengthField::Copy, u64::MAX))
        );
    }
}
