//! Semantic version `major.minor.patch` of a firmware image.

use core::fmt;
use core::str::FromStr;

/// A release version. Ordered the semver way (major, then minor, then patch); no pre-release
/// or build tags, because the order between releases must be total and obvious.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes.
    pub major: u32,
    /// Compatible features.
    pub minor: u32,
    /// Fixes.
    pub patch: u32,
}

/// Why a string is not a `major.minor.patch` version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionError {
    /// Not three dot-separated parts.
    WrongShape,
    /// A part is empty, has a non-digit, a leading zero, or exceeds 32 bits.
    BadNumber,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongShape => write!(f, "expected a version like 1.4.0 (major.minor.patch)"),
            Self::BadNumber => write!(
                f,
                "each version part must be a number below 2^32 without leading zeros"
            ),
        }
    }
}

impl Version {
    /// A version from its three parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    pub(crate) fn to_le_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        for (chunk, part) in out
            .chunks_exact_mut(4)
            .zip([self.major, self.minor, self.patch])
        {
            chunk.copy_from_slice(&part.to_le_bytes());
        }
        out
    }

    pub(crate) fn from_le_bytes(b: [u8; 12]) -> Self {
        let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3] = b;
        Self {
            major: u32::from_le_bytes([a0, a1, a2, a3]),
            minor: u32::from_le_bytes([b0, b1, b2, b3]),
            patch: u32::from_le_bytes([c0, c1, c2, c3]),
        }
    }
}

fn parse_part(s: &str) -> Result<u32, VersionError> {
    let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = s.len() > 1 && s.starts_with('0');
    if !digits_only || leading_zero {
        return Err(VersionError::BadNumber);
    }
    s.parse().map_err(|_| VersionError::BadNumber)
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('.');
        let (Some(a), Some(b), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VersionError::WrongShape);
        };
        Ok(Self::new(parse_part(a)?, parse_part(b)?, parse_part(c)?))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl core::error::Error for VersionError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_semver_triples() {
        let v: Version = "1.40.0".parse().unwrap();
        assert_eq!(v, Version::new(1, 40, 0));
        extern crate std;
        assert_eq!(std::format!("{v}"), "1.40.0");
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(Version::new(1, 10, 0) > Version::new(1, 9, 9));
        assert!(Version::new(2, 0, 0) > Version::new(1, 99, 99));
    }

    #[test]
    fn refuses_malformed_versions() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1..3",
            "a.b.c",
            "01.2.3",
            "1.2.-3",
            "1.2.3-rc1",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            "4294967296.0.0".parse::<Version>(),
            Err(VersionError::BadNumber)
        );
        assert_eq!("1.2".parse::<Version>(), Err(VersionError::WrongShape));
    }

    #[test]
    fn byte_encoding_round_trips() {
        let v = Version::new(7, 0x0102_0304, u32::MAX);
        assert_eq!(Version::from_le_bytes(v.to_le_bytes()), v);
    }
}
