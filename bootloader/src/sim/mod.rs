//! Host-only NOR flash simulator with power-cut injection.
//!
//! [`SimFlash`] keeps a NOR flash in RAM with real NOR rules: erase sets whole sectors
//! to `0xFF`, a program can only clear bits (1 -> 0), and the program and erase
//! granularities are enforced. It counts reads, programs, erases and per-sector wear,
//! and logs every mutating operation so that a test can replay a scenario and cut
//! power at each point of it.
//!
//! MCUboot's simulator cuts power only *between* flash operations. This one also
//! tears an operation *inside*: a program cut at word `k` leaves words before `k`
//! programmed, word `k` with undefined bits and the rest untouched; an erase cut the
//! same way leaves a partly erased range. Undefined bits come from a seeded PRNG, so
//! every failure is reproducible from its [`PowerCut`] value.
//!
//! A program that would turn a 0 bit back into 1 is refused with
//! [`SimError::ProgramOverZero`] instead of being silently combined with a bitwise
//! AND, so that such bugs show up. Re-programming bits that are already 0 as 0 is
//! allowed, hence [`MultiwriteNorFlash`].
//!
//! [`SimFlash::add_bad_region`] marks a byte range whose reads, programs or erases fail
//! with [`SimError::BadRegion`], for tests of what a device does when part of its flash
//! goes bad.

mod bad_region;

use core::ops::Range;
use std::fmt;
use std::vec;
use std::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use bad_region::Access;
pub use bad_region::{BadRegion, Failing};

/// Value of an erased byte.
const ERASED: u8 = 0xFF;

/// NOR flash in RAM. `WRITE` = program granularity in bytes (word), `ERASE` = sector
/// size in bytes.
///
/// Implements both the blocking (`embedded-storage`) and the async
/// (`embedded-storage-async`) flash traits, so it can stand in for any flash driver.
#[derive(Clone, Debug)]
pub struct SimFlash<const WRITE: usize, const ERASE: usize> {
    data: Vec<u8>,
    wear: Vec<u32>,
    stats: Stats,
    ops: u64,
    log: Vec<Op>,
    cut: Option<PowerCut>,
    powered: bool,
    bad: Vec<BadRegion>,
}

/// Operation counters, for tests that check how much flash work a routine does.
///
/// They count operations that completed; a cut operation shows up in
/// [`SimFlash::ops`] and [`SimFlash::op_log`] but not here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Successful reads.
    pub reads: u64,
    /// Completed non-empty programs.
    pub writes: u64,
    /// Completed non-empty erases (one per call, whatever the number of sectors).
    pub erases: u64,
    /// Bytes programmed by completed programs.
    pub bytes_written: u64,
}

/// Kind of a mutating flash operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A program (`write`).
    Program,
    /// An erase of one or more whole sectors.
    Erase,
}

/// One mutating operation as attempted, recorded so tests can aim power cuts at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// Program or erase.
    pub kind: OpKind,
    /// Start offset in bytes.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Op {
    /// How many distinct tear points lie inside this op: one per word of `write_size`
    /// bytes, for programs and erases alike. Valid `at` values for
    /// [`PowerCut::Inside`] are `0..tear_points`.
    #[must_use]
    pub fn tear_points(&self, write_size: usize) -> u32 {
        let Ok(write_size) = u32::try_from(write_size) else {
            return 0;
        };
        self.len.checked_div(write_size).unwrap_or(0)
    }
}

/// Where power fails. Operations are numbered from 0 in the order they are attempted
/// since [`SimFlash::new`], counting every valid non-empty program and erase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerCut {
    /// Power fails just before mutating op number `op`: it does nothing.
    Before {
        /// Index of the op that never happens.
        op: u64,
    },
    /// Power fails inside op number `op`, at word `at` (in units of `WRITE` bytes from
    /// the op's start; an `at` past the last word is taken as the last word).
    ///
    /// For a program: words before `at` are fully programmed, word `at` gets undefined
    /// bits (each bit the program would clear is cleared or not, chosen by a PRNG
    /// seeded with `seed`), later words are untouched.
    ///
    /// For an erase: words before `at` are `0xFF`, word `at` gets undefined bits (each
    /// 0 bit becomes 1 or not, by the PRNG), the rest keeps its old contents. An erase
    /// spanning several sectors is one op and `at` counts across the whole range.
    Inside {
        /// Index of the op that is torn.
        op: u64,
        /// Word index inside the op where it is torn.
        at: u32,
        /// PRNG seed for the undefined bits of the torn word.
        seed: u64,
    },
    /// Power fails inside op number `op` after exactly `words` words completed cleanly
    /// (programmed, or erased); the rest is untouched. Together with [`Self::Inside`] this
    /// covers both a tear on a word boundary and a tear within a word.
    Prefix {
        /// Index of the op that is cut short.
        op: u64,
        /// Words completed before the cut (clamped to the op's length).
        words: u32,
    },
}

