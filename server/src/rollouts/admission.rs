//! Whether a device checking in may be admitted to a rollout now. The director asks this
//! for each device; a device outside every running rollout keeps its version.

use jiff::{SignedDuration, Timestamp};
use otter_keys::rollout::WindowError;

use super::bucket::{BasisPoints, Bucket, bucket, effective_cutoff};
use super::model::{DeviceFacts, Rollout};
use super::progress::{Member, Progress};
use super::state::RolloutState;
use super::timeline::{Actor, Change, TimelineEntry};

/// How far back the rate limit counts admissions.
pub const RATE_WINDOW: SignedDuration = SignedDuration::from_mins(1);

/// The engine's answer for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Already a member, admitted at `stage`: it keeps the release.
    Member {
        /// Its stage (0-based).
        stage: usize,
    },
    /// Admit it now at the current stage: record the member, then assign.
    Admit {
        /// The stage it joins (0-based).
        stage: usize,
        /// The record of the admission.
        entry: TimelineEntry,
    },
    /// Not now, or not at all.
    Hold(Hold),
}

/// Why a device is not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Hold {
    /// Only a running or completed rollout admits; an aborted one assigns nothing, not even
    /// to members.
    #[error("the rollout is {0}")]
    NotRunning(RolloutState),
    /// Another board, or not in the cohort.
    #[error("not in the rollout's cohort")]
    NotInCohort,
    /// Its bucket is not under the current stage's cutoff (yet).
    #[error("bucket {bucket} is not under stage {}'s cutoff {cutoff}", stage + 1)]
    NotInStage {
        /// The device's bucket.
        bucket: Bucket,
        /// The current stage (0-based).
        stage: usize,
        /// Its cutoff.
        cutoff: BasisPoints,
    },
    /// Its bucket is under the stage's cutoff but not under the signed ceiling: the device
    /// would refuse it.
    #[error("bucket {bucket} is not under the signed ceiling {ceiling}")]
    AboveCeiling {
        /// The device's bucket.
        bucket: Bucket,
        /// The policy's ceiling.
        ceiling: BasisPoints,
    },
    /// The signed policy has expired: a device would refuse the assignment (and count it a
    /// failure), so nothing is assigned, not even to members, until a new policy is uploaded.
    #[error("the signed rollout policy expired (valid until {expires})")]
    PolicyExpired {
        /// Its expiry, Unix seconds.
        expires: u64,
    },
    /// Outside the maintenance window.
    #[error("outside the maintenance window")]
    OutsideWindow,
    /// The window could not be evaluated.
    #[error("maintenance window: {0}")]
    Window(WindowError),
    /// The rate limit's admissions for this minute are used up.
    #[error("rate limit of {per_minute} devices per minute reached")]
    RateLimited {
        /// The limit.
        per_minute: u32,
    },
}

/// Whether `device` may be admitted at `now`.
///
/// `members` may be every member of the rollout, or only `device`'s own record (if any)
/// and those admitted within [`RATE_WINDOW`] before `now`: the answer is the same, so a
/// database need not load the whole rollout per check-in.
///
/// In order: nobody is assigned under an expired policy; an existing member stays
/// ([`Admission::Member`]) unless the rollout was aborted; a non-member is admitted only while the rollout runs or after it completed (at
/// its last stage), if it is of the board and
/// in the cohort (so devices registering later join), its bucket is under the current
/// stage's cutoff and under the signed ceiling, `now` is inside the window and the rate
/// limit has room.
pub fn admission(
    rollout: &Rollout,
    progress: &Progress,
    members: &[Member],
    device: &DeviceFacts,
    now: Timestamp,
) -> Admission {
    if rollout.policy_expired(now) {
        return Admission::Hold(Hold::PolicyExpired {
            expires: rollout.policy().expires,
        });
    }
    if let Some(member) = members.iter().find(|m| m.device_id == device.id) {
        return match progress.state {
            RolloutState::Aborted => Admission::Hold(Hold::NotRunning(progress.state)),
            _ => Admission::Member {
                stage: member.stage,
            },
        };
    }
    match check(rollout, progress, members, device, now) {
        Ok(entry) => Admission::Admit {
            stage: progress.stage,
            entry,
        },
        Err(hold) => Admission::Hold(hold),
    }
}

