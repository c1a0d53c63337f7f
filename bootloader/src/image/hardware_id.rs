//! The board a firmware image is built for.

use core::fmt;

use super::ImageError;

/// Identifies a board type (e.g. `acme-thermo-v2`). An image only boots on a board whose
/// bootloader was built with the same id. Stored as 32 bytes, NUL-padded; 1 to 32 characters
/// of `[A-Za-z0-9._-]` that start and end with a letter or digit, so it is safe as a file name
/// and as a URL path segment (the server names targets `firmware/<id>/...`): never `.` or
/// `..`, a hidden file, something a command reads as an option (`-rf`), or a name that a
/// file system changes (a trailing dot).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HardwareId([u8; HardwareId::LEN]);

impl HardwareId {
    /// Size of the field in the header.
    pub const LEN: usize = 32;

    /// A hardware id from its text form.
    pub fn new(id: &str) -> Result<Self, ImageError> {
        let mut raw = [0u8; Self::LEN];
        raw.get_mut(..id.len())
            .ok_or(ImageError::BadHardwareId)?
            .copy_from_slice(id.as_bytes());
        Self::from_bytes(raw)
    }

    /// A hardware id from its header bytes, checking the padding and the alphabet.
    pub fn from_bytes(raw: [u8; Self::LEN]) -> Result<Self, ImageError> {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(Self::LEN);
        let (text, padding) = raw.split_at(len);
        let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        let ends_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
        if !ends_ok(text.first())
            || !ends_ok(text.last())
            || !text.iter().all(allowed)
            || padding.iter().any(|&b| b != 0)
        {
            return Err(ImageError::BadHardwareId);
        }
        Ok(Self(raw))
    }

    /// The header bytes.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(Self::LEN);
        // Construction guarantees ASCII, so this never takes the fallback.
        self.0
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Display for HardwareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HardwareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HardwareId({:?})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_url_safe_names_up_to_32_chars() {
        let id = HardwareId::new("acme-thermo_v2.1").unwrap();
        assert_eq!(id.as_str(), "acme-thermo_v2.1");
        assert!(HardwareId::new(&"x".repeat(32)).is_ok());
        assert!(HardwareId::new("a").is_ok());
        assert!(
            HardwareId::new("a..b").is_ok(),
            "dots inside a name are harmless"
        );
    }

    #[test]
    fn refuses_names_that_are_special_as_a_path_or_url_segment() {
        for bad in [
            ".", "..", "...", ".hidden", "-rf", "--help", "_x", "board.", "board-", "board_",
        ] {
            assert_eq!(
                HardwareId::new(bad),
                Err(ImageError::BadHardwareId),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn header_bytes_naming_a_dot_segment_are_refused() {
        for bad in [&b".."[..], b"."] {
            let mut raw = [0u8; 32];
            raw[..bad.len()].copy_from_slice(bad);
            assert_eq!(HardwareId::from_bytes(raw), Err(ImageError::BadHardwareId));
        }
    }

    #[test]
    fn refuses_empty_long_or_unsafe_names() {
        for bad in ["", "a/b", "a b", "ü", "a\0b"] {
            assert_eq!(
                HardwareId::new(bad),
                Err(ImageError::BadHardwareId),
                "{bad:?}"
            );
        }
        assert_eq!(
            HardwareId::new(&"x".repeat(33)),
            Err(ImageError::BadHardwareId)
        );
    }

    #[test]
    fn refuses_garbage_after_the_padding() {
        let mut raw = [0u8; 32];
        raw[0] = b'a';
        raw[5] = b'b';
        assert_eq!(HardwareId::from_bytes(raw), Err(ImageError::BadHardwareId));
    }
}
