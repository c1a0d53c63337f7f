//! Repair of an unreadable boot-state partition, from the device side.
//!
//! When the state cannot be read, `decide` boots the best verified image and writes nothing
//! (it cannot tell a damaged record from an attack on one). The running system then rebuilds
//! a fresh record for that image, so that updates, trials and the anti-rollback floor work
//! again.

use embedded_storage::nor_flash::NorFlash;

use super::{BootControl, BootError, BootState, Outcome, StateError};
use crate::flash::FlashError;

impl<A: NorFlash, B: NorFlash, S: NorFlash> BootControl<'_, A, B, S> {
    /// Device side: replaces an unreadable boot state with a fresh record in which the image
    /// that runs now is confirmed, nothing is on trial, and the anti-rollback floor is that
    /// image's signed security counter.
    ///
    /// The image that runs is the one [`Self::decide_without_state`] picks: the verified image
    /// with the highest security counter (what the bootloader booted with this state), so the
    /// new floor is the highest counter of any verified image on the device. Refused with
    /// [`BootError::StateReadable`] while the state reads fine (rebuilding would drop its
    /// trial and could lower its floor), and with the flash error while the partition cannot
    /// be read at all (only a damaged record is replaced, never one behind a read fault).
    ///
    /// Power-fail safe: the partition is erased, then the record is stored. A cut before the
    /// erase completes leaves the state unreadable; a cut after it leaves an empty partition,
    /// which reads as [`StateError::Lost`] (not factory-fresh) while both slots verify, or
    /// boots the one slot that does. Either way the next boot is the same as now, never an
    /// image below the floor, and the rebuild can run again.
    pub fn rebuild_state(&mut self) -> Result<BootState, BootError> {
        match self.load() {
            Ok(_) => return Err(BootError::StateReadable),
            // A read that fails may work next time: never erase a record for that.
            Err(e @ StateError::Flash(_)) => return Err(BootError::State(e)),
            Err(_) => {}
        }
        let running = self.decide_without_state()?;
        let state = BootState {
            confirmed: running.slot,
            trial: None,
            min_security_counter: running.header.security_counter,
            last_outcome: Outcome::None,
        };
        let range = self.state_range();
        self.state
            .erase(range.start, range.end)
            .map_err(|e| StateError::Flash(FlashError::from_driver(e)))?;
        self.save(&state)?;
        Ok(state)
    }
}
