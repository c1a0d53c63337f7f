//! The record of every change to a rollout: who made it, when and why.

use std::fmt;

use jiff::Timestamp;

use super::state::RolloutState;

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The engine, by its rules (admission, advance, auto-pause, completion).
    Engine,
    /// A fleet manager, by name (the token's name).
    Operator(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Engine => f.write_str("engine"),
            Self::Operator(name) => f.write_str(name),
        }
    }
}

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The rollout's state.
    State {
        /// Before.
        from: RolloutState,
        /// After.
        to: RolloutState,
    },
    /// The current stage (0-based indexes).
    Stage {
        /// Before.
        from: usize,
        /// After.
        to: usize,
    },
    /// A device was admitted at a stage (0-based).
    Admitted {
        /// The device.
        device_id: String,
        /// The stage it belongs to from now on.
        stage: usize,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::State { from, to } => write!(f, "{from} -> {to}"),
            Self::Stage { from, to } => write!(f, "stage {} -> stage {}", from + 1, to + 1),
            Self::Admitted { device_id, stage } => {
                write!(f, "device {device_id} admitted at stage {}", stage + 1)
            }
        }
    }
}

/// One change, with who and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When (the `now` the engine was given).
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub change: Change,
    /// Why, in words: the operator's reason, or the rule and the numbers behind it.
    pub reason: String,
}

impl fmt::Display for TimelineEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} ({})",
            self.at, self.actor, self.change, self.reason
        )
    }
}
