//! The streaming applier: one pass over the patch, random reads of the old image, strictly
//! sequential writes of the new one, with two fixed buffers. RAM does not depend on any
//! image or patch size.
//!
//! It accepts exactly the patches `bsdiff::patch` accepts and produces the same bytes, with
//! two additions: the result must have the declared length (nothing past it is ever
//! written), and every refusal is a typed [`PatchError`].

use std::io::{self, Read};

use super::error::PatchError;
use super::format::{CONTROL_LEN, Control};
use super::sink::Sink;
use super::source::OldImage;

/// Size of each of the applier's two stack buffers (patch data, old-image data).
pub const APPLY_BUFFER_LEN: usize = 4096;

/// Consecutive entries that write nothing (a seek alone) accepted before the patch is
/// refused: a real patch never needs many, and without a bound a tiny compressed patch of
/// empty entries could keep a device busy for hours. This bounds the work per output byte.
pub const MAX_IDLE_ENTRIES: u32 = 64;

/// What an apply did, for logs and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Bytes of the new image written (equals the declared length).
    pub written: u64,
    /// Bytes of (decompressed) patch read.
    pub patch_bytes: u64,
    /// Control entries applied.
    pub entries: u64,
}

/// Applies the bsdiff patch read from `patch` to `old`, writing the new image to `new`.
/// `expected_len` is the declared length of the result (from the TUF target): the patch must
/// produce exactly that many bytes.
///
/// On error, `new` has received a prefix of the result (never more than `expected_len`
/// bytes) and must be discarded.
pub fn apply<R, O, S>(
    patch: R,
    old: O,
    new: S,
    expected_len: u64,
) -> Result<ApplyStats, PatchError<O::Error, S::Error>>
where
    R: Read,
    O: OldImage,
    S: Sink,
{
    Applier {
        patch,
        old,
        new,
        expected: expected_len,
        stats: ApplyStats::default(),
        old_pos: 0,
        idle: 0,
    }
    .run()
}

/// State of one apply.
struct Applier<R, O, S> {
    patch: R,
    old: O,
    new: S,
    expected: u64,
    stats: ApplyStats,
    /// The old-image cursor.
    old_pos: u64,
    /// Entries in a row that wrote nothing.
    idle: u32,
}

/// Result of filling a buffer from the patch.
enum Fill {
    /// The buffer is full.
    Full,
    /// End of input after this many bytes.
    Eof(usize),
}

type Res<T, O, S> = Result<T, PatchError<<O as OldImage>::Error, <S as Sink>::Error>>;

impl<R: Read, O: OldImage, S: Sink> Applier<R, O, S> {
    fn run(mut self) -> Res<ApplyStats, O, S> {
        let mut data = [0u8; APPLY_BUFFER_LEN];
        let mut old_data = [0u8; APPLY_BUFFER_LEN];
        loop {
            let mut raw = [0u8; CONTROL_LEN];
            match self.fill(&mut raw)? {
                Fill::Full => {}
                Fill::Eof(0) => break,
                Fill::Eof(_) => return Err(self.truncated()),
            }
            let entry = self.stats.entries;
            let control = Control::decode(&raw)
                .map_err(|(field, raw)| PatchError::NegativeLength { entry, field, raw })?;
            self.check_entry(&control)?;
            self.check_progress(&control)?;
            self.mix(control.mix_len, &mut data, &mut old_data)?;
            self.copy(control.copy_len, &mut data)?;
            self.seek(control.seek)?;
            self.stats.entries = entry.saturating_add(1);
        }
        if self.stats.written != self.expected {
            return Err(PatchError::OutputTooShort {
                written: self.stats.written,
                expected: self.expected,
            });
        }
        Ok(self.stats)
    }

    /// Refuses the entry after [`MAX_IDLE_ENTRIES`] in a row that write no byte.
    fn check_progress(&mut self, c: &Control) -> Res<(), O, S> {
        if c.mix_len == 0 && c.copy_len == 0 {
            self.idle += 1;
            if self.idle > MAX_IDLE_ENTRIES {
                return Err(PatchError::NoProgress {
                    entry: self.stats.entries,
                    idle: self.idle,
                });
            }
        } else {
            self.idle = 0;
        }
        Ok(())
    }

