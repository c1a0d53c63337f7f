//! The boot state API, shared by both sides so they cannot drift: the device side (the
//! agent) calls [`BootControl::request_trial`], [`BootControl::confirm`] (or
//! [`BootControl::abandon_trial`]) and [`BootControl::status`], and
//! [`BootControl::rebuild_state`] when the state is unreadable; the bootloader calls
//! [`BootControl::decide`] at every reset.
//!
//! Rules kept here:
//! - a slot is booted only after it verifies (hash, signature, hardware id, counter);
//! - a trial's attempt is counted on flash *before* the jump, so a trial that hangs or
//!   resets is abandoned after `trial_attempts` boots;
//! - confirming raises the anti-rollback floor to the confirmed image's security counter,
//!   and the first boot of a factory-fresh device stores its factory image's counter as the
//!   floor (so no older signed image can be put on trial before the first confirm);
//! - an empty partition reads as factory-fresh only while at most one slot holds a verified
//!   image (the first record is stored before a second image is installed), otherwise it is
//!   [`StateError::Lost`] and handled like an unreadable one;
//! - a trial that is rolled back or rejected has its image header erased once the confirmed
//!   slot is known to verify, so a later loss of the state cannot bring it back.

mod abandon;
mod decide;
mod rebuild;
mod record;
mod store;

use core::fmt;

use embedded_storage::nor_flash::NorFlash;

pub use decide::BootDecision;
pub use record::{BootState, Malformed, Outcome, RECORD_LEN, Trial};
pub use store::StateError;

use crate::flash::FlashError;
use crate::image::Header;
use crate::layout::{Layout, LayoutError, PartitionName, Slot};
use crate::trust::Anchors;
use crate::verify::{VerifyError, verify};

/// Policy knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootConfig {
    /// How many boots a trial image gets to confirm itself (at least 1).
    pub trial_attempts: u8,
}

impl Default for BootConfig {
    fn default() -> Self {
        Self { trial_attempts: 3 }
    }
}

/// Why a boot-state operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The state partition could not be read or written.
    State(StateError),
    /// The slot's image does not verify.
    Verify(VerifyError),
    /// `confirm` or `abandon_trial` while no trial image is running.
    NotOnTrial,
    /// `request_trial` while a trial image is running unconfirmed.
    TrialInProgress,
    /// `request_trial` of the confirmed slot (it would overwrite the fallback).
    SlotIsConfirmed,
    /// `rebuild_state` while the boot state reads fine (there is nothing to repair).
    StateReadable,
    /// Neither slot verifies: the device needs recovery. Never a jump into garbage.
    NoBootableImage {
        /// Why the confirmed slot was refused.
        confirmed: VerifyError,
        /// Why the other slot was refused.
        other: VerifyError,
    },
}

impl From<StateError> for BootError {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

impl From<VerifyError> for BootError {
    fn from(e: VerifyError) -> Self {
        Self::Verify(e)
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::State(e) => write!(f, "{e}"),
            Self::Verify(e) => write!(f, "{e}"),
            Self::NotOnTrial => write!(
                f,
                "no trial image is running, nothing to confirm or abandon"
            ),
            Self::TrialInProgress => {
                write!(
                    f,
                    "a trial image is running unconfirmed; confirm it or reboot first"
                )
            }
            Self::SlotIsConfirmed => write!(f, "the confirmed slot cannot be put on trial"),
            Self::StateReadable => {
                write!(
                    f,
                    "the boot state is readable; only an unreadable one is rebuilt"
                )
            }
            Self::NoBootableImage { confirmed, other } => write!(
                f,
                "no bootable image: confirmed slot: {confirmed}; other slot: {other}"
            ),
        }
    }
}

impl BootState {
    /// The slot that is running (or will run) under this state: the trial slot once it has
    /// been booted, otherwise the confirmed slot.
    pub fn running(&self) -> Slot {
        match self.trial {
            Some(t) if t.started => t.slot,
            _ => self.confirmed,
        }
    }
}

/// The A/B boot state on flash, with the slots it refers to.
pub struct BootControl<'k, A, B, S> {
    layout: Layout,
    slot_a: A,
    slot_b: B,
    state: S,
    anchors: Anchors<'k>,
    config: BootConfig,
}

