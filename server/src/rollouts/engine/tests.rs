use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::rollouts::admission::{Admission, admission};
use crate::rollouts::model::tests::{device, policy, spec};
use crate::rollouts::state::DeviceState::{self, *};

fn t0() -> Timestamp {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn rollout(ceiling: &str) -> Rollout {
    Rollout::new(spec(), policy(ceiling)).unwrap()
}

fn running(stage: usize) -> Progress {
    Progress {
        state: RolloutState::Running,
        stage,
        stage_started: Some(t0()),
        failures_acknowledged: 0,
    }
}

/// Members admitted at stage 0 at `t0`, one per state given.
fn members(states: &[DeviceState]) -> Vec<Member> {
    states
        .iter()
        .enumerate()
        .map(|(i, state)| Member {
            device_id: format!("dev_{i}"),
            stage: 0,
            state: *state,
            admitted_at: t0(),
        })
        .collect()
}

#[test]
fn a_stage_waits_for_every_admitted_device_and_installed_is_not_done() {
    let m = members(&[Healthy, Installed, Booted]);
    let e = evaluate(&rollout("100%"), &running(0), &m, t0() + mins(90));
    assert_eq!(e.waiting, Some(Wait::Devices { pending: 2 }));
    assert_eq!(e.progress, running(0));
    assert!(e.timeline.is_empty());
}

#[test]
fn a_stage_advances_once_soaked_and_says_why() {
    let mut states = vec![Healthy; 9];
    states.push(Failed);
    let m = members(&states);
    let r = rollout("100%");
    let early = evaluate(&r, &running(0), &m, t0() + mins(59));
    assert_eq!(
        early.waiting,
        Some(Wait::Soak {
            until: t0() + mins(60)
        })
    );
    let now = t0() + mins(60);
    let e = evaluate(&r, &running(0), &m, now);
    assert_eq!(e.progress.stage, 1);
    assert_eq!(e.progress.stage_started, Some(now));
    assert_eq!(e.progress.state, RolloutState::Running);
    let [entry] = &e.timeline[..] else {
        panic!("{:?}", e.timeline);
    };
    assert_eq!(entry.actor, Actor::Engine);
    assert_eq!(entry.change, Change::Stage { from: 0, to: 1 });
    assert!(
        entry.reason.contains("1 of 10 admitted devices"),
        "{}",
        entry.reason
    );
    assert!(entry.reason.contains("soaked 1h"), "{}", entry.reason);
    assert!(entry.reason.contains("threshold 10%"), "{}", entry.reason);
}

#[test]
fn a_timed_out_device_no_longer_holds_the_stage() {
    let m = members(&[Healthy, Downloading]);
    let r = rollout("100%");
    let e = evaluate(&r, &running(0), &m, t0() + SignedDuration::from_hours(23));
    assert_eq!(e.waiting, Some(Wait::Devices { pending: 1 }));
    let e = evaluate(&r, &running(0), &m, t0() + SignedDuration::from_hours(24));
    assert_eq!(e.progress.stage, 1);
    assert!(
        e.timeline[0].reason.contains("1 timed out"),
        "{}",
        e.timeline[0].reason
    );
}

#[test]
fn a_stage_nobody_was_admitted_to_advances_after_its_soak() {
    let e = evaluate(&rollout("100%"), &running(0), &[], t0() + mins(60));
    assert_eq!(e.progress.stage, 1);
}

#[test]
fn failures_over_the_threshold_pause_the_rollout_once_enough_devices_are_in() {
    let r = rollout("100%");
    // 2 of 10 (20 %) exceeds 10 %; rolled back counts like failed.
    let mut states = vec![Healthy; 8];
    states.extend([Failed, RolledBack]);
    let m = members(&states);
    let now = t0() + mins(5);
    let e = evaluate(&r, &running(0), &m, now);
    assert_eq!(e.progress.state, RolloutState::Paused);
    assert_eq!(e.progress.stage, 0, "a pause keeps the stage");
    let [entry] = &e.timeline[..] else {
        panic!("{:?}", e.timeline);
    };
    assert_eq!(
        entry.change,
        Change::State {
            from: RolloutState::Running,
            to: RolloutState::Paused
        }
    );
    assert_eq!(entry.actor, Actor::Engine);
    assert!(entry.reason.contains("2 of 10"), "{}", entry.reason);
    assert!(entry.reason.contains("(20%)"), "{}", entry.reason);
    // It pauses before devices finish: in-flight devices do not delay it.
    let mut in_flight = states.clone();
    in_flight.extend([Downloading; 5]);
    let e = evaluate(&r, &running(0), &members(&in_flight), now);
    assert_eq!(e.progress.state, RolloutState::Paused, "2 of 15 is 13%");
}

#[test]
fn below_min_devices_a_high_failure_rate_neither_pauses_nor_advances() {
    let r = rollout("100%");
    let mut states = vec![Healthy; 7];
    states.extend([Failed, Failed]);
    let m = members(&states);
    let e = evaluate(&r, &running(0), &m, t0() + SignedDuration::from_hours(48));
    assert_eq!(e.progress, running(0));
    assert_eq!(
        e.waiting,
        Some(Wait::FailureRate {
            failures: 2,
            admitted: 9
        })
    );
}

#[test]
fn a_failure_rate_at_the_threshold_does_not_pause() {
    let mut states = vec![Healthy; 9];
    states.push(Failed);
    let e = evaluate(
        &rollout("100%"),
        &running(0),
        &members(&states),
        t0() + mins(60),
    );
    assert_eq!(e.progress.state, RolloutState::Running);
    assert_eq!(e.progress.stage, 1, "1 of 10 is 10%, not more");
}

#[test]
fn the_last_stage_completes_the_rollout() {
    let m = members(&[Healthy; 3]);
    let e = evaluate(&rollout("100%"), &running(2), &m, t0() + mins(60));
    assert_eq!(e.progress.state, RolloutState::Completed);
    assert_eq!(
        e.timeline[0].change,
        Change::State {
            from: RolloutState::Running,
            to: RolloutState::Completed
        }
    );
}

#[test]
fn auto_advance_stops_below_a_stage_past_the_signed_ceiling() {
    // Stages 1 %, 10 %, 100 %; the policy allows 10 %.
    let r = rollout("10%");
    let m = members(&[Healthy; 4]);
    let e = evaluate(&r, &running(0), &m, t0() + mins(60));
    assert_eq!(e.progress.stage, 1);
    for hours in [1, 24, 24 * 365] {
        let e = evaluate(
            &r,
            &running(1),
            &m,
            t0() + SignedDuration::from_hours(hours),
        );
        assert_eq!(e.progress, running(1), "after {hours}h");
        assert_eq!(
            e.waiting,
            Some(Wait::Ceiling {
                next: "100%".parse().unwrap(),
                ceiling: "10%".parse().unwrap()
            })
        );
    }
}

#[test]
fn only_a_running_rollout_moves_by_itself() {
    let m = members(&[Healthy; 3]);
    for state in [
        RolloutState::Draft,
        RolloutState::Paused,
        RolloutState::Completed,
        RolloutState::Aborted,
    ] {
        let p = Progress {
            state,
            ..running(0)
        };
        let e = evaluate(&rollout("100%"), &p, &m, t0() + mins(600));
        assert_eq!(e.progress, p, "{state}");
        assert!(e.timeline.is_empty());
    }
}

#[test]
fn a_resume_is_not_undone_by_the_failures_that_caused_the_pause() {
    let r = rollout("100%");
    let mut states = vec![Healthy; 8];
    states.extend([Failed, Failed]);
    let mut m = members(&states);
    let now = t0() + mins(5);
    let paused = evaluate(&r, &running(0), &m, now).progress;
    assert_eq!(paused.state, RolloutState::Paused);
    let (resumed, entry) = command(
        &r,
        &paused,
        &m,
        Command::Resume,
        "alice",
        "bad batch of sensors",
        now,
    )
    .unwrap();
    assert_eq!(resumed.state, RolloutState::Running);
    assert_eq!(resumed.failures_acknowledged, 2);
    assert_eq!(entry.actor, Actor::Operator("alice".into()));
    assert_eq!(entry.reason, "bad batch of sensors");
    let e = evaluate(&r, &resumed, &m, now + mins(1));
    assert_eq!(e.progress.state, RolloutState::Running, "not paused again");
    assert!(
        matches!(e.waiting, Some(Wait::FailureRate { .. })),
        "nor widened"
    );
    // A new failure pauses it again.
    m[0].state = RolledBack;
    let e = evaluate(&r, &resumed, &m, now + mins(2));
    assert_eq!(e.progress.state, RolloutState::Paused);
}

#[test]
fn operator_commands_follow_the_state_machine() {
    use RolloutState::*;
    let r = rollout("100%");
    let now = t0() + mins(1);
    let run = |state, cmd| {
        let p = Progress {
            state,
            stage_started: None,
            ..running(0)
        };
        command(&r, &p, &[], cmd, "bob", "why", now).map(|(p, _)| p.state)
    };
    let expected = |state, cmd| -> Result<RolloutState, CommandError> {
        let illegal = |to| Err(CommandError::Illegal(IllegalTransition { from: state, to }));
        let wrong = |expected| {
            Err(CommandError::WrongState {
                command: cmd,
                state,
                expected,
            })
        };
        match (cmd, state) {
            (Command::Start, Draft) => Ok(Running),
            (Command::Start, _) => wrong(Draft),
            (Command::Resume, Paused) => Ok(Running),
            (Command::Resume, _) => wrong(Paused),
            (Command::Pause, Running) => Ok(Paused),
            (Command::Pause, _) => illegal(Paused),
            (Command::Abort, Draft | Running | Paused) => Ok(Aborted),
            (Command::Abort, _) => illegal(Aborted),
            (Command::Advance, Running) => Ok(Running),
            (Command::Advance, _) => Err(CommandError::AdvanceNotRunning(state)),
        }
    };
    let commands = [
        Command::Start,
        Command::Pause,
        Command::Resume,
        Command::Advance,
        Command::Abort,
    ];
    for state in RolloutState::ALL {
        for cmd in commands {
            assert_eq!(run(state, cmd), expected(state, cmd), "{cmd} on {state}");
        }
    }
    let err = run(Completed, Command::Pause).unwrap_err().to_string();
    assert_eq!(
        err,
        "a completed rollout can not become paused (it is final)"
    );
    let err = run(Draft, Command::Resume).unwrap_err().to_string();
    assert_eq!(err, "can not resume a draft rollout: only a paused one");
}

#[test]
fn start_begins_stage_one_and_records_who() {
    let (p, entry) = command(
        &rollout("100%"),
        &Progress::draft(),
        &[],
        Command::Start,
        "carol",
        "go",
        t0(),
    )
    .unwrap();
    assert_eq!(p, running(0));
    assert_eq!(
        entry.to_string(),
        "2026-12-01T12:00:00Z carol: draft -> running (go)"
    );
}

#[test]
fn a_manual_advance_skips_the_rules_but_never_the_ceiling_or_the_last_stage() {
    let r = rollout("10%");
    let m = members(&[Installed; 3]);
    let now = t0() + mins(1);
    let (p, entry) = command(
        &r,
        &running(0),
        &m,
        Command::Advance,
        "dave",
        "looks good",
        now,
    )
    .unwrap();
    assert_eq!(p.stage, 1);
    assert_eq!(p.stage_started, Some(now));
    assert_eq!(entry.change, Change::Stage { from: 0, to: 1 });
    let err = command(&r, &p, &m, Command::Advance, "dave", "more", now).unwrap_err();
    assert_eq!(
        err,
        CommandError::AboveCeiling {
            stage: 3,
            cutoff: "100%".parse().unwrap(),
            ceiling: "10%".parse().unwrap()
        }
    );
    assert!(err.to_string().contains("otter-keys sign-rollout"), "{err}");
    let wide = rollout("100%");
    let err = command(&wide, &running(2), &m, Command::Advance, "dave", "", now).unwrap_err();
    assert_eq!(err, CommandError::LastStage { stages: 3 });
}

/// 1000 devices checking in every minute, each healthy a minute after admission: the
/// rollout walks through its stages, each admitting about its share, and completes.
#[test]
fn a_healthy_rollout_walks_through_every_stage_to_completion() {
    let (members, progress) = simulate(&rollout("100%"), 1000, 400);
    assert_eq!(progress.state, RolloutState::Completed);
    assert_eq!(members.len(), 1000, "every device of the cohort is in");
    let per_stage = |k| members.iter().filter(|m| m.stage <= k).count();
    assert!(
        (3..=20).contains(&per_stage(0)),
        "stage 1 ~1%: {}",
        per_stage(0)
    );
    assert!(
        (70..=130).contains(&per_stage(1)),
        "stage 2 ~10%: {}",
        per_stage(1)
    );
}

/// The same fleet under a 10 % ceiling: no amount of time takes it past 10 %.
#[test]
fn auto_advance_never_exceeds_the_signed_ceiling() {
    let r = rollout("10%");
    let (members, progress) = simulate(&r, 1000, 600);
    assert_eq!(progress.state, RolloutState::Running);
    assert_eq!(progress.stage, 1);
    for m in &members {
        let b = crate::rollouts::bucket::bucket(&m.device_id, "rol_1");
        assert!(
            r.ceiling().admits(b),
            "{} admitted with bucket {b}",
            m.device_id
        );
    }
    let under = (0..1000)
        .filter(|i| {
            r.ceiling().admits(crate::rollouts::bucket::bucket(
                &format!("dev_{i}"),
                "rol_1",
            ))
        })
        .count();
    assert_eq!(members.len(), under, "everyone under the ceiling is in");
}

/// Runs `minutes` minutes of `devices` devices checking in each minute. Admission is
/// asked with only the last minute's members, as a database would pass them.
fn simulate(r: &Rollout, devices: usize, minutes: i64) -> (Vec<Member>, Progress) {
    let start = t0();
    let (mut progress, _) =
        command(r, &Progress::draft(), &[], Command::Start, "sim", "", start).unwrap();
    let mut members: Vec<Member> = Vec::new();
    let mut admitted = std::collections::HashSet::new();
    for minute in 0..minutes {
        let now = start + mins(minute);
        for m in members.iter_mut() {
            m.state = Healthy;
        }
        let mut recent: Vec<Member> = (members.iter())
            .filter(|m| now.duration_since(m.admitted_at) < mins(1))
            .cloned()
            .collect();
        for i in 0..devices {
            let d = device(&format!("dev_{i}"), &[]);
            if admitted.contains(&d.id) {
                continue;
            }
            if let Admission::Admit { stage, .. } = admission(r, &progress, &recent, &d, now) {
                admitted.insert(d.id.clone());
                recent.push(Member {
                    device_id: d.id,
                    stage,
                    state: Assigned,
                    admitted_at: now,
                });
            }
        }
        members.extend(recent.into_iter().filter(|m| m.admitted_at == now));
        progress = evaluate(r, &progress, &members, now).progress;
    }
    (members, progress)
}

#[test]
fn an_expired_policy_holds_the_stage_but_failures_still_pause() {
    let expires = u64::try_from((t0() + mins(120)).as_second()).unwrap();
    let r = Rollout::new(
        spec(),
        otter_keys::wire::RolloutPolicy {
            expires,
            ..policy("100%")
        },
    )
    .unwrap();
    // Soaked and done: before the expiry it advances, from the expiry on it waits.
    let m = members(&[Healthy; 10]);
    let before = evaluate(&r, &running(0), &m, t0() + mins(61));
    assert_eq!(before.progress.stage, 1, "{before:?}");
    let after = evaluate(&r, &running(0), &m, t0() + mins(120));
    assert_eq!(after.waiting, Some(Wait::PolicyExpired { expires }));
    assert_eq!(after.progress, running(0));
    // Failures over the threshold still pause it.
    let mut states = vec![Healthy; 5];
    states.extend([Failed; 5]);
    let e = evaluate(&r, &running(0), &members(&states), t0() + mins(121));
    assert_eq!(e.progress.state, RolloutState::Paused);
}
