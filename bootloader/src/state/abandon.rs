//! Giving up on a running trial at once, from the device side.
//!
//! Without this, a trial that fails its health check boots again at every reset until its
//! attempts run out. Abandoning spends its remaining attempts, so the next `decide` takes
//! the path it takes for a trial out of attempts: it records [`Outcome::RolledBack`] and
//! boots the confirmed slot.

use embedded_storage::nor_flash::NorFlash;

#[cfg(doc)]
use super::Outcome;
use super::{BootControl, BootError, Trial};

impl<A: NorFlash, B: NorFlash, S: NorFlash> BootControl<'_, A, B, S> {
    /// Device side: the running trial image is unhealthy; the next reset rolls back to the
    /// confirmed slot instead of booting the trial again. Returns the abandoned trial.
    ///
    /// Refused with [`BootError::NotOnTrial`] unless a trial runs (requested and booted):
    /// a trial that never started is not the running image, and nothing else may be given
    /// up. Only the trial's attempt count changes: the confirmed slot, the anti-rollback
    /// floor and the last outcome stay as they are, and the trial still counts as running
    /// until the reset (so its slot stays unwritable and no new trial can be requested).
    ///
    /// Power-fail safe: one record write. A cut leaves the old record (a started trial
    /// whose boots are counted, so it rolls back when they run out) or the new one.
    pub fn abandon_trial(&mut self) -> Result<Trial, BootError> {
        let mut state = self.status()?;
        let trial = state
            .trial
            .filter(|t| t.started)
            .ok_or(BootError::NotOnTrial)?;
        if trial.attempts_left > 0 {
            state.trial = Some(Trial {
                attempts_left: 0,
                ..trial
            });
            self.save(&state)?;
        }
        Ok(trial)
    }
}