    /// Refuses an entry that would write past the declared length or read old bytes the
    /// old image lacks, before any of its bytes are written.
    fn check_entry(&self, c: &Control) -> Res<(), O, S> {
        let entry = self.stats.entries;
        let needed = self
            .stats
            .written
            .saturating_add(c.mix_len)
            .saturating_add(c.copy_len);
        if needed > self.expected {
            return Err(PatchError::OutputTooLong {
                entry,
                needed,
                expected: self.expected,
            });
        }
        // Like `bsdiff::patch`, the cursor must be inside the old image even when no old
        // byte is read.
        let old_len = self.old.len();
        let end = self.old_pos.saturating_add(c.mix_len);
        if end > old_len {
            return Err(PatchError::OldOutOfBounds {
                entry,
                start: self.old_pos,
                end,
                old_len,
            });
        }
        Ok(())
    }

    /// Add data: each patch byte wrapping-added to the next old byte.
    fn mix(&mut self, len: u64, data: &mut [u8], old_data: &mut [u8]) -> Res<(), O, S> {
        let mut left = len;
        while left > 0 {
            let n = chunk(left, data.len());
            let (Some(d), Some(o)) = (data.get_mut(..n), old_data.get_mut(..n)) else {
                break;
            };
            self.read_data(d)?;
            self.old.read_at(self.old_pos, o).map_err(PatchError::Old)?;
            for (d, o) in d.iter_mut().zip(o.iter()) {
                *d = d.wrapping_add(*o);
            }
            self.emit(d)?;
            self.old_pos = self.old_pos.saturating_add(n as u64);
            left = left.saturating_sub(n as u64);
        }
        Ok(())
    }

    /// Extra data: patch bytes as they are.
    fn copy(&mut self, len: u64, data: &mut [u8]) -> Res<(), O, S> {
        let mut left = len;
        while left > 0 {
            let n = chunk(left, data.len());
            let Some(d) = data.get_mut(..n) else { break };
            self.read_data(d)?;
            self.emit(d)?;
            left = left.saturating_sub(n as u64);
        }
        Ok(())
    }

    /// Moves the old cursor; it may land past the end (the next entry's check catches a
    /// read there) but never below zero.
    fn seek(&mut self, seek: i64) -> Res<(), O, S> {
        let moved = i64::try_from(self.old_pos)
            .ok()
            .and_then(|pos| pos.checked_add(seek))
            .and_then(|pos| u64::try_from(pos).ok());
        match moved {
            Some(pos) => {
                self.old_pos = pos;
                Ok(())
            }
            None => Err(PatchError::BadSeek {
                entry: self.stats.entries,
                from: self.old_pos,
                seek,
            }),
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> Res<(), O, S> {
        self.new.write_all(bytes).map_err(PatchError::Sink)?;
        self.stats.written = self.stats.written.saturating_add(bytes.len() as u64);
        Ok(())
    }

    /// Fills `buf` from the patch; end of input inside it is a truncation.
    fn read_data(&mut self, buf: &mut [u8]) -> Res<(), O, S> {
        match self.fill(buf)? {
            Fill::Full => Ok(()),
            Fill::Eof(_) => Err(self.truncated()),
        }
    }

    /// Reads until `buf` is full or the patch ends.
    fn fill(&mut self, buf: &mut [u8]) -> Res<Fill, O, S> {
        let mut got = 0;
        while let Some(rest) = buf.get_mut(got..) {
            if rest.is_empty() {
                return Ok(Fill::Full);
            }
            match self.patch.read(rest) {
                Ok(0) => return Ok(Fill::Eof(got)),
                Ok(n) => {
                    let n = n.min(rest.len());
                    got += n;
                    self.stats.patch_bytes = self.stats.patch_bytes.saturating_add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PatchError::from_read(e)),
            }
        }
        Ok(Fill::Full)
    }

    fn truncated(&self) -> PatchError<O::Error, S::Error> {
        PatchError::Truncated {
            at: self.stats.patch_bytes,
            entry: self.stats.entries,
        }
    }
}

/// The next piece of a `left`-byte run that fits a `cap`-byte buffer.
fn chunk(left: u64, cap: usize) -> usize {
    usize::try_from(left).map_or(cap, |l| l.min(cap))
}
