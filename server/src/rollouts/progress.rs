//! How far a rollout has got: its state and stage, the devices admitted so far, and their
//! counts, which the advance and pause rules and the API read.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::model::Rollout;
use super::state::{DeviceState, RolloutState};

/// A rollout's mutable part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Its state.
    pub state: RolloutState,
    /// The current stage, an index into the rollout's stages. Only ever rises.
    pub stage: usize,
    /// When the current stage started (the soak time counts from here); `None` in draft.
    pub stage_started: Option<Timestamp>,
    /// Failures an operator saw when they resumed the rollout: only failures beyond these
    /// pause it again, so a resume is not undone by the failures that caused the pause.
    pub failures_acknowledged: u64,
}

impl Progress {
    /// A new rollout: draft, stage 1 not started.
    pub fn draft() -> Self {
        Self {
            state: RolloutState::Draft,
            stage: 0,
            stage_started: None,
            failures_acknowledged: 0,
        }
    }
}

/// A device admitted to a rollout. The record is kept for good: a member stays in its
/// stage whatever its tags or the cutoffs do later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Device id.
    pub device_id: String,
    /// The stage it was admitted at (0-based).
    pub stage: usize,
    /// Its latest state, from its reports.
    pub state: DeviceState,
    /// When it was admitted.
    pub admitted_at: Timestamp,
}

impl Member {
    /// Neither healthy nor failed `timeout` after admission: it no longer holds a stage
    /// back (and does not count as a failure: it may just be offline).
    pub fn timed_out(&self, timeout: SignedDuration, now: Timestamp) -> bool {
        !self.state.is_done() && now.duration_since(self.admitted_at) >= timeout
    }
}

/// Counts of admitted devices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Devices admitted.
    pub admitted: u64,
    /// Devices in each state.
    pub by_state: BTreeMap<DeviceState, u64>,
    /// Devices still in progress past the device timeout (also counted in `by_state`).
    pub timed_out: u64,
}

impl Tally {
    /// Counts `members`, judging timeouts at `now`.
    pub fn of<'a>(
        rollout: &Rollout,
        members: impl IntoIterator<Item = &'a Member>,
        now: Timestamp,
    ) -> Self {
        let timeout = rollout.spec().device_timeout;
        let mut tally = Self::default();
        for member in members {
            tally.admitted += 1;
            *tally.by_state.entry(member.state).or_default() += 1;
            if member.timed_out(timeout, now) {
                tally.timed_out += 1;
            }
        }
        tally
    }

    /// Counts per stage: entry k holds the devices admitted at stage k.
    pub fn per_stage(rollout: &Rollout, members: &[Member], now: Timestamp) -> Vec<Self> {
        (0..rollout.stages().len())
            .map(|k| Self::of(rollout, members.iter().filter(|m| m.stage == k), now))
            .collect()
    }

    /// Devices in `state`.
    pub fn count(&self, state: DeviceState) -> u64 {
        self.by_state.get(&state).copied().unwrap_or(0)
    }

    /// Failed plus rolled back: what the failure threshold counts.
    pub fn failures(&self) -> u64 {
        self.count(DeviceState::Failed) + self.count(DeviceState::RolledBack)
    }

    /// Admitted devices neither done nor timed out: the ones a stage waits for.
    pub fn pending(&self) -> u64 {
        let done: u64 = (self.by_state.iter())
            .filter(|(state, _)| state.is_done())
            .map(|(_, n)| n)
            .sum();
        self.admitted - done - self.timed_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollouts::model::tests::{policy, spec};

    fn member(state: DeviceState, admitted_at: Timestamp) -> Member {
        Member {
            device_id: "d".into(),
            stage: 0,
            state,
            admitted_at,
        }
    }

    #[test]
    fn counts_split_done_pending_and_timed_out() {
        let rollout = Rollout::new(spec(), policy("100%")).unwrap();
        let t0: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let now = t0 + SignedDuration::from_hours(25);
        let late = now - SignedDuration::from_hours(1);
        let members = [
            member(DeviceState::Healthy, t0),
            member(DeviceState::Failed, t0),
            member(DeviceState::RolledBack, t0),
            member(DeviceState::Installed, t0), // timed out: a day without an answer
            member(DeviceState::Installed, late), // still within its day
            member(DeviceState::Healthy, late),
        ];
        let tally = Tally::of(&rollout, &members, now);
        assert_eq!(tally.admitted, 6);
        assert_eq!(tally.failures(), 2);
        assert_eq!(tally.timed_out, 1);
        assert_eq!(tally.pending(), 1);
        assert_eq!(tally.count(DeviceState::Healthy), 2);
        assert_eq!(tally.count(DeviceState::Booted), 0);
    }

    #[test]
    fn counts_per_stage_follow_the_stage_of_admission() {
        let rollout = Rollout::new(spec(), policy("100%")).unwrap();
        let t0: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let mut members = vec![member(DeviceState::Healthy, t0); 2];
        members.push(Member {
            stage: 2,
            ..member(DeviceState::Failed, t0)
        });
        let stages = Tally::per_stage(&rollout, &members, t0);
        let admitted: Vec<u64> = stages.iter().map(|t| t.admitted).collect();
        assert_eq!(admitted, [2, 0, 1]);
        assert_eq!(stages[2].failures(), 1);
    }
}
