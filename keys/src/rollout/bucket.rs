//! Which share of the fleet a device falls in for a rollout: its bucket, and the cutoffs
//! (in basis points) that admit buckets below them.
//!
//! The server computes a device's bucket to admit it to a stage; the device computes its own
//! bucket to check it is under the ceiling its signed rollout policy allows. Both call
//! [`bucket`] here, so the two can not disagree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The number of buckets: one per basis point, so a cutoff of N basis points admits N of
/// them.
pub const BUCKETS: u16 = 10_000;

/// A device's place in a rollout, `0..10 000`. Stable: the same device and rollout always
/// give the same bucket; another rollout shuffles the fleet anew, so the same devices are
/// not always first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(u16);

impl Bucket {
    /// The bucket number, below [`BUCKETS`].
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `SHA-256(len(device_id) ‖ device_id ‖ len(rollout_id) ‖ rollout_id) mod 10 000`, each
/// length a `u32` little-endian byte count, so two different pairs of ids never hash the
/// same bytes (`("ab", "c")` and `("a", "bc")` differ). The first 8 bytes of the digest,
/// big-endian, are reduced: the bias of a 64-bit number mod 10 000 is below 10⁻¹⁵.
pub fn bucket(device_id: &str, rollout_id: &str) -> Bucket {
    let mut hash = Sha256::new();
    for id in [device_id, rollout_id] {
        // Ids are bounded far below 4 GiB by the wire limits; saturate rather than wrap.
        let len = u32::try_from(id.len()).unwrap_or(u32::MAX);
        hash.update(len.to_le_bytes());
        hash.update(id.as_bytes());
    }
    let digest = hash.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let reduced = u64::from_be_bytes(head) % u64::from(BUCKETS);
    // `reduced` is below 10 000, so it fits.
    Bucket(u16::try_from(reduced).unwrap_or(0))
}

/// Why a share of the fleet could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// More than the whole fleet.
    #[error("expected at most 10000 basis points (100%), found {0}")]
    TooLarge(u32),
    /// Not a percentage with at most two decimals.
    #[error("expected a percentage like 10%, 12.5% or 100%, found {0:?}")]
    Malformed(String),
}

/// A share of the fleet in basis points, `0..=10 000` (0 % to 100 %): a stage's cutoff, the
/// ceiling of a signed policy, a failure threshold. A cutoff admits the buckets below it.
///
/// JSON: the number of basis points (`1250`); text: a percentage (`12.5%`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct BasisPoints(u16);

impl BasisPoints {
    /// Nobody.
    pub const ZERO: Self = Self(0);
    /// The whole fleet.
    pub const FULL: Self = Self(BUCKETS);

    /// `points` basis points; refuses more than 10 000.
    pub fn new(points: u16) -> Result<Self, ShareError> {
        if points > BUCKETS {
            return Err(ShareError::TooLarge(u32::from(points)));
        }
        Ok(Self(points))
    }

    /// The number of basis points.
    pub fn get(self) -> u16 {
        self.0
    }

    /// Whether `bucket` is below this cutoff.
    pub fn admits(self, bucket: Bucket) -> bool {
        bucket.0 < self.0
    }

    /// `part` of `whole` in basis points, rounded down, for display; `ZERO` when `whole` is
    /// 0. Decisions use [`exceeded_by`](Self::exceeded_by), which does not round.
    pub fn ratio(part: u64, whole: u64) -> Self {
        if whole == 0 {
            return Self::ZERO;
        }
        let points = u128::from(part.min(whole)) * u128::from(BUCKETS) / u128::from(whole);
        Self(u16::try_from(points).unwrap_or(BUCKETS))
    }

    /// Whether `part` of `whole` is more than this share, computed exactly (no rounding).
    pub fn exceeded_by(self, part: u64, whole: u64) -> bool {
        u128::from(part) * u128::from(BUCKETS) > u128::from(self.0) * u128::from(whole)
    }
}

impl TryFrom<u16> for BasisPoints {
    type Error = ShareError;

    fn try_from(points: u16) -> Result<Self, ShareError> {
        Self::new(points)
    }
}

impl From<BasisPoints> for u16 {
    fn from(share: BasisPoints) -> u16 {
        share.0
    }
}

impl fmt::Display for BasisPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}%"),
            f10 if f10 % 10 == 0 => write!(f, "{whole}.{}%", f10 / 10),
            _ => write!(f, "{whole}.{frac:02}%"),
        }
    }
}