impl<'k, A: NorFlash, B: NorFlash, S: NorFlash> BootControl<'k, A, B, S> {
    /// Binds a layout to its flash devices, checking every partition against its device.
    pub fn new(
        layout: Layout,
        slot_a: A,
        slot_b: B,
        state: S,
        anchors: Anchors<'k>,
        config: BootConfig,
    ) -> Result<Self, LayoutError> {
        layout
            .slot(Slot::A)
            .check_on(PartitionName::SlotA, &slot_a)?;
        layout
            .slot(Slot::B)
            .check_on(PartitionName::SlotB, &slot_b)?;
        let p = layout.state();
        p.check_on(PartitionName::State, &state)?;
        if !store::usable::<S>(p.offset..p.offset + p.size) {
            return Err(LayoutError::StateUnusable);
        }
        Ok(Self {
            layout,
            slot_a,
            slot_b,
            state,
            anchors,
            config: BootConfig {
                trial_attempts: config.trial_attempts.max(1),
            },
        })
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The stored state (a factory-fresh default if none was ever written).
    pub fn status(&mut self) -> Result<BootState, StateError> {
        Ok(self.load()?.unwrap_or_default())
    }

    /// Device side: stores the first record of a factory-fresh device (slot A confirmed, its
    /// security counter the anti-rollback floor) and returns it. The bootloader does the same
    /// at its first boot; the agent calls this before it installs anything, so the record
    /// exists before a second image does (see [`StateError::Lost`]). `None`, writing
    /// nothing, if a record exists or slot A does not verify (the bootloader then falls back
    /// to B, and records that).
    pub fn seal_factory_state(&mut self) -> Result<Option<BootState>, BootError> {
        if self.load()?.is_some() {
            return Ok(None);
        }
        let Some((state, _)) = self.factory_state() else {
            return Ok(None);
        };
        self.save(&state)?;
        Ok(Some(state))
    }

    /// The first record of a factory-fresh device, with the verified header of its slot A.
    fn factory_state(&mut self) -> Option<(BootState, Header)> {
        let state = BootState::default();
        let header = self.verify_slot(state.confirmed, 0).ok()?;
        let sealed = BootState {
            min_security_counter: header.security_counter,
            ..state
        };
        Some((sealed, header))
    }

    /// Verifies the image in `slot` against the trust anchors and a security floor.
    pub fn verify_slot(
        &mut self,
        slot: Slot,
        min_security_counter: u32,
    ) -> Result<Header, VerifyError> {
        let p = self.layout.slot(slot);
        match slot {
            Slot::A => verify(
                &mut self.slot_a,
                p.offset,
                p.size,
                &self.anchors,
                min_security_counter,
            ),
            Slot::B => verify(
                &mut self.slot_b,
                p.offset,
                p.size,
                &self.anchors,
                min_security_counter,
            ),
        }
    }

    /// Device side: boot `slot` on trial at the next reset. The image must verify now; the
    /// bootloader checks it again before every boot.
    pub fn request_trial(&mut self, slot: Slot) -> Result<Header, BootError> {
        let mut state = self.status()?;
        if slot == state.confirmed {
            return Err(BootError::SlotIsConfirmed);
        }
        if state.trial.is_some_and(|t| t.started) {
            return Err(BootError::TrialInProgress);
        }
        let header = self.verify_slot(slot, state.min_security_counter)?;
        state.trial = Some(Trial {
            slot,
            version: header.version,
            attempts_left: self.config.trial_attempts,
            started: false,
        });
        self.save(&state)?;
        Ok(header)
    }

    /// Device side: the running trial image is healthy; make it the confirmed image and raise
    /// the anti-rollback floor to its security counter.
    pub fn confirm(&mut self) -> Result<Header, BootError> {
        let mut state = self.status()?;
        let trial = state
            .trial
            .filter(|t| t.started)
            .ok_or(BootError::NotOnTrial)?;
        let header = self.verify_slot(trial.slot, state.min_security_counter)?;
        state.confirmed = trial.slot;
        state.trial = None;
        state.min_security_counter = state.min_security_counter.max(header.security_counter);
        state.last_outcome = Outcome::Confirmed {
            version: header.version,
        };
        self.save(&state)?;
        Ok(header)
    }

    /// Gives the flash handles back.
    pub fn into_parts(self) -> (A, B, S) {
        (self.slot_a, self.slot_b, self.state)
    }

    fn state_range(&self) -> core::ops::Range<u32> {
        let p = self.layout.state();
        p.offset..p.offset + p.size
    }

    /// The stored record; an empty partition is `None` (factory-fresh) only while at most
    /// one slot verifies, and [`StateError::Lost`] otherwise.
    fn load(&mut self) -> Result<Option<BootState>, StateError> {
        let range = self.state_range();
        let stored = store::load(&mut self.state, range)?;
        // B first: on a factory-fresh device it is blank and refused at its header.
        if stored.is_none()
            && self.verify_slot(Slot::B, 0).is_ok()
            && self.verify_slot(Slot::A, 0).is_ok()
        {
            return Err(StateError::Lost);
        }
        Ok(stored)
    }

    /// Makes `slot` unbootable by erasing its first sector, which holds the image header.
    fn erase_header(&mut self, slot: Slot) -> Result<(), FlashError> {
        let p = self.layout.slot(slot);
        match slot {
            Slot::A => erase_first_sector(&mut self.slot_a, p.offset),
            Slot::B => erase_first_sector(&mut self.slot_b, p.offset),
        }
    }

    fn save(&mut self, state: &BootState) -> Result<(), StateError> {
        let range = self.state_range();
        store::save(&mut self.state, range, state)
    }
}

fn erase_first_sector<F: NorFlash>(flash: &mut F, offset: u32) -> Result<(), FlashError> {
    let sector = u32::try_from(F::ERASE_SIZE).unwrap_or(u32::MAX);
    flash
        .erase(offset, offset.saturating_add(sector))
        .map_err(FlashError::from_driver)
}

impl core::error::Error for BootError {}
