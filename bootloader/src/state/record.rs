//! The boot state record and its fixed byte encoding.
//!
//! All of the state is one record, stored as one `sequential-storage` item, so every state
//! change is a single item write: after a power cut the old or the new record is there,
//! never half of each.

use crate::image::Version;
use crate::layout::Slot;
use crate::verify::VerifyFailure;

/// A slot given a limited number of boots to prove itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trial {
    /// The slot on trial.
    pub slot: Slot,
    /// The version it holds (for the rollback report).
    pub version: Version,
    /// Boots left before the bootloader gives up on it.
    pub attempts_left: u8,
    /// Whether the bootloader has booted it at least once (only then can it be confirmed).
    pub started: bool,
}

/// What happened at the end of the last update attempt, for the agent to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Outcome {
    /// Nothing to report.
    #[default]
    None,
    /// The trial image passed its health check and is now the confirmed image.
    Confirmed {
        /// The confirmed version.
        version: Version,
    },
    /// The trial image used up its boots without a confirm; the confirmed slot runs again.
    RolledBack {
        /// The version that was abandoned.
        from: Version,
    },
    /// The trial slot failed verification at boot and was never started.
    TrialRejected {
        /// The version that was requested.
        version: Version,
        /// Why it was refused.
        reason: VerifyFailure,
    },
    /// The confirmed slot failed verification, so the other slot was booted instead.
    FellBack {
        /// Why the confirmed slot was refused.
        reason: VerifyFailure,
    },
}

/// Everything the bootloader and the agent agree on, as stored on flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootState {
    /// The slot known good: booted when no trial is running.
    pub confirmed: Slot,
    /// The slot on trial, if any.
    pub trial: Option<Trial>,
    /// Anti-rollback floor: no image with a lower security counter boots.
    pub min_security_counter: u32,
    /// Result of the last update attempt.
    pub last_outcome: Outcome,
}

impl Default for BootState {
    /// A factory-fresh device: slot A confirmed, nothing on trial, no floor yet.
    fn default() -> Self {
        Self {
            confirmed: Slot::A,
            trial: None,
            min_security_counter: 0,
            last_outcome: Outcome::None,
        }
    }
}

/// Why stored bytes are not a boot state record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

const RECORD_FORMAT: u8 = 1;
/// Length of an encoded record.
pub const RECORD_LEN: usize = 40;

const NONE: u8 = 0xff;

fn slot_code(s: Slot) -> u8 {
    match s {
        Slot::A => 0,
        Slot::B => 1,
    }
}

fn slot_from(code: u8) -> Result<Slot, Malformed> {
    match code {
        0 => Ok(Slot::A),
        1 => Ok(Slot::B),
        _ => Err(Malformed),
    }
}

/// Cursor over a fixed-size record buffer; out-of-range access is impossible by construction
/// (all offsets are constants below `RECORD_LEN`) and degrades to zeros rather than panicking.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> u8 {
        let v = self.buf.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn version(&mut self) -> Version {
        Version::new(self.u32(), self.u32(), self.u32())
    }
}

struct Writer<'a> {
    buf: &'a mut [u8; RECORD_LEN],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + b.len()) {
            dst.copy_from_slice(b);
        }
        self.at += b.len();
    }
    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn version(&mut self, v: Version) {
        self.bytes(&v.to_le_bytes());
    }
}

