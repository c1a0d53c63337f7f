//! Bad regions: parts of a simulated flash that fail every access of chosen kinds, as worn-out
//! sectors, an ECC error that cannot be corrected, or a program or erase that reports failure
//! do on real NOR. Tests use them to check that a fault in one partition does not stop the
//! device from using the others.

use core::ops::Range;

/// Which accesses a bad region refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Failing {
    /// Reads fail (an uncorrectable read error).
    pub reads: bool,
    /// Programs fail (the chip reports a program error).
    pub programs: bool,
    /// Erases fail (the chip reports an erase error).
    pub erases: bool,
}

impl Failing {
    /// Only reads fail.
    pub const READS: Self = Self {
        reads: true,
        programs: false,
        erases: false,
    };
    /// Programs and erases fail; reads still work (a sector that can no longer change).
    pub const WRITES: Self = Self {
        reads: false,
        programs: true,
        erases: true,
    };
    /// Every access fails.
    pub const ALL: Self = Self {
        reads: true,
        programs: true,
        erases: true,
    };
}

/// The kind of access being checked against the bad regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Program,
    Erase,
}

/// A byte range of the flash that fails some accesses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRegion {
    /// The bytes that are bad.
    pub range: Range<u32>,
    /// Which accesses touching them fail.
    pub fails: Failing,
}

impl BadRegion {
    /// The first offset of `offset..offset + len` in this region, if `access` fails here.
    pub(super) fn hit(&self, access: Access, offset: u32, len: usize) -> Option<u32> {
        let applies = match access {
            Access::Read => self.fails.reads,
            Access::Program => self.fails.programs,
            Access::Erase => self.fails.erases,
        };
        let end = u32::try_from(len)
            .ok()
            .and_then(|l| offset.checked_add(l))?;
        let lo = offset.max(self.range.start);
        (applies && lo < end.min(self.range.end)).then_some(lo)
    }
}
