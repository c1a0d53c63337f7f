//! The rollout's own moves (advance a stage, pause itself, complete) and an operator's
//! (start, pause, resume, advance, abort), each returning the new [`Progress`] and a
//! timeline entry saying who and why. Pure: time is the `now` given.

use jiff::{SignedDuration, Timestamp};

use super::bucket::BasisPoints;
use super::model::Rollout;
use super::progress::{Member, Progress, Tally};
use super::state::{IllegalTransition, RolloutState};
use super::timeline::{Actor, Change, TimelineEntry};

/// What [`evaluate`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The progress after the engine's moves (unchanged if it made none).
    pub progress: Progress,
    /// One entry per change made.
    pub timeline: Vec<TimelineEntry>,
    /// Why the stage does not advance yet, if it is running and did not.
    pub waiting: Option<Wait>,
}

/// Why a running stage does not advance yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Admitted devices still updating (neither healthy, failed nor timed out).
    Devices {
        /// How many.
        pending: u64,
    },
    /// The failure rate is over the threshold, but too few devices are in for it to
    /// pause the rollout: it neither pauses nor widens.
    FailureRate {
        /// Failed plus rolled back.
        failures: u64,
        /// Admitted.
        admitted: u64,
    },
    /// The stage's soak time has not passed.
    Soak {
        /// When it will have.
        until: Timestamp,
    },
    /// The signed policy has expired: nobody is assigned the release (devices would refuse
    /// it), so the stage neither fills nor advances until a new policy is uploaded.
    PolicyExpired {
        /// Its expiry, Unix seconds.
        expires: u64,
    },
    /// The next stage goes past the signed ceiling: it needs a policy with a higher one.
    Ceiling {
        /// The next stage's cutoff.
        next: BasisPoints,
        /// The signed ceiling.
        ceiling: BasisPoints,
    },
}

/// Applies the engine's rules to a running rollout at `now`; a rollout in any other state
/// is returned unchanged.
///
/// 1. **Pause** when failed plus rolled-back devices exceed the failure threshold among
///    all admitted devices, once at least `min_devices` are admitted (and there are
///    failures beyond those acknowledged by the last resume).
/// 2. Under an expired policy it **waits** (nobody can be assigned the release).
/// 3. Otherwise the stage is done when every admitted device is healthy, failed or timed
///    out, the failure rate does not exceed the threshold, and the soak time has passed.
///    Then the rollout **completes** after its last stage, or **advances** to the next
///    stage if that stage's cutoff is within the signed ceiling.
pub fn evaluate(
    rollout: &Rollout,
    progress: &Progress,
    members: &[Member],
    now: Timestamp,
) -> Evaluation {
    let unchanged = |waiting| Evaluation {
        progress: *progress,
        timeline: Vec::new(),
        waiting,
    };
    if progress.state != RolloutState::Running {
        return unchanged(None);
    }
    let tally = Tally::of(rollout, members, now);
    let threshold = rollout.spec().failure;
    let failures = tally.failures();
    let over = threshold.max_failures.exceeded_by(failures, tally.admitted);
    let rate = format!(
        "{failures} of {} admitted devices failed or rolled back ({}), threshold {}",
        tally.admitted,
        BasisPoints::ratio(failures, tally.admitted),
        threshold.max_failures
    );
    if over
        && tally.admitted >= u64::from(threshold.min_devices)
        && failures > progress.failures_acknowledged
    {
        return to_state(progress, RolloutState::Paused, now, rate);
    }
    if rollout.policy_expired(now) {
        return unchanged(Some(Wait::PolicyExpired {
            expires: rollout.policy().expires,
        }));
    }
    if tally.pending() > 0 {
        return unchanged(Some(Wait::Devices {
            pending: tally.pending(),
        }));
    }
    if over {
        return unchanged(Some(Wait::FailureRate {
            failures,
            admitted: tally.admitted,
        }));
    }
    let stages = rollout.stages();
    let Some(stage) = stages.get(progress.stage) else {
        return unchanged(None);
    };
    let started = progress.stage_started.unwrap_or(now);
    if now.duration_since(started) < stage.min_soak {
        return unchanged(Some(Wait::Soak {
            until: started
                .checked_add(stage.min_soak)
                .unwrap_or(Timestamp::MAX),
        }));
    }
    let done = format!(
        "every admitted device is done ({} timed out), {rate}, soaked {:#}",
        tally.timed_out,
        round_to_seconds(now.duration_since(started))
    );
    let next = progress.stage + 1;
    match stages.get(next) {
        None => to_state(progress, RolloutState::Completed, now, done),
        Some(stage) if stage.cutoff > rollout.ceiling() => unchanged(Some(Wait::Ceiling {
            next: stage.cutoff,
            ceiling: rollout.ceiling(),
        })),
        Some(_) => to_stage(progress, next, now, done),
    }
}

