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

use core::ops::Range;
use std::fmt;
use std::vec;
use std::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

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
        }
    }
}

impl std::error::Error for SimError {}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::ProgramOverZero { .. } | Self::PowerLost => NorFlashErrorKind::Other,
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
mod tests {
    use super::*;

    /// 4-byte words, 64-byte sectors: small enough to inspect by hand.
    type Flash = SimFlash<4, 64>;

    fn read_all(f: &mut Flash) -> Vec<u8> {
        let mut buf = vec![0; f.capacity()];
        f.read(0, &mut buf).unwrap();
        buf
    }

    #[test]
    fn new_is_erased_powered_and_sized() {
        let f = Flash::new(3);
        assert_eq!(f.capacity(), 192);
        assert!(f.bytes().iter().all(|&b| b == 0xFF));
        assert!(f.is_powered());
        assert_eq!(f.sector_erases(), &[0, 0, 0]);
        assert_eq!(f.stats(), Stats::default());
        assert_eq!(f.ops(), 0);
        assert!(f.op_log().is_empty());
    }

    #[test]
    fn erase_sets_ff_and_counts_wear() {
        let mut f = Flash::new(4);
        f.bytes_mut().fill(0x00);
        f.erase(64, 192).unwrap();
        assert!(f.bytes()[..64].iter().all(|&b| b == 0x00));
        assert!(f.bytes()[64..192].iter().all(|&b| b == 0xFF));
        assert!(f.bytes()[192..].iter().all(|&b| b == 0x00));
        assert_eq!(f.sector_erases(), &[0, 1, 1, 0]);
        f.erase(64, 128).unwrap();
        assert_eq!(f.sector_erases(), &[0, 2, 1, 0]);
        assert_eq!(f.stats().erases, 2);
        assert_eq!(f.ops(), 2);
    }

    #[test]
    fn program_clears_bits_and_refuses_one_over_zero() {
        let mut f = Flash::new(2);
        f.write(8, &[0xF0, 0x0F, 0xAA, 0x55]).unwrap();
        assert_eq!(&f.bytes()[8..12], &[0xF0, 0x0F, 0xAA, 0x55]);
        // Clearing more bits (and re-writing zeros as zeros) is fine: multiwrite.
        f.write(8, &[0x00, 0x0F, 0x0A, 0x55]).unwrap();
        assert_eq!(&f.bytes()[8..12], &[0x00, 0x0F, 0x0A, 0x55]);
        // Turning a 0 back into 1 is refused; first offending byte is reported.
        let before = f.bytes().to_vec();
        assert_eq!(
            f.write(8, &[0x00, 0x0F, 0x0B, 0xFF]),
            Err(SimError::ProgramOverZero { offset: 10 })
        );
        assert_eq!(f.bytes(), &before[..]);
        assert_eq!(f.ops(), 2);
        assert_eq!(f.stats().writes, 2);
        assert_eq!(f.stats().bytes_written, 8);
        assert!(f.is_powered());
    }

    #[test]
    fn read_returns_contents_and_counts() {
        let mut f = Flash::new(1);
        f.write(4, &[1, 2, 3, 4]).unwrap();
        let mut buf = [0u8; 3];
        f.read(5, &mut buf).unwrap();
        assert_eq!(buf, [2, 3, 4]);
        assert_eq!(f.stats().reads, 1);
        assert_eq!(f.ops(), 1, "reads are not mutating ops");
    }