impl PowerCut {
    /// Index of the op this cut is aimed at.
    fn op(&self) -> u64 {
        match *self {
            Self::Before { op } | Self::Inside { op, .. } | Self::Prefix { op, .. } => op,
        }
    }
}

/// Errors of [`SimFlash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimError {
    /// Offset or length is not a multiple of the required granularity.
    NotAligned,
    /// The range does not lie inside the flash.
    OutOfBounds,
    /// A program tried to turn a 0 bit back to 1 (real NOR would silently AND).
    ProgramOverZero {
        /// First byte offset where that would happen.
        offset: u32,
    },
    /// Power is off: a cut happened and [`SimFlash::restore_power`] was not called.
    PowerLost,
    /// The access touches a bad region (see [`SimFlash::add_bad_region`]); nothing changed.
    BadRegion {
        /// First byte offset of the access inside the bad region.
        offset: u32,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAligned => f.write_str("flash access not aligned"),
            Self::OutOfBounds => f.write_str("flash access out of bounds"),
            Self::ProgramOverZero { offset } => {
                write!(f, "program would turn a 0 bit into 1 at offset {offset:#x}")
            }
            Self::PowerLost => f.write_str("flash power lost"),
            Self::BadRegion { offset } => {
                write!(
                    f,
                    "flash access failed in a bad region at offset {offset:#x}"
                )
            }
        }
    }
}

impl std::error::Error for SimError {}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::ProgramOverZero { .. } | Self::PowerLost | Self::BadRegion { .. } => {
                NorFlashErrorKind::Other
            }
        }
    }
}

/// `SplitMix64`: tiny deterministic PRNG for the undefined bits of a torn word.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Endless stream of random bytes.
    fn bytes(mut self) -> impl Iterator<Item = u8> {
        core::iter::repeat_with(move || self.next_u64().to_le_bytes()).flatten()
    }
}

impl<const WRITE: usize, const ERASE: usize> SimFlash<WRITE, ERASE> {
    /// Compile-time check of the geometry: words are non-empty and tile a sector.
    const GEOMETRY_OK: () = assert!(
        WRITE > 0 && ERASE > 0 && ERASE.is_multiple_of(WRITE),
        "SimFlash needs WRITE > 0 and ERASE a non-zero multiple of WRITE"
    );

    /// A flash of `sectors` sectors (`sectors * ERASE` bytes), all erased and powered.
    ///
    /// # Panics
    /// If the capacity does not fit in the `u32` offsets of the flash traits.
    #[must_use]
    pub fn new(sectors: usize) -> Self {
        let () = Self::GEOMETRY_OK;
        let capacity = sectors.checked_mul(ERASE);
        assert!(
            capacity.is_some_and(|c| u32::try_from(c).is_ok()),
            "SimFlash capacity must fit in u32"
        );
        Self {
            data: vec![ERASED; capacity.unwrap_or(0)],
            wear: vec![0; sectors],
            stats: Stats::default(),
            ops: 0,
            log: Vec::new(),
            cut: None,
            powered: true,
            bad: Vec::new(),
        }
    }

    /// Makes `range` fail the accesses in `fails` from now on, until [`Self::heal`]. A
    /// failing access changes nothing and, like an invalid one, is not counted as an op.
    pub fn add_bad_region(&mut self, range: Range<u32>, fails: Failing) {
        self.bad.push(BadRegion { range, fails });
    }

    /// Removes every bad region (the flash was replaced, or the fault was transient).
    pub fn heal(&mut self) {
        self.bad.clear();
    }

    /// Fails with `BadRegion` if `access` to `offset..offset + len` touches a bad region.
    fn check_bad(&self, access: Access, offset: u32, len: usize) -> Result<(), SimError> {
        match self.bad.iter().find_map(|r| r.hit(access, offset, len)) {
            Some(offset) => Err(SimError::BadRegion { offset }),
            None => Ok(()),
        }
    }

    /// Raw contents, for tests to inspect.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Raw mutable contents, for tests to corrupt data or preload images. Bypasses NOR
    /// rules and is not counted as an op.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Operation counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Wear: number of erases each sector has received (a torn erase counts for the
    /// sectors it reached).
    #[must_use]
    pub fn sector_erases(&self) -> &[u32] {
        &self.wear
    }

