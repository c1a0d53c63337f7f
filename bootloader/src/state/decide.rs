//! What the bootloader does at reset: pick the slot to jump to.
//!
//! A fault never stops a boot that a verified image could make: a slot that cannot be read
//! is treated like one that does not verify, and a boot-state write that fails only changes
//! which verified image boots (a trial boots only once its attempt is on flash).

use embedded_storage::nor_flash::NorFlash;

use super::{BootControl, BootError, BootState, Outcome, StateError, Trial};
use crate::image::Header;
use crate::layout::Slot;

/// The slot to jump to, with its verified header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootDecision {
    /// The slot to boot.
    pub slot: Slot,
    /// Its verified header.
    pub header: Header,
    /// Whether it boots on trial (the agent must confirm it, or it is abandoned).
    pub trial: bool,
    /// Set when the boot state could not be read, or what this decision should have
    /// recorded could not be written. The decision still stands (its image verified), but
    /// the state partition needs repair: the agent rebuilds an unreadable one.
    pub state_error: Option<StateError>,
}

impl<A: NorFlash, B: NorFlash, S: NorFlash> BootControl<'_, A, B, S> {
    /// Bootloader side: decides which slot to boot, recording on flash what it decided
    /// before it returns (a trial attempt is counted before the jump).
    ///
    /// 0. No record yet (a factory-fresh device) and slot A verifies: record A confirmed
    ///    with its security counter as the floor, boot it.
    /// 1. A trial with attempts left whose image verifies: count the attempt, boot it.
    /// 2. A trial out of attempts: record the rollback, go on with the confirmed slot.
    /// 3. A trial that does not verify or cannot be read: record the rejection, go on with
    ///    the confirmed slot.
    ///
    ///    In 2 and 3, if the confirmed slot verifies, the trial slot's header is erased
    ///    first, so the given-up image can never boot again, even if the state is lost
    ///    later. A cut before the record is written repeats the step at the next boot.
    /// 4. The confirmed slot, if it verifies.
    /// 5. Otherwise the other slot, if it verifies, on trial without attempts (the agent may
    ///    confirm it; the fall-back is recorded).
    /// 6. Otherwise [`BootError::NoBootableImage`].
    ///
    /// A trial whose attempt cannot be recorded does not boot (it could boot without
    /// limit); the confirmed slot does instead. Any other record that cannot be written is
    /// skipped, and the decision carries the error in [`BootDecision::state_error`]. If the
    /// state cannot be read at all, the best verifying slot boots and nothing is written
    /// (see [`Self::decide_without_state`]).
    pub fn decide(&mut self) -> Result<BootDecision, BootError> {
        let mut state = match self.load() {
            Ok(Some(state)) => state,
            Ok(None) => return self.first_boot(),
            Err(e) => {
                let decision = self.decide_without_state()?;
                return Ok(BootDecision {
                    state_error: Some(e),
                    ..decision
                });
            }
        };
        let mut state_error = None;
        if let Some(trial) = state.trial {
            match self.try_trial(&mut state, trial) {
                Ok(Some(decision)) => return Ok(decision),
                Ok(None) => {}
                Err(e) => state_error = Some(e),
            }
        }
        self.boot_confirmed(state, state_error)
    }

    /// The first boot of a factory-fresh device: slot A boots and its counter becomes the
    /// floor (even if that cannot be recorded); if A does not verify, the usual fall-back.
    fn first_boot(&mut self) -> Result<BootDecision, BootError> {
        let Some((state, header)) = self.factory_state() else {
            return self.boot_confirmed(BootState::default(), None);
        };
        Ok(BootDecision {
            slot: state.confirmed,
            header,
            trial: false,
            state_error: self.record(&state).err(),
        })
    }

    /// Boots the trial slot if it may and can; otherwise ends the trial in `state` and
    /// records that. `Err` means a record failed: the trial does not boot.
    fn try_trial(
        &mut self,
        state: &mut BootState,
        trial: Trial,
    ) -> Result<Option<BootDecision>, StateError> {
        state.trial = None;
        if trial.attempts_left == 0 {
            self.retire(state, trial.slot);
            state.last_outcome = Outcome::RolledBack {
                from: trial.version,
            };
            self.record(state)?;
            return Ok(None);
        }
        match self.verify_slot(trial.slot, state.min_security_counter) {
            Ok(header) => {
                let mut counted = *state;
                counted.trial = Some(Trial {
                    attempts_left: trial.attempts_left - 1,
                    started: true,
                    ..trial
                });
                self.record(&counted)?;
                *state = counted;
                Ok(Some(BootDecision {
                    slot: trial.slot,
                    header,
                    trial: true,
                    state_error: None,
                }))
            }
            Err(e) => {
                self.retire(state, trial.slot);
                state.last_outcome = Outcome::TrialRejected {
                    version: trial.version,
                    reason: e.failure(),
                };
                self.record(state)?;
                Ok(None)
            }
        }
    }

    /// Erases the header of a trial slot given up on, but only while the confirmed slot
    /// verifies: otherwise the given-up image is the fall-back, maybe the only image that
    /// boots. An erase that fails is skipped: the agent refuses to confirm a rejected image
    /// too (its rejected-image list).
    fn retire(&mut self, state: &BootState, trial_slot: Slot) {
        if trial_slot != state.confirmed
            && self
                .verify_slot(state.confirmed, state.min_security_counter)
                .is_ok()
        {
            let _ = self.erase_header(trial_slot);
        }
    }

    /// Boots the confirmed slot, or falls back to the other one; `state_error` is an earlier
    /// record that failed, passed on in the decision.
    fn boot_confirmed(
        &mut self,
        mut state: BootState,
        state_error: Option<StateError>,
    ) -> Result<BootDecision, BootError> {
        let slot = state.confirmed;
        let confirmed = match self.verify_slot(slot, state.min_security_counter) {
            Ok(header) => {
                return Ok(BootDecision {
                    slot,
                    header,
                    trial: false,
                    state_error,
                });
            }
            Err(e) => e,
        };
        let other = slot.other();
        let header = self
            .verify_slot(other, state.min_security_counter)
            .map_err(|other| BootError::NoBootableImage { confirmed, other })?;
        state.trial = Some(Trial {
            slot: other,
            version: header.version,
            attempts_left: 0,
            started: true,
        });
        state.last_outcome = Outcome::FellBack {
            reason: confirmed.failure(),
        };
        // The only verified image boots even if the fall-back cannot be recorded.
        let recorded = self.record(&state).err();
        Ok(BootDecision {
            slot: other,
            header,
            trial: true,
            state_error: recorded.or(state_error),
        })
    }

    /// Saves `state`. A save that reports failure counts as done if reading the partition
    /// back finds exactly `state` (a write can fail after the record itself is on flash),
    /// so a decision always follows what the flash holds.
    fn record(&mut self, state: &BootState) -> Result<(), StateError> {
        match self.save(state) {
            Ok(()) => Ok(()),
            Err(e) => match self.load() {
                Ok(Some(stored)) if stored == *state => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Last resort when the state partition is unreadable: boot the verifying slot with the
    /// highest (security counter, version), writing nothing. The anti-rollback floor is
    /// unknown here, so the highest counter on the device is the best floor there is.
    pub fn decide_without_state(&mut self) -> Result<BootDecision, BootError> {
        let a = self.verify_slot(Slot::A, 0);
        let b = self.verify_slot(Slot::B, 0);
        let rank = |h: &Header| (h.security_counter, h.version);
        let (slot, header) = match (a, b) {
            (Ok(ha), Ok(hb)) if rank(&hb) > rank(&ha) => (Slot::B, hb),
            (Ok(ha), _) => (Slot::A, ha),
            (Err(_), Ok(hb)) => (Slot::B, hb),
            (Err(confirmed), Err(other)) => {
                return Err(BootError::NoBootableImage { confirmed, other });
            }
        };
        Ok(BootDecision {
            slot,
            header,
            trial: false,
            state_error: None,
        })
    }
}