    #[test]
    fn alignment_and_bounds_errors() {
        let mut f = Flash::new(2);
        let mut buf = [0u8; 4];
        assert_eq!(f.read(126, &mut buf), Err(SimError::OutOfBounds));
        assert_eq!(f.read(u32::MAX, &mut buf), Err(SimError::OutOfBounds));
        f.read(127, &mut buf[..1]).unwrap();

        assert_eq!(f.write(2, &[0; 4]), Err(SimError::NotAligned));
        assert_eq!(f.write(4, &[0; 3]), Err(SimError::NotAligned));
        assert_eq!(f.write(128, &[0; 4]), Err(SimError::OutOfBounds));
        assert_eq!(f.write(124, &[0; 8]), Err(SimError::OutOfBounds));
        assert_eq!(f.write(u32::MAX - 3, &[0; 4]), Err(SimError::OutOfBounds));

        assert_eq!(f.erase(1, 64), Err(SimError::NotAligned));
        assert_eq!(f.erase(0, 65), Err(SimError::NotAligned));
        assert_eq!(f.erase(64, 0), Err(SimError::OutOfBounds));
        assert_eq!(f.erase(0, 192), Err(SimError::OutOfBounds));

        assert!(f.bytes().iter().all(|&b| b == 0xFF));
        assert_eq!(f.ops(), 0);
        assert!(f.op_log().is_empty());
        assert_eq!(f.sector_erases(), &[0, 0]);
        assert_eq!(SimError::NotAligned.kind(), NorFlashErrorKind::NotAligned);
        assert_eq!(SimError::OutOfBounds.kind(), NorFlashErrorKind::OutOfBounds);
        assert_eq!(SimError::PowerLost.kind(), NorFlashErrorKind::Other);
        assert_eq!(
            SimError::ProgramOverZero { offset: 0 }.kind(),
            NorFlashErrorKind::Other
        );
    }

