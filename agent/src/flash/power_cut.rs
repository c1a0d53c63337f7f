//! Power loss for the simulated device: a [`PowerCut`] given to a [`super::FileFlash`]
//! counts its erases and programs and, at the chosen one, tears it the way a real chip
//! does when its supply drops mid-operation; from then on every operation fails, as it
//! would on a device without power. Tests sweep the cut over every operation of an update
//! and then "power the device on again" with a flash that has no cut.

use std::sync::{Arc, Mutex};

/// How the chosen operation is torn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// Power goes before the operation starts: nothing of it reaches the flash.
    Before,
    /// Power goes halfway: the first half of the words (or sectors) are done, the rest
    /// are untouched.
    Prefix,
    /// Power goes inside a word or sector: the first half is done, and the word (or 16
    /// bytes of the sector) at the cut holds a mix of old and new bits.
    Inside,
}

/// What the flash is to do with the operation it is about to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Power is on: do it.
    Run,
    /// This is the operation the power dies in: tear it.
    Tear(Tear),
    /// Power is already gone.
    Dead,
}

#[derive(Debug)]
struct Counter {
    done: u64,
    cut_at: Option<(u64, Tear)>,
    dead: bool,
}

/// A shared operation counter with an optional cut, for every flash opened with it.
#[derive(Clone, Debug)]
pub struct PowerCut(Arc<Mutex<Counter>>);

impl PowerCut {
    /// Only counts operations (to learn how many an update takes).
    pub fn counting() -> Self {
        Self::new(None)
    }

    /// Power dies in operation number `op` (0-based) in the way `tear` says.
    pub fn at(op: u64, tear: Tear) -> Self {
        Self::new(Some((op, tear)))
    }

    fn new(cut_at: Option<(u64, Tear)>) -> Self {
        Self(Arc::new(Mutex::new(Counter {
            done: 0,
            cut_at,
            dead: false,
        })))
    }

    /// Erases and programs started so far.
    pub fn operations(&self) -> u64 {
        self.lock().done
    }

    /// Whether the power has gone.
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    pub(super) fn next(&self) -> Fate {
        let mut c = self.lock();
        if c.dead {
            return Fate::Dead;
        }
        let this = c.done;
        c.done += 1;
        match c.cut_at {
            Some((at, tear)) if at == this => {
                c.dead = true;
                Fate::Tear(tear)
            }
            _ => Fate::Run,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counter> {
        // A panic while holding this lock leaves a plain counter behind; keep using it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Mixes `old` and `new` as a torn NOR operation leaves them: some bits already changed,
/// some not (deterministic, so a failing cut point can be replayed).
pub(super) fn mixed(old: &[u8], new: &[u8]) -> Vec<u8> {
    old.iter()
        .zip(new)
        .enumerate()
        .map(|(i, (o, n))| {
            if i % 2 == 0 {
                *n
            } else {
                *o & 0xF0 | *n & 0x0F
            }
        })
        .collect()
}
