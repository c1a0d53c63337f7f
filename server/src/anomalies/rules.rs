//! The decisions behind each flag, as pure functions with their thresholds, so each one can
//! be tested on numbers alone.

use std::time::Duration;

use otter_keys::wire::Event;

/// Report stages in which a device refused what it was sent (a bad director assignment or
/// rollout policy) or could not verify what it downloaded. Network failures (`download`,
/// `tuf`) are not among them: a flaky link is not an anomaly.
pub const REFUSAL_STAGES: [&str; 3] = ["assignment", "policy", "verify"];

/// How many refusals within [`REPEAT_WINDOW`] raise a flag. One can be a glitch; three in a
/// day from one device are a pattern.
pub const REPEAT_THRESHOLD: u64 = 3;

/// How far back refusals are counted.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A release's rollback rate must be at least this (per cent) to be a storm.
pub const STORM_MIN_PERCENT: u64 = 20;

/// …and at least this many times the rest of the board's fleet's rate.
pub const STORM_FACTOR: u64 = 3;

/// …with at least this many devices having installed it, so two devices do not make a storm.
pub const STORM_MIN_INSTALLS: u64 = 5;

/// Whether `event` is a refusal that counts towards [`super::AnomalyKind::RepeatedFailures`].
pub fn is_refusal(event: &Event) -> bool {
    matches!(event, Event::Failed { stage, .. } if REFUSAL_STAGES.contains(&stage.as_str()))
}

/// Distinct devices that installed a release, and those of them that rolled back from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollbacks {
    /// Devices that reported it installed.
    pub installed: u64,
    /// Devices that rolled back from it.
    pub rolled_back: u64,
}

impl std::ops::Add for Rollbacks {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            installed: self.installed + other.installed,
            rolled_back: self.rolled_back + other.rolled_back,
        }
    }
}

/// Whether `release` (its counts) is in a rollback storm compared with `rest`, the other
/// releases of its board: at least [`STORM_MIN_INSTALLS`] installs, a rate of at least
/// [`STORM_MIN_PERCENT`] and at least [`STORM_FACTOR`] times the rest's. Returns the reason.
pub fn rollback_storm(release: Rollbacks, rest: Rollbacks) -> Option<String> {
    let Rollbacks {
        installed,
        rolled_back,
    } = release;
    if installed < STORM_MIN_INSTALLS || rolled_back == 0 {
        return None;
    }
    // rolled_back / installed >= STORM_MIN_PERCENT / 100, in integers.
    let high = rolled_back * 100 >= STORM_MIN_PERCENT * installed;
    // rolled_back / installed >= STORM_FACTOR * rest.rolled_back / rest.installed.
    let above_rest = rest.installed == 0
        || u128::from(rolled_back) * u128::from(rest.installed)
            >= u128::from(STORM_FACTOR) * u128::from(rest.rolled_back) * u128::from(installed);
    (high && above_rest).then(|| {
        format!(
            "{rolled_back} of {installed} devices rolled back ({}%), the rest of the board's \
             fleet {} of {} ({}%)",
            percent(rolled_back, installed),
            rest.rolled_back,
            rest.installed,
            percent(rest.rolled_back, rest.installed)
        )
    })
}

fn percent(part: u64, whole: u64) -> u64 {
    (part * 100).checked_div(whole).unwrap_or(0)
}

/// Devices last heard from before this time (Unix seconds) are silent.
pub fn silent_before(now: i64, silent_after: Duration) -> i64 {
    now.saturating_sub(i64::try_from(silent_after.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(installed: u64, rolled_back: u64) -> Rollbacks {
        Rollbacks {
            installed,
            rolled_back,
        }
    }

    #[test]
    fn only_refusal_stages_count() {
        let failed = |stage: &str| Event::Failed {
            stage: stage.into(),
            reason: "x".into(),
        };
        for stage in REFUSAL_STAGES {
            assert!(is_refusal(&failed(stage)), "{stage}");
        }
        for stage in ["download", "tuf", "delta", "checkin", "health"] {
            assert!(!is_refusal(&failed(stage)), "{stage}");
        }
        let rolled_back = Event::RolledBack {
            from: "1.0.0".parse().unwrap(),
        };
        assert!(!is_refusal(&rolled_back));
    }

    #[test]
    fn a_storm_needs_installs_a_high_rate_and_a_rate_well_above_the_rest() {
        // 3 of 10 (30 %) against a fleet at 1 %: a storm, with the numbers in the reason.
        let reason = rollback_storm(counts(10, 3), counts(100, 1)).unwrap();
        assert!(
            reason.contains("3 of 10 devices rolled back (30%)"),
            "{reason}"
        );
        assert!(reason.contains("1 of 100 (1%)"), "{reason}");
        // Too few installs.
        assert_eq!(rollback_storm(counts(4, 4), counts(100, 0)), None);
        // Under the absolute rate (1 of 10).
        assert_eq!(rollback_storm(counts(10, 1), counts(100, 0)), None);
        // High, but the whole fleet rolls back as often (30 % vs 20 %: under 3x).
        assert_eq!(rollback_storm(counts(10, 3), counts(100, 20)), None);
        // Exactly 3x the rest and exactly 20 %: a storm (the bounds are inclusive).
        assert!(rollback_storm(counts(10, 2), counts(300, 20)).is_some());
        // Nothing else installed on the board: the absolute rate decides.
        assert!(rollback_storm(counts(5, 1), Rollbacks::default()).is_some());
        // No rollback at all is never a storm.
        assert_eq!(rollback_storm(counts(10, 0), Rollbacks::default()), None);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let big = u64::MAX / 200;
        assert!(rollback_storm(counts(big, big), counts(big, 1)).is_some());
    }

    #[test]
    fn silence_counts_back_from_now() {
        assert_eq!(silent_before(10_000, Duration::from_secs(3_600)), 6_400);
        assert_eq!(silent_before(0, Duration::MAX), -i64::MAX);
    }
}