    #[test]
    fn before_cut_changes_nothing_and_power_stays_off_until_restore() {
        let mut f = Flash::new(2);
        f.write(0, &[0x11; 4]).unwrap(); // op 0
        f.set_power_cut(Some(PowerCut::Before { op: 2 }));
        f.write(4, &[0x22; 4]).unwrap(); // op 1
        let snapshot = f.bytes().to_vec();

        assert_eq!(f.erase(0, 64), Err(SimError::PowerLost)); // op 2: cut
        assert!(!f.is_powered());
        assert_eq!(f.bytes(), &snapshot[..]);
        assert_eq!(f.ops(), 3);
        assert_eq!(f.sector_erases(), &[0, 0]);

        // Everything fails while off, changes nothing and is not counted.
        let mut buf = [0u8; 4];
        assert_eq!(f.read(0, &mut buf), Err(SimError::PowerLost));
        assert_eq!(f.write(8, &[0; 4]), Err(SimError::PowerLost));
        assert_eq!(f.write(8, &[]), Err(SimError::PowerLost));
        assert_eq!(f.erase(64, 128), Err(SimError::PowerLost));
        assert_eq!(f.bytes(), &snapshot[..]);
        assert_eq!(f.ops(), 3);
        assert_eq!(f.op_log().len(), 3);
        assert_eq!(f.stats().reads, 0);

        f.restore_power();
        assert!(f.is_powered());
        assert_eq!(&read_all(&mut f)[..], &snapshot[..]);
        // The cut is disarmed: the same op index cannot fire again, later ops work.
        f.erase(0, 64).unwrap(); // op 3
        f.write(0, &[0x33; 4]).unwrap(); // op 4
        assert_eq!(
            &f.bytes()[..8],
            &[0x33, 0x33, 0x33, 0x33, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(f.ops(), 5);
    }

    #[test]
    fn cut_at_an_op_that_never_comes_does_nothing() {
        let mut f = Flash::new(1);
        f.set_power_cut(Some(PowerCut::Before { op: 10 }));
        for i in 0..4u8 {
            f.write(u32::from(i) * 4, &[i; 4]).unwrap();
        }
        assert!(f.is_powered());
        f.set_power_cut(None);
        f.write(16, &[0; 4]).unwrap();
        assert!(f.is_powered());
    }

    #[test]
    fn prefix_cut_on_program_completes_exactly_the_first_words() {
        let mut f = Flash::new(1);
        f.set_power_cut(Some(PowerCut::Prefix { op: 0, words: 3 }));
        assert_eq!(f.write(0, &[0u8; 16]), Err(SimError::PowerLost));
        assert!(
            f.bytes()[..12].iter().all(|&b| b == 0),
            "three words programmed"
        );
        assert!(
            f.bytes()[12..].iter().all(|&b| b == 0xFF),
            "fourth word untouched"
        );
        assert!(!f.is_powered());
    }

    #[test]
    fn prefix_cut_on_erase_erases_exactly_the_first_words() {
        let mut f = Flash::new(2);
        f.bytes_mut().fill(0);
        f.set_power_cut(Some(PowerCut::Prefix { op: 0, words: 5 }));
        assert_eq!(f.erase(0, 128), Err(SimError::PowerLost));
        assert!(f.bytes()[..20].iter().all(|&b| b == 0xFF));
        assert!(f.bytes()[20..].iter().all(|&b| b == 0));
        assert_eq!(f.sector_erases(), &[1, 0]);
    }

    /// `lo ⊆ torn ⊆ hi` as bit sets: the torn byte lies between the two endpoints.
    fn between(lo: u8, torn: u8, hi: u8) -> bool {
        torn & hi == torn && torn | lo == torn
    }

    #[test]
    fn inside_cut_on_program_tears_exactly_one_word() {
        let mut f = Flash::new(1);
        // Old contents: a pattern with some zeros so "already 0" bits are exercised.
        f.bytes_mut()[..16].copy_from_slice(&[0xFF, 0xFE, 0xF7, 0x7F].repeat(4));
        let old = f.bytes().to_vec();
        let new: Vec<u8> = [0x00, 0x12, 0x34, 0x56].repeat(4);
        f.set_power_cut(Some(PowerCut::Inside {
            op: 0,
            at: 2,
            seed: 7,
        }));
        assert_eq!(f.write(0, &new), Err(SimError::PowerLost));
        assert!(!f.is_powered());
        let b = f.bytes();
        let new_and_old: Vec<u8> = new.iter().zip(&old).map(|(n, o)| n & o).collect();
        assert_eq!(&b[..8], &new_and_old[..8], "prefix words fully programmed");
        for i in 8..12 {
            assert!(
                between(new_and_old[i], b[i], old[i]),
                "byte {i}: {:#x}",
                b[i]
            );
        }
        assert_ne!(&b[8..12], &old[8..12], "seed 7 clears at least one bit");
        assert_ne!(
            &b[8..12],
            &new_and_old[8..12],
            "seed 7 leaves at least one bit"
        );
        assert_eq!(&b[12..], &old[12..], "suffix untouched");
        assert_eq!(
            f.stats().writes,
            0,
            "a cut program is not a completed write"
        );
        assert_eq!(f.ops(), 1);
    }

    #[test]
    fn inside_cut_on_erase_leaves_partly_erased_range() {
        let mut f = Flash::new(3);
        for (i, b) in f.bytes_mut().iter_mut().enumerate() {
            *b = u8::try_from(i % 251).unwrap() & 0x5A;
        }
        let old = f.bytes().to_vec();
        // Erase sectors 1..3 (128 bytes = 32 words), tear at word 20: inside sector 2.
        f.set_power_cut(Some(PowerCut::Inside {
            op: 0,
            at: 20,
            seed: 3,
        }));
        assert_eq!(f.erase(64, 192), Err(SimError::PowerLost));
        let b = f.bytes();
        assert_eq!(&b[..64], &old[..64], "outside the erase untouched");
        assert!(b[64..144].iter().all(|&x| x == 0xFF), "erased prefix");
        for i in 144..148 {
            assert!(between(old[i], b[i], 0xFF), "byte {i}: {:#x}", b[i]);
        }
        assert_ne!(&b[144..148], &old[144..148]);
        assert_eq!(&b[148..], &old[148..], "old suffix");
        assert_eq!(f.sector_erases(), &[0, 1, 1], "both sectors got the pulse");
        assert_eq!(f.stats().erases, 0);

        // Tear in the first sector of a two-sector erase: only that one wears.
        let mut f = Flash::new(2);
        f.bytes_mut().fill(0);
        f.set_power_cut(Some(PowerCut::Inside {
            op: 0,
            at: 0,
            seed: 1,
        }));
        assert_eq!(f.erase(0, 128), Err(SimError::PowerLost));
        assert!(f.bytes()[4..].iter().all(|&x| x == 0));
        assert_eq!(f.sector_erases(), &[1, 0]);
    }

    #[test]
    fn inside_cut_past_last_word_tears_the_last_word() {
        let mut f = Flash::new(1);
        f.set_power_cut(Some(PowerCut::Inside {
            op: 0,
            at: 99,
            seed: 5,
        }));
        assert_eq!(f.write(0, &[0u8; 8]), Err(SimError::PowerLost));
        assert_eq!(&f.bytes()[..4], &[0; 4]);
        assert!(f.bytes()[8..].iter().all(|&x| x == 0xFF));
    }

    fn torn_program(seed: u64) -> Vec<u8> {
        let mut f = Flash::new(1);
        f.set_power_cut(Some(PowerCut::Inside { op: 0, at: 0, seed }));
        assert_eq!(f.write(0, &[0u8; 4]), Err(SimError::PowerLost));
        f.bytes()[..4].to_vec()
    }

    fn torn_erase(seed: u64) -> Vec<u8> {
        let mut f = Flash::new(1);
        f.bytes_mut().fill(0);
        f.set_power_cut(Some(PowerCut::Inside { op: 0, at: 1, seed }));
        assert_eq!(f.erase(0, 64), Err(SimError::PowerLost));
        f.bytes()[4..8].to_vec()
    }

    #[test]
    fn torn_bits_are_deterministic_per_seed() {
        for seed in 0..20 {
            assert_eq!(torn_program(seed), torn_program(seed));
            assert_eq!(torn_erase(seed), torn_erase(seed));
        }
        let programs: std::collections::HashSet<Vec<u8>> = (0..20).map(torn_program).collect();
        let erases: std::collections::HashSet<Vec<u8>> = (0..20).map(torn_erase).collect();
        assert!(programs.len() > 1, "different seeds give different tears");
        assert!(erases.len() > 1, "different seeds give different tears");
    }

    #[test]
    fn op_counting_ignores_noops_and_invalid_calls() {
        let mut f = Flash::new(2);
        f.write(0, &[]).unwrap();
        f.erase(64, 64).unwrap();
        let _ = f.write(1, &[0; 4]);
        let _ = f.write(0, &[0; 3]);
        let _ = f.erase(0, 1);
        let _ = f.erase(0, 1024);
        f.write(0, &[0; 4]).unwrap();
        let _ = f.write(0, &[0xFF; 4]); // ProgramOverZero
        let mut buf = [0u8; 8];
        f.read(0, &mut buf).unwrap();
        assert_eq!(f.ops(), 1);
        assert_eq!(f.op_log().len(), 1);
        assert_eq!(f.stats().writes, 1);
        assert_eq!(f.sector_erases(), &[0, 0]);

        // A cut aimed at op 1 skips the no-ops and lands on the next real op.
        f.set_power_cut(Some(PowerCut::Before { op: 1 }));
        f.write(4, &[]).unwrap();
        f.erase(0, 0).unwrap();
        assert!(f.is_powered());
        assert_eq!(f.erase(0, 64), Err(SimError::PowerLost));
        assert_eq!(f.ops(), 2);
    }

    #[test]
    fn op_log_records_kind_offset_len_including_the_cut_op() {
        let mut f = Flash::new(4);
        f.erase(64, 256).unwrap();
        f.write(68, &[0; 8]).unwrap();
        f.set_power_cut(Some(PowerCut::Before { op: 2 }));
        assert_eq!(f.write(128, &[0; 12]), Err(SimError::PowerLost));
        let log = f.op_log();
        assert_eq!(
            log,
            &[
                Op {
                    kind: OpKind::Erase,
                    offset: 64,
                    len: 192
                },
                Op {
                    kind: OpKind::Program,
                    offset: 68,
                    len: 8
                },
                Op {
                    kind: OpKind::Program,
                    offset: 128,
                    len: 12
                },
            ]
        );
        assert_eq!(f.ops(), 3);
    }

    #[test]
    fn tear_points_count_words() {
        let program = Op {
            kind: OpKind::Program,
            offset: 0,
            len: 12,
        };
        let erase = Op {
            kind: OpKind::Erase,
            offset: 64,
            len: 128,
        };
        assert_eq!(program.tear_points(4), 3);
        assert_eq!(erase.tear_points(4), 32);
        assert_eq!(erase.tear_points(0), 0);

        // Every tear point of a logged op is a distinct, valid cut.
        let mut f = Flash::new(1);
        f.write(0, &[0; 12]).unwrap();
        let op = f.op_log()[0];
        let mut results = Vec::new();
        for at in 0..op.tear_points(4) {
            let mut g = Flash::new(1);
            g.set_power_cut(Some(PowerCut::Inside { op: 0, at, seed: 0 }));
            assert_eq!(g.write(0, &[0; 12]), Err(SimError::PowerLost));
            let programmed = g.bytes().iter().take_while(|&&b| b == 0).count();
            assert!(programmed >= usize::try_from(at).unwrap() * 4);
            results.push(g.bytes()[..12].to_vec());
        }
        results.dedup();
        assert_eq!(results.len(), 3);
    }

    /// A scripted update: erase two sectors, program a header and a body.
    fn script(f: &mut Flash) -> Result<(), SimError> {
        f.erase(0, 128)?;
        f.write(0, &[0xA5; 8])?;
        f.write(64, &[0x00; 16])?;
        f.write(4, &[0x05; 4])?; // multiwrite over the header's second word
        Ok(())
    }

    #[test]
    fn sweep_over_every_tear_point_hits_the_aimed_op() {
        let mut reference = Flash::new(2);
        reference.bytes_mut().fill(0x3C);
        let pristine = reference.clone();
        script(&mut reference).unwrap();
        let log = reference.op_log().to_vec();
        assert_eq!(log.len(), 4);
        let mut cuts = 0;
        for (index, op) in (0u64..).zip(&log) {
            let before = {
                let mut f = pristine.clone();
                f.set_power_cut(Some(PowerCut::Before { op: index }));
                assert_eq!(script(&mut f), Err(SimError::PowerLost));
                f.bytes().to_vec()
            };
            for at in 0..op.tear_points(4) {
                let mut f = pristine.clone();
                f.set_power_cut(Some(PowerCut::Inside {
                    op: index,
                    at,
                    seed: index ^ u64::from(at),
                }));
                assert_eq!(script(&mut f), Err(SimError::PowerLost));
                assert_eq!(f.ops(), index + 1, "the cut landed on op {index}");
                assert_eq!(f.op_log().last(), Some(op));
                // Only bytes inside the torn op may differ from the state before it.
                let start = usize::try_from(op.offset).unwrap();
                let end = start + usize::try_from(op.len).unwrap();
                for (i, (a, b)) in f.bytes().iter().zip(&before).enumerate() {
                    assert!(a == b || (start..end).contains(&i), "byte {i} outside op");
                }
                f.restore_power();
                assert_eq!(script(&mut f), Ok(()), "a rerun after reboot completes");
                assert_eq!(f.bytes(), reference.bytes());
                cuts += 1;
            }
        }
        assert_eq!(cuts, 32 + 2 + 4 + 1);
    }

    #[test]
    fn clone_is_independent() {
        let mut f = Flash::new(1);
        let g = f.clone();
        f.write(0, &[0; 4]).unwrap();
        assert_eq!(g.bytes()[0], 0xFF);
        assert_eq!(g.ops(), 0);
    }

    #[test]
    fn display_messages() {
        assert_eq!(
            std::format!("{}", SimError::ProgramOverZero { offset: 16 }),
            "program would turn a 0 bit into 1 at offset 0x10"
        );
        assert_eq!(std::format!("{}", SimError::PowerLost), "flash power lost");
    }

    /// Polls a future that never waits (all `SimFlash` futures are ready at once).
    fn block_on<F: core::future::Future>(fut: F) -> F::Output {
        let mut fut = core::pin::pin!(fut);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            core::task::Poll::Ready(v) => v,
            core::task::Poll::Pending => panic!("SimFlash futures are always ready"),
        }
    }

    #[test]
    fn async_traits_share_the_same_semantics() {
        let mut f = Flash::new(2);
        let a = &mut f;
        block_on(embedded_storage_async::nor_flash::NorFlash::write(
            a, 0, &[0x0F; 4],
        ))
        .unwrap();
        assert_eq!(
            block_on(embedded_storage_async::nor_flash::NorFlash::write(
                a, 0, &[0xF0; 4]
            )),
            Err(SimError::ProgramOverZero { offset: 0 })
        );
        let mut buf = [0u8; 4];
        block_on(embedded_storage_async::nor_flash::ReadNorFlash::read(
            a, 0, &mut buf,
        ))
        .unwrap();
        assert_eq!(buf, [0x0F; 4]);
        block_on(embedded_storage_async::nor_flash::NorFlash::erase(a, 0, 64)).unwrap();
        assert_eq!(f.bytes()[0], 0xFF);
        assert_eq!(f.ops(), 2);
    }
}
