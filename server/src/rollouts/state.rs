//! The rollout state machine and the states a device goes through in a rollout.
//!
//! ```text
//! draft ──start──► running ◄──resume── paused
//!                  │  └──────pause──────►┘ │
//!                  └──► completed          │
//! draft, running, paused ──abort──► aborted
//! ```
//!
//! Completed and aborted are final. Every other move is an [`IllegalTransition`] naming
//! both ends, which the API answers with 409.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a rollout is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Created, assigns nothing yet.
    Draft,
    /// Admits devices and advances its stages.
    Running,
    /// Admits nobody new; the devices already in keep their assignment.
    Paused,
    /// Every stage passed. Final.
    Completed,
    /// Stopped for good; assigns nothing new. Final.
    Aborted,
}

/// A move the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} {from} rollout can not become {to}{}", article(*from), hint(*from, *to))]
pub struct IllegalTransition {
    /// The state the rollout is in.
    pub from: RolloutState,
    /// The state asked for.
    pub to: RolloutState,
}

fn article(state: RolloutState) -> &'static str {
    if state == RolloutState::Aborted {
        "an"
    } else {
        "a"
    }
}

fn hint(from: RolloutState, to: RolloutState) -> &'static str {
    use RolloutState::*;
    match (from, to) {
        (Completed | Aborted, _) => " (it is final)",
        (Draft, Paused) => " (start it first)",
        (Paused, Completed) => " (resume it first)",
        _ if from == to => " (it already is)",
        _ => "",
    }
}

impl RolloutState {
    /// Every state, for exhaustive tests and listings.
    pub const ALL: [Self; 5] = [
        Self::Draft,
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::Aborted,
    ];

    /// The next state if the machine allows moving from `self` to `to`.
    pub fn to(self, to: Self) -> Result<Self, IllegalTransition> {
        use RolloutState::*;
        let legal = matches!(
            (self, to),
            (Draft, Running)
                | (Running, Paused)
                | (Paused, Running)
                | (Running, Completed)
                | (Draft | Running | Paused, Aborted)
        );
        if legal {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// The name used in JSON, the database and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Aborted => "aborted",
        }
    }
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one device is in a rollout, from its signed reports. Only [`Healthy`] is success:
/// [`Installed`] means the image is written, not that it booted and passed its health
/// check.
///
/// [`Healthy`]: DeviceState::Healthy
/// [`Installed`]: DeviceState::Installed
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Admitted; the director assigns it the release.
    Assigned,
    /// Fetching the image or a delta.
    Downloading,
    /// Written and verified in the inactive slot, waiting to boot it. Progress, not
    /// success.
    Installed,
    /// Booted the new image, health check pending.
    Booted,
    /// Passed its health check and confirmed the image: the only success.
    Healthy,
    /// A step of the update failed.
    Failed,
    /// Went back to its previous image.
    RolledBack,
}

impl DeviceState {
    /// Every state, in the order a device moves through them.
    pub const ALL: [Self; 7] = [
        Self::Assigned,
        Self::Downloading,
        Self::Installed,
        Self::Booted,
        Self::Healthy,
        Self::Failed,
        Self::RolledBack,
    ];

    /// The device has finished, one way or the other.
    pub fn is_done(self) -> bool {
        self.is_success() || self.is_failure()
    }

    /// The device runs the release and vouched for it.
    pub fn is_success(self) -> bool {
        self == Self::Healthy
    }

    /// Counts against the failure threshold.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::RolledBack)
    }

    /// The name used in JSON, the database and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Downloading => "downloading",
            Self::Installed => "installed",
            Self::Booted => "booted",
            Self::Healthy => "healthy",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::RolloutState::*;
    use super::*;

    #[test]
    fn the_legal_transitions_are_exactly_these() {
        let legal = [
            (Draft, Running),
            (Running, Paused),
            (Paused, Running),
            (Running, Completed),
            (Draft, Aborted),
            (Running, Aborted),
            (Paused, Aborted),
        ];
        for from in RolloutState::ALL {
            for to in RolloutState::ALL {
                let result = from.to(to);
                if legal.contains(&(from, to)) {
                    assert_eq!(result, Ok(to), "{from} -> {to}");
                } else {
                    assert_eq!(
                        result,
                        Err(IllegalTransition { from, to }),
                        "{from} -> {to}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_illegal_transition_names_both_states_and_why() {
        let cases = [
            (
                Completed,
                Running,
                "a completed rollout can not become running (it is final)",
            ),
            (
                Aborted,
                Running,
                "an aborted rollout can not become running (it is final)",
            ),
            (Draft, Paused, "(start it first)"),
            (Paused, Completed, "(resume it first)"),
            (Running, Running, "(it already is)"),
            (Paused, Draft, "a paused rollout can not become draft"),
        ];
        for (from, to, expect) in cases {
            let text = from.to(to).unwrap_err().to_string();
            assert!(text.contains(expect), "{text}");
        }
    }

    #[test]
    fn installed_is_progress_never_success() {
        for state in DeviceState::ALL {
            assert_eq!(state.is_success(), state == DeviceState::Healthy, "{state}");
            assert_eq!(
                state.is_failure(),
                matches!(state, DeviceState::Failed | DeviceState::RolledBack),
                "{state}"
            );
        }
        assert!(!DeviceState::Installed.is_done());
        assert!(!DeviceState::Booted.is_done());
    }

    #[test]
    fn state_names_match_their_json() {
        for state in RolloutState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{state}\""));
        }
        for state in DeviceState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{state}\""));
        }
    }
}
