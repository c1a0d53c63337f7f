//! What the bootloader does at reset: pick the slot to jump to.

use embedded_storage::nor_flash::NorFlash;

use super::{BootControl, BootError, BootState, Outcome, Trial};
use crate::image::Header;
use crate::layout::Slot;
use crate::verify::VerifyError;

/// The slot to jump to, with its verified header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootDecision {
    /// The slot to boot.
    pub slot: Slot,
    /// Its verified header.
    pub header: Header,
    /// Whether it boots on trial (the agent must confirm it, or it is abandoned).
    pub trial: bool,
}

impl<A: NorFlash, B: NorFlash, S: NorFlash> BootControl<'_, A, B, S> {
    /// Bootloader side: decides which slot to boot, recording on flash what it decided
    /// before it returns (a trial attempt is counted before the jump).
    ///
    /// 1. A trial with attempts left whose image verifies: count the attempt, boot it.
    /// 2. A trial out of attempts: record the rollback, go on with the confirmed slot.
    /// 3. A trial that does not verify: record the rejection, go on with the confirmed slot.
    /// 4. The confirmed slot, if it verifies.
    /// 5. Otherwise the other slot, if it verifies, on trial without attempts (the agent may
    ///    confirm it; the fall-back is recorded).
    /// 6. Otherwise [`BootError::NoBootableImage`].
    ///
    /// If the state cannot be read at all, the best verifying slot boots and nothing is
    /// written (see [`Self::decide_without_state`]).
    pub fn decide(&mut self) -> Result<BootDecision, BootError> {
        let mut state = match self.load() {
            Ok(state) => state.unwrap_or_default(),
            Err(_) => return self.decide_without_state(),
        };
        if let Some(trial) = state.trial
            && let Some(decision) = self.try_trial(&mut state, trial)?
        {
            return Ok(decision);
        }
        self.boot_confirmed(state)
    }

    /// Boots the trial slot if it may and can; otherwise ends the trial in `state` (saved).
    fn try_trial(
        &mut self,
        state: &mut BootState,
        trial: Trial,
    ) -> Result<Option<BootDecision>, BootError> {
        state.trial = None;
        if trial.attempts_left == 0 {
            state.last_outcome = Outcome::RolledBack {
                from: trial.version,
            };
            self.save(state)?;
            return Ok(None);
        }
        match self.verify_slot(trial.slot, state.min_security_counter) {
            Ok(header) => {
                state.trial = Some(Trial {
                    attempts_left: trial.attempts_left - 1,
                    started: true,
                    ..trial
                });
                self.save(state)?;
                Ok(Some(BootDecision {
                    slot: trial.slot,
                    header,
                    trial: true,
                }))
            }
            Err(VerifyError::Flash(e)) => Err(BootError::Verify(VerifyError::Flash(e))),
            Err(e) => {
                state.last_outcome = Outcome::TrialRejected {
                    version: trial.version,
                    reason: e.failure(),
                };
                self.save(state)?;
                Ok(None)
            }
        }
    }

    fn boot_confirmed(&mut self, mut state: BootState) -> Result<BootDecision, BootError> {
        let slot = state.confirmed;
        let confirmed = match self.verify_slot(slot, state.min_security_counter) {
            Ok(header) => {
                return Ok(BootDecision {
                    slot,
                    header,
                    trial: false,
                });
            }
            Err(VerifyError::Flash(e)) => return Err(BootError::Verify(VerifyError::Flash(e))),
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
        self.save(&state)?;
        Ok(BootDecision {
            slot: other,
            header,
            trial: true,
        })
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
        })
    }
}