    /// Mutating operations (program + erase) attempted so far, including a cut one;
    /// the index the next op will get.
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Every mutating op attempted, in order, so a sweep knows where to aim cuts.
    #[must_use]
    pub fn op_log(&self) -> &[Op] {
        &self.log
    }

    /// Arms (or with `None` disarms) a power cut at a future op.
    pub fn set_power_cut(&mut self, cut: Option<PowerCut>) {
        self.cut = cut;
    }

    /// Whether the flash still has power (false after an armed cut fired).
    #[must_use]
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// "Reboot": the flash works again with contents as the cut left them; the armed
    /// cut is cleared so it cannot fire twice.
    pub fn restore_power(&mut self) {
        self.powered = true;
        self.cut = None;
    }

    /// Byte range `offset..offset + len` if it lies inside the flash.
    fn range(&self, offset: u32, len: usize) -> Result<Range<usize>, SimError> {
        let start = usize::try_from(offset).map_err(|_| SimError::OutOfBounds)?;
        let end = start.checked_add(len).ok_or(SimError::OutOfBounds)?;
        if end > self.data.len() {
            return Err(SimError::OutOfBounds);
        }
        Ok(start..end)
    }

    /// Fails with `PowerLost` while power is off.
    fn check_power(&self) -> Result<(), SimError> {
        if self.powered {
            Ok(())
        } else {
            Err(SimError::PowerLost)
        }
    }

    /// Counts and logs a valid op, and returns the cut aimed at it, if any.
    fn begin_op(&mut self, kind: OpKind, offset: u32, len: usize) -> Option<PowerCut> {
        let index = self.ops;
        self.ops = self.ops.saturating_add(1);
        // `len` was bounds-checked against a capacity that fits in u32.
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.log.push(Op { kind, offset, len });
        self.cut.filter(|cut| cut.op() == index)
    }

    /// Programs `bytes` at `offset` (see [`NorFlash::write`]).
    fn program(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let range = self.range(offset, bytes.len())?;
        if !offset.is_multiple_of(word_u32::<WRITE>()) || !bytes.len().is_multiple_of(WRITE) {
            return Err(SimError::NotAligned);
        }
        let start = range.start;
        let old = self.data.get(range.clone()).ok_or(SimError::OutOfBounds)?;
        if let Some(pos) = old.iter().zip(bytes).position(|(o, n)| o & n != *n) {
            let bad = start.checked_add(pos).ok_or(SimError::OutOfBounds)?;
            let offset = u32::try_from(bad).map_err(|_| SimError::OutOfBounds)?;
            return Err(SimError::ProgramOverZero { offset });
        }
        self.check_power()?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.check_bad(Access::Program, offset, bytes.len())?;

        let cut = self.begin_op(OpKind::Program, offset, bytes.len());
        let dst = self.data.get_mut(range).ok_or(SimError::OutOfBounds)?;
        match cut {
            None => {
                dst.iter_mut().zip(bytes).for_each(|(d, n)| *d &= n);
                self.stats.writes = self.stats.writes.saturating_add(1);
                let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                self.stats.bytes_written = self.stats.bytes_written.saturating_add(len);
                Ok(())
            }
            Some(PowerCut::Before { .. }) => {
                self.powered = false;
                Err(SimError::PowerLost)
            }
            Some(PowerCut::Prefix { words, .. }) => {
                let words = usize::try_from(words).unwrap_or(usize::MAX);
                for (d, n) in dst.chunks_mut(WRITE).zip(bytes.chunks(WRITE)).take(words) {
                    d.iter_mut().zip(n).for_each(|(d, n)| *d &= n);
                }
                self.powered = false;
                Err(SimError::PowerLost)
            }
            Some(PowerCut::Inside { at, seed, .. }) => {
                let at = tear_word::<WRITE>(at, bytes.len());
                let mut noise = SplitMix64(seed).bytes();
                for (i, (d, n)) in dst.chunks_mut(WRITE).zip(bytes.chunks(WRITE)).enumerate() {
                    if i < at {
                        d.iter_mut().zip(n).for_each(|(d, n)| *d &= n);
                    } else {
                        // Torn word: each bit the program clears is cleared or not.
                        for ((d, n), r) in d.iter_mut().zip(n).zip(&mut noise) {
                            let clearing = *d & !n;
                            *d &= !(clearing & r);
                        }
                        break;
                    }
                }
                self.powered = false;
                Err(SimError::PowerLost)
            }
        }
    }