impl BootState {
    /// The stored bytes.
    ///
    /// ```text
    /// 0  format (1)          1  confirmed slot      2  trial slot or 0xff
    /// 3  trial attempts      4  trial started       5  trial version (12)
    /// 17 min security (4)    21 outcome kind        22 outcome version (12)
    /// 34 outcome reason      35 reserved (5)
    /// ```
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut buf = [0u8; RECORD_LEN];
        let mut w = Writer {
            buf: &mut buf,
            at: 0,
        };
        w.u8(RECORD_FORMAT);
        w.u8(slot_code(self.confirmed));
        match self.trial {
            Some(t) => {
                w.u8(slot_code(t.slot));
                w.u8(t.attempts_left);
                w.u8(u8::from(t.started));
                w.version(t.version);
            }
            None => {
                w.u8(NONE);
                w.bytes(&[0; 14]);
            }
        }
        w.u32(self.min_security_counter);
        let (kind, version, reason) = match self.last_outcome {
            Outcome::None => (0, Version::default(), 0),
            Outcome::Confirmed { version } => (1, version, 0),
            Outcome::RolledBack { from } => (2, from, 0),
            Outcome::TrialRejected { version, reason } => (3, version, reason as u8),
            Outcome::FellBack { reason } => (4, Version::default(), reason as u8),
        };
        w.u8(kind);
        w.version(version);
        w.u8(reason);
        buf
    }

    /// Parses stored bytes; anything unexpected is [`Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        if bytes.len() != RECORD_LEN {
            return Err(Malformed);
        }
        let mut c = Cursor { buf: bytes, at: 0 };
        if c.u8() != RECORD_FORMAT {
            return Err(Malformed);
        }
        let confirmed = slot_from(c.u8())?;
        let trial_slot = c.u8();
        let attempts_left = c.u8();
        let started = match c.u8() {
            0 => false,
            1 => true,
            _ => return Err(Malformed),
        };
        let trial_version = c.version();
        let trial = match trial_slot {
            NONE => None,
            code => Some(Trial {
                slot: slot_from(code)?,
                version: trial_version,
                attempts_left,
                started,
            }),
        };
        let min_security_counter = c.u32();
        let kind = c.u8();
        let version = c.version();
        let reason = VerifyFailure::from_code(c.u8());
        if bytes
            .get(c.at..)
            .is_none_or(|rest| rest.iter().any(|&b| b != 0))
        {
            return Err(Malformed);
        }
        let last_outcome = match (kind, reason) {
            (0, _) => Outcome::None,
            (1, _) => Outcome::Confirmed { version },
            (2, _) => Outcome::RolledBack { from: version },
            (3, Some(reason)) => Outcome::TrialRejected { version, reason },
            (4, Some(reason)) => Outcome::FellBack { reason },
            _ => return Err(Malformed),
        };
        Ok(Self {
            confirmed,
            trial,
            min_security_counter,
            last_outcome,
        })
    }
}

impl<'a> sequential_storage::map::Value<'a> for BootState {
    fn serialize_into(
        &self,
        buffer: &mut [u8],
    ) -> Result<usize, sequential_storage::map::SerializationError> {
        buffer
            .get_mut(..RECORD_LEN)
            .ok_or(sequential_storage::map::SerializationError::BufferTooSmall)?
            .copy_from_slice(&self.encode());
        Ok(RECORD_LEN)
    }

    fn deserialize_from(
        buffer: &'a [u8],
    ) -> Result<(Self, usize), sequential_storage::map::SerializationError> {
        let bytes = buffer
            .get(..RECORD_LEN)
            .ok_or(sequential_storage::map::SerializationError::BufferTooSmall)?;
        let state = Self::decode(bytes)
            .map_err(|_| sequential_storage::map::SerializationError::InvalidFormat)?;
        Ok((state, RECORD_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states() -> [BootState; 4] {
        let v = Version::new(1, 4, 0);
        [
            BootState::default(),
            BootState {
                confirmed: Slot::B,
                trial: Some(Trial {
                    slot: Slot::A,
                    version: v,
                    attempts_left: 2,
                    started: true,
                }),
                min_security_counter: 0xdead_beef,
                last_outcome: Outcome::RolledBack { from: v },
            },
            BootState {
                last_outcome: Outcome::TrialRejected {
                    version: v,
                    reason: VerifyFailure::Downgrade,
                },
                ..BootState::default()
            },
            BootState {
                last_outcome: Outcome::FellBack {
                    reason: VerifyFailure::Signature,
                },
                ..BootState::default()
            },
        ]
    }

    #[test]
    fn every_state_round_trips() {
        for s in states() {
            assert_eq!(BootState::decode(&s.encode()), Ok(s));
        }
    }

    #[test]
    fn refuses_unknown_format_slot_and_outcome_codes() {
        let good = states()[1].encode();
        for (at, bad) in [(0, 2), (1, 2), (2, 7), (4, 2), (21, 9)] {
            let mut b = good;
            b[at] = bad;
            assert_eq!(BootState::decode(&b), Err(Malformed), "byte {at} = {bad}");
        }
        let mut b = states()[2].encode();
        b[34] = 0;
        assert_eq!(
            BootState::decode(&b),
            Err(Malformed),
            "rejection without reason"
        );
        assert_eq!(BootState::decode(&good[..39]), Err(Malformed));
        let mut b = good;
        b[39] = 1;
        assert_eq!(BootState::decode(&b), Err(Malformed), "reserved byte set");
    }
}