fn round_to_seconds(d: SignedDuration) -> SignedDuration {
    SignedDuration::from_secs(d.as_secs())
}

/// The engine moving the rollout to `state`, with its entry.
fn to_state(
    progress: &Progress,
    state: RolloutState,
    now: Timestamp,
    reason: String,
) -> Evaluation {
    let change = Change::State {
        from: progress.state,
        to: state,
    };
    let progress = Progress { state, ..*progress };
    by_engine(progress, change, now, reason)
}

/// The engine starting stage `stage`, with its entry.
fn to_stage(progress: &Progress, stage: usize, now: Timestamp, reason: String) -> Evaluation {
    let change = Change::Stage {
        from: progress.stage,
        to: stage,
    };
    let progress = Progress {
        stage,
        stage_started: Some(now),
        ..*progress
    };
    by_engine(progress, change, now, reason)
}

fn by_engine(progress: Progress, change: Change, now: Timestamp, reason: String) -> Evaluation {
    Evaluation {
        progress,
        timeline: vec![TimelineEntry {
            at: now,
            actor: Actor::Engine,
            change,
            reason,
        }],
        waiting: None,
    }
}

/// What an operator asks of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Draft to running, at stage 1.
    Start,
    /// Running to paused: nobody new is admitted.
    Pause,
    /// Paused to running; failures seen so far no longer pause it.
    Resume,
    /// The next stage now, without waiting for the rules (never past the ceiling).
    Advance,
    /// Stop for good.
    Abort,
}

impl Command {
    /// The command's name, as in the API route.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Advance => "advance",
            Self::Abort => "abort",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an operator's command was refused (the API answers 409).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The state machine does not allow it.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// Start applies only to a draft, resume only to a paused rollout.
    #[error("can not {command} a {state} rollout: only a {expected} one")]
    WrongState {
        /// What was asked.
        command: Command,
        /// The rollout's state.
        state: RolloutState,
        /// The state the command applies to.
        expected: RolloutState,
    },
    /// Advance asked of a rollout that is not running.
    #[error("only a running rollout can advance; this one is {0}")]
    AdvanceNotRunning(RolloutState),
    /// Advance asked at the last stage.
    #[error("stage {stages} is the last stage; there is nothing to advance to")]
    LastStage {
        /// The number of stages.
        stages: usize,
    },
    /// The next stage goes past the signed ceiling.
    #[error(
        "stage {stage}'s cutoff {cutoff} is above the signed ceiling {ceiling}: sign a policy \
         with a higher ceiling (otter-keys sign-rollout)"
    )]
    AboveCeiling {
        /// The next stage (1-based).
        stage: usize,
        /// Its cutoff.
        cutoff: BasisPoints,
        /// The signed ceiling.
        ceiling: BasisPoints,
    },
}

/// Carries out `command` by `operator` for `reason` at `now`: the new progress and the
/// entry recording it.
pub fn command(
    rollout: &Rollout,
    progress: &Progress,
    members: &[Member],
    command: Command,
    operator: &str,
    reason: &str,
    now: Timestamp,
) -> Result<(Progress, TimelineEntry), CommandError> {
    let mut next = *progress;
    let change = match command {
        Command::Advance => {
            if progress.state != RolloutState::Running {
                return Err(CommandError::AdvanceNotRunning(progress.state));
            }
            let stages = rollout.stages();
            let to = progress.stage + 1;
            let stage = stages.get(to).ok_or(CommandError::LastStage {
                stages: stages.len(),
            })?;
            if stage.cutoff > rollout.ceiling() {
                return Err(CommandError::AboveCeiling {
                    stage: to + 1,
                    cutoff: stage.cutoff,
                    ceiling: rollout.ceiling(),
                });
            }
            next.stage = to;
            next.stage_started = Some(now);
            Change::Stage {
                from: progress.stage,
                to,
            }
        }
        Command::Start | Command::Pause | Command::Resume | Command::Abort => {
            use RolloutState::*;
            let from = progress.state;
            let (to, only_from) = match command {
                Command::Start => (Running, Some(Draft)),
                Command::Resume => (Running, Some(Paused)),
                Command::Pause => (Paused, None),
                _ => (Aborted, None),
            };
            if let Some(expected) = only_from.filter(|expected| *expected != from) {
                return Err(CommandError::WrongState {
                    command,
                    state: from,
                    expected,
                });
            }
            next.state = from.to(to)?;
            match command {
                Command::Start => next.stage_started = Some(now),
                Command::Resume => {
                    next.failures_acknowledged = Tally::of(rollout, members, now).failures();
                }
                _ => {}
            }
            Change::State { from, to }
        }
    };
    let entry = TimelineEntry {
        at: now,
        actor: Actor::Operator(operator.to_owned()),
        change,
        reason: reason.to_owned(),
    };
    Ok((next, entry))
}

#[cfg(test)]
mod tests;