    /// Erases `from..to` (see [`NorFlash::erase`]).
    fn erase_range(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        if from > to {
            return Err(SimError::OutOfBounds);
        }
        let len = usize::try_from(to - from).map_err(|_| SimError::OutOfBounds)?;
        let range = self.range(from, len)?;
        if !range.start.is_multiple_of(ERASE) || !range.end.is_multiple_of(ERASE) {
            return Err(SimError::NotAligned);
        }
        self.check_power()?;
        if range.is_empty() {
            return Ok(());
        }
        self.check_bad(Access::Erase, from, len)?;

        let first_sector = range.start / ERASE;
        let cut = self.begin_op(OpKind::Erase, from, len);
        let dst = self
            .data
            .get_mut(range.clone())
            .ok_or(SimError::OutOfBounds)?;
        let reached = match cut {
            None => {
                dst.fill(ERASED);
                self.stats.erases = self.stats.erases.saturating_add(1);
                len
            }
            Some(PowerCut::Before { .. }) => {
                self.powered = false;
                return Err(SimError::PowerLost);
            }
            Some(PowerCut::Prefix { words, .. }) => {
                let words = usize::try_from(words)
                    .unwrap_or(usize::MAX)
                    .min(len / WRITE);
                dst.chunks_mut(WRITE)
                    .take(words)
                    .for_each(|d| d.fill(ERASED));
                self.powered = false;
                words.saturating_mul(WRITE)
            }
            Some(PowerCut::Inside { at, seed, .. }) => {
                let at = tear_word::<WRITE>(at, len);
                let mut noise = SplitMix64(seed).bytes();
                for (i, d) in dst.chunks_mut(WRITE).enumerate() {
                    if i < at {
                        d.fill(ERASED);
                    } else {
                        // Torn word: each 0 bit becomes 1 or not.
                        for (d, r) in d.iter_mut().zip(&mut noise) {
                            *d |= !*d & r;
                        }
                        break;
                    }
                }
                self.powered = false;
                // Bytes up to and including the torn word saw the erase pulse.
                at.saturating_add(1).saturating_mul(WRITE)
            }
        };
        let sectors = reached.div_ceil(ERASE);
        self.wear
            .iter_mut()
            .skip(first_sector)
            .take(sectors)
            .for_each(|w| *w = w.saturating_add(1));
        if self.powered {
            Ok(())
        } else {
            Err(SimError::PowerLost)
        }
    }

    /// Reads into `bytes` (see [`ReadNorFlash::read`]).
    fn read_into(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        let range = self.range(offset, bytes.len())?;
        self.check_power()?;
        self.check_bad(Access::Read, offset, bytes.len())?;
        let src = self.data.get(range).ok_or(SimError::OutOfBounds)?;
        bytes.copy_from_slice(src);
        self.stats.reads = self.stats.reads.saturating_add(1);
        Ok(())
    }
}

/// `WRITE` as a `u32` for offset alignment checks (word sizes are tiny).
fn word_u32<const WRITE: usize>() -> u32 {
    u32::try_from(WRITE).unwrap_or(u32::MAX)
}

/// Index of the torn word for a cut at `at` in an op of `len` bytes, clamped to the
/// last word.
fn tear_word<const WRITE: usize>(at: u32, len: usize) -> usize {
    let last = (len / WRITE).saturating_sub(1);
    usize::try_from(at).map_or(last, |at| at.min(last))
}

impl<const WRITE: usize, const ERASE: usize> ErrorType for SimFlash<WRITE, ERASE> {
    type Error = SimError;
}

impl<const WRITE: usize, const ERASE: usize> ReadNorFlash for SimFlash<WRITE, ERASE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.read_into(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const WRITE: usize, const ERASE: usize> NorFlash for SimFlash<WRITE, ERASE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.erase_range(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.program(offset, bytes)
    }
}

impl<const WRITE: usize, const ERASE: usize> MultiwriteNorFlash for SimFlash<WRITE, ERASE> {}

impl<const WRITE: usize, const ERASE: usize> embedded_storage_async::nor_flash::ReadNorFlash
    for SimFlash<WRITE, ERASE>
{
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.read_into(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const WRITE: usize, const ERASE: usize> embedded_storage_async::nor_flash::NorFlash
    for SimFlash<WRITE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.erase_range(from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.program(offset, bytes)
    }
}

impl<const WRITE: usize, const ERASE: usize> embedded_storage_async::nor_flash::MultiwriteNorFlash
    for SimFlash<WRITE, ERASE>
{
}

#[cfg(test)]
mod tests;