fn check(
    rollout: &Rollout,
    progress: &Progress,
    members: &[Member],
    device: &DeviceFacts,
    now: Timestamp,
) -> Result<TimelineEntry, Hold> {
    // A completed rollout still admits at its last stage: a device that registers (or is
    // tagged) later gets the release too, instead of nothing until the next rollout.
    if !matches!(
        progress.state,
        RolloutState::Running | RolloutState::Completed
    ) {
        return Err(Hold::NotRunning(progress.state));
    }
    if !rollout.includes(device) {
        return Err(Hold::NotInCohort);
    }
    let stage = progress.stage;
    let cutoff = rollout
        .stages()
        .get(stage)
        .map_or(BasisPoints::ZERO, |s| s.cutoff);
    let bucket = bucket(&device.id, rollout.id());
    if !cutoff.admits(bucket) {
        return Err(Hold::NotInStage {
            bucket,
            stage,
            cutoff,
        });
    }
    let ceiling = rollout.ceiling();
    if !effective_cutoff(cutoff, ceiling).admits(bucket) {
        return Err(Hold::AboveCeiling { bucket, ceiling });
    }
    if let Some(window) = rollout.window()
        && !window.contains(now).map_err(Hold::Window)?
    {
        return Err(Hold::OutsideWindow);
    }
    if let Some(limit) = rollout.spec().rate_limit {
        let recent = members
            .iter()
            .filter(|m| {
                let age = now.duration_since(m.admitted_at);
                age >= SignedDuration::ZERO && age < RATE_WINDOW
            })
            .count();
        if recent >= usize::try_from(limit.get()).unwrap_or(usize::MAX) {
            return Err(Hold::RateLimited {
                per_minute: limit.get(),
            });
        }
    }
    Ok(TimelineEntry {
        at: now,
        actor: Actor::Engine,
        change: Change::Admitted {
            device_id: device.id.clone(),
            stage,
        },
        reason: format!(
            "bucket {bucket} is under stage {}'s cutoff {cutoff} and the signed ceiling \
             {ceiling}",
            stage + 1
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::rollouts::model::tests::{device, policy, spec};
    use crate::rollouts::model::{Cohort, RolloutSpec};
    use crate::rollouts::state::DeviceState;
    use otter_keys::wire::RolloutPolicy;

    fn t0() -> Timestamp {
        // Tuesday.
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn running(stage: usize) -> Progress {
        Progress {
            state: RolloutState::Running,
            stage,
            stage_started: Some(t0()),
            failures_acknowledged: 0,
        }
    }

    fn rollout(ceiling: &str) -> Rollout {
        Rollout::new(spec(), policy(ceiling)).unwrap()
    }

    /// The first device id `dev_N` whose bucket in `rol_1` is in `lo..hi` basis points.
    fn device_in(lo: u16, hi: u16) -> String {
        (0..)
            .map(|i| format!("dev_{i}"))
            .find(|d| (lo..hi).contains(&bucket(d, "rol_1").get()))
            .unwrap()
    }

    fn member(id: &str, stage: usize, admitted_at: Timestamp) -> Member {
        Member {
            device_id: id.into(),
            stage,
            state: DeviceState::Assigned,
            admitted_at,
        }
    }

    #[test]
    fn a_device_in_the_stage_is_admitted_with_a_timeline_entry() {
        let id = device_in(0, 100);
        let got = admission(&rollout("100%"), &running(0), &[], &device(&id, &[]), t0());
        let Admission::Admit { stage: 0, entry } = got else {
            panic!("{got:?}");
        };
        assert_eq!(entry.actor, Actor::Engine);
        assert_eq!(entry.at, t0());
        assert_eq!(
            entry.change,
            Change::Admitted {
                device_id: id,
                stage: 0
            }
        );
        assert!(
            entry.reason.contains("stage 1's cutoff 1%"),
            "{}",
            entry.reason
        );
    }

    #[test]
    fn a_device_above_the_stage_cutoff_waits_for_a_later_stage() {
        let id = device_in(100, 1000);
        let r = rollout("100%");
        let got = admission(&r, &running(0), &[], &device(&id, &[]), t0());
        assert!(
            matches!(got, Admission::Hold(Hold::NotInStage { stage: 0, .. })),
            "{got:?}"
        );
        let got = admission(&r, &running(1), &[], &device(&id, &[]), t0());
        assert!(matches!(got, Admission::Admit { stage: 1, .. }), "{got:?}");
    }

    #[test]
    fn nobody_above_the_signed_ceiling_is_admitted_even_in_a_wider_stage() {
        // Stage 3 is 100 %, but the policy allows 10 %.
        let r = rollout("10%");
        let above = device_in(1000, 10_000);
        let got = admission(&r, &running(2), &[], &device(&above, &[]), t0());
        assert!(
            matches!(got, Admission::Hold(Hold::AboveCeiling { .. })),
            "{got:?}"
        );
        let under = device_in(100, 1000);
        let got = admission(&r, &running(2), &[], &device(&under, &[]), t0());
        assert!(matches!(got, Admission::Admit { .. }), "{got:?}");
    }

    #[test]
    fn a_completed_rollout_still_admits_late_devices_at_its_last_stage() {
        let late = device_in(5000, 10_000);
        let completed = Progress {
            state: RolloutState::Completed,
            ..running(2)
        };
        let got = admission(&rollout("100%"), &completed, &[], &device(&late, &[]), t0());
        assert!(matches!(got, Admission::Admit { stage: 2, .. }), "{got:?}");
    }

    #[test]
    fn draft_paused_and_aborted_rollouts_admit_nobody() {
        let id = device_in(0, 100);
        for state in [
            RolloutState::Draft,
            RolloutState::Paused,
            RolloutState::Aborted,
        ] {
            let progress = Progress {
                state,
                ..running(0)
            };
            let got = admission(&rollout("100%"), &progress, &[], &device(&id, &[]), t0());
            assert_eq!(got, Admission::Hold(Hold::NotRunning(state)));
        }
    }

    #[test]
    fn nobody_is_assigned_under_an_expired_policy_not_even_members() {
        let id = device_in(0, 100);
        let expires = u64::try_from(t0().as_second()).unwrap() + 60;
        let r = Rollout::new(
            spec(),
            RolloutPolicy {
                expires,
                ..policy("100%")
            },
        )
        .unwrap();
        let before = t0() + SignedDuration::from_secs(59);
        let got = admission(&r, &running(0), &[], &device(&id, &[]), before);
        assert!(matches!(got, Admission::Admit { .. }), "{got:?}");
        let members = [member(&id, 0, t0())];
        let got = admission(&r, &running(0), &members, &device(&id, &[]), before);
        assert_eq!(got, Admission::Member { stage: 0 });
        // At the expiry second the device refuses it, so the server assigns nothing.
        let at = t0() + SignedDuration::from_secs(60);
        let expired = Admission::Hold(Hold::PolicyExpired { expires });
        assert_eq!(
            admission(&r, &running(0), &[], &device(&id, &[]), at),
            expired
        );
        assert_eq!(
            admission(&r, &running(0), &members, &device(&id, &[]), at),
            expired
        );
    }

    #[test]
    fn a_member_keeps_its_stage_until_the_rollout_is_aborted() {
        // Admitted at stage 2; its tags have changed since, and the rollout is paused.
        let id = device_in(5000, 10_000);
        let members = [member(&id, 1, t0())];
        let r = Rollout::new(
            RolloutSpec {
                cohort: Cohort::Tagged(["beta".to_string()].into()),
                ..spec()
            },
            policy("100%"),
        )
        .unwrap();
        for state in [
            RolloutState::Running,
            RolloutState::Paused,
            RolloutState::Completed,
        ] {
            let progress = Progress {
                state,
                ..running(0)
            };
            let got = admission(&r, &progress, &members, &device(&id, &[]), t0());
            assert_eq!(got, Admission::Member { stage: 1 }, "{state}");
        }
        let aborted = Progress {
            state: RolloutState::Aborted,
            ..running(0)
        };
        let got = admission(&r, &aborted, &members, &device(&id, &[]), t0());
        assert_eq!(
            got,
            Admission::Hold(Hold::NotRunning(RolloutState::Aborted))
        );
    }

    #[test]
    fn devices_registering_later_join_if_they_match() {
        let r = Rollout::new(
            RolloutSpec {
                cohort: Cohort::Tagged(["eu".to_string()].into()),
                ..spec()
            },
            policy("100%"),
        )
        .unwrap();
        // Stage 3 (100 %) is running; these devices did not exist when it started.
        let members = [member("dev_old", 0, t0() - SignedDuration::from_hours(5))];
        let later = t0() + SignedDuration::from_hours(1);
        let got = admission(
            &r,
            &running(2),
            &members,
            &device("dev_new", &["eu"]),
            later,
        );
        assert!(matches!(got, Admission::Admit { stage: 2, .. }), "{got:?}");
        let got = admission(&r, &running(2), &members, &device("dev_us", &["us"]), later);
        assert_eq!(got, Admission::Hold(Hold::NotInCohort));
        let fridge = DeviceFacts {
            hardware_id: "acme-fridge".into(),
            ..device("dev_f", &["eu"])
        };
        let got = admission(&r, &running(2), &members, &fridge, later);
        assert_eq!(got, Admission::Hold(Hold::NotInCohort));
    }

    #[test]
    fn the_rate_limit_counts_admissions_in_the_last_minute() {
        let r = Rollout::new(
            RolloutSpec {
                rate_limit: NonZeroU32::new(2),
                ..spec()
            },
            policy("100%"),
        )
        .unwrap();
        let now = t0();
        let id = "dev_next";
        let second = SignedDuration::from_secs(1);
        let recent = [
            member("a", 2, now - 59 * second),
            member("b", 2, now - 10 * second),
        ];
        let got = admission(&r, &running(2), &recent, &device(id, &[]), now);
        assert_eq!(got, Admission::Hold(Hold::RateLimited { per_minute: 2 }));
        // A minute after the older admission there is room again.
        let got = admission(&r, &running(2), &recent, &device(id, &[]), now + second);
        assert!(matches!(got, Admission::Admit { .. }), "{got:?}");
        // Admissions longer ago do not count.
        let old = [
            member("a", 2, now - 60 * second),
            member("b", 2, now - 3600 * second),
        ];
        let got = admission(&r, &running(2), &old, &device(id, &[]), now);
        assert!(matches!(got, Admission::Admit { .. }), "{got:?}");
    }

    #[test]
    fn the_window_gates_admission() {
        let window = "mon-fri 09:00-17:00 Europe/Berlin".parse().unwrap();
        let r = Rollout::new(
            spec(),
            otter_keys::wire::RolloutPolicy {
                window: Some(window),
                ..policy("100%")
            },
        )
        .unwrap();
        let id = "dev_any";
        // Tuesday 12:00 UTC is 13:00 in Berlin.
        let got = admission(&r, &running(2), &[], &device(id, &[]), t0());
        assert!(matches!(got, Admission::Admit { .. }), "{got:?}");
        // 16:30 UTC is 17:30 in Berlin.
        let evening = t0() + SignedDuration::from_mins(270);
        let got = admission(&r, &running(2), &[], &device(id, &[]), evening);
        assert_eq!(got, Admission::Hold(Hold::OutsideWindow));
    }
}