impl FromStr for BasisPoints {
    type Err = ShareError;

    /// `10%`, `12.5%`, `0.01%`: a percentage with at most two decimals.
    fn from_str(text: &str) -> Result<Self, ShareError> {
        let bad = || ShareError::Malformed(text.to_owned());
        let number = text.strip_suffix('%').ok_or_else(bad)?;
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 3 || frac.len() > 2 || !digits(whole) {
            return Err(bad());
        }
        if !digits(frac) || (number.contains('.') && frac.is_empty()) {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let points = whole * 100 + frac;
        (u16::try_from(points).ok())
            .and_then(|p| Self::new(p).ok())
            .ok_or(ShareError::TooLarge(points))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_stable_and_depends_on_both_ids() {
        let b = bucket("dev_1", "rol_1");
        assert_eq!(b, bucket("dev_1", "rol_1"));
        assert!(b.get() < BUCKETS);
        // Pinned: server and agent of every version must agree on this number.
        assert_eq!(b.get(), PINNED_BUCKET);
        let others = (0..20).filter(|i| bucket(&format!("dev_{i}"), "rol_1") != b);
        assert!(others.count() >= 18, "device id must move the bucket");
        let others = (0..20).filter(|i| bucket("dev_1", &format!("rol_{i}")) != b);
        assert!(others.count() >= 18, "rollout id must move the bucket");
    }

    /// `bucket("dev_1", "rol_1")`, computed from the definition by an independent
    /// implementation (Python's hashlib).
    const PINNED_BUCKET: u16 = 3442;

    #[test]
    fn the_concatenation_is_unambiguous() {
        // Plain concatenation would hash the same bytes for each of these pairs.
        let buckets: Vec<Bucket> = [("ab", "c"), ("a", "bc"), ("abc", ""), ("", "abc")]
            .iter()
            .map(|(device, rollout)| bucket(device, rollout))
            .collect();
        for (i, a) in buckets.iter().enumerate() {
            for b in &buckets[i + 1..] {
                assert_ne!(a, b, "{buckets:?}");
            }
        }
    }

    #[test]
    fn a_cutoff_admits_exactly_the_buckets_below_it() {
        let cut = BasisPoints::new(1000).unwrap();
        assert!(cut.admits(Bucket(999)));
        assert!(!cut.admits(Bucket(1000)));
        assert!(!BasisPoints::ZERO.admits(Bucket(0)));
        assert!(BasisPoints::FULL.admits(Bucket(BUCKETS - 1)));
        assert_eq!(BasisPoints::new(10_001), Err(ShareError::TooLarge(10_001)));
    }

    #[test]
    fn percentages_read_and_print_with_up_to_two_decimals() {
        for (text, points, shown) in [
            ("10%", 1000, "10%"),
            ("12.5%", 1250, "12.5%"),
            ("12.50%", 1250, "12.5%"),
            ("0.01%", 1, "0.01%"),
            ("100%", 10_000, "100%"),
            ("0%", 0, "0%"),
        ] {
            let share: BasisPoints = text.parse().unwrap();
            assert_eq!(share.get(), points, "{text}");
            assert_eq!(share.to_string(), shown);
        }
        for bad in [
            "", "%", "10", "1.234%", ".5%", "5.%", "-1%", "1e2%", "abc%", "1000%",
        ] {
            assert!(bad.parse::<BasisPoints>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "100.01%".parse::<BasisPoints>(),
            Err(ShareError::TooLarge(10_001))
        );
    }

    #[test]
    fn json_is_the_number_of_basis_points_and_refuses_more_than_all() {
        let share: BasisPoints = serde_json::from_str("1250").unwrap();
        assert_eq!(share.get(), 1250);
        assert_eq!(serde_json::to_string(&share).unwrap(), "1250");
        assert!(serde_json::from_str::<BasisPoints>("10001").is_err());
        assert!(serde_json::from_str::<BasisPoints>("-1").is_err());
    }

    #[test]
    fn rates_compare_exactly() {
        let five = BasisPoints::new(500).unwrap();
        assert!(!five.exceeded_by(1, 20), "5% is not more than 5%");
        assert!(five.exceeded_by(2, 39), "5.1% is");
        assert!(!five.exceeded_by(0, 0));
        assert_eq!(BasisPoints::ratio(1, 3).get(), 3333);
        assert_eq!(BasisPoints::ratio(5, 0), BasisPoints::ZERO);
        assert_eq!(BasisPoints::ratio(9, 4), BasisPoints::FULL);
    }
}
