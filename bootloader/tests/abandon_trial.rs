//! Abandoning an unhealthy trial: the next reset boots the confirmed slot and records the
//! rollback, without touching the confirmed slot or the anti-rollback floor; only a running
//! trial can be abandoned; and a power cut at any point of it leaves a device whose next
//! boot is a verified image and never a trial boot that goes uncounted.

mod common;

use common::*;
use otter_boot::image::Version;
use otter_boot::sim::PowerCut;
use otter_boot::state::Trial;
use otter_boot::{BootError, BootState, Outcome, Slot};

const CONFIRMED: Version = Version::new(2, 0, 0);
const TRIAL: Version = Version::new(3, 0, 0);

/// B (v2.0.0, counter 2) confirmed over A, then A rewritten with v3.0.0 (counter 3) and
/// booted once on trial. Returns the device and the images of A and B.
fn on_trial() -> (Device, Vec<u8>, Vec<u8>) {
    let dev = Device::factory(&image((1, 0, 0), 1, 3000));
    let b = image((2, 0, 0), 2, 4000);
    dev.write_slot(Slot::B, &b).unwrap();
    dev.control().request_trial(Slot::B).unwrap();
    dev.control().decide().unwrap();
    dev.control().confirm().unwrap();
    let a = image((3, 0, 0), 3, 3500);
    dev.write_slot(Slot::A, &a).unwrap();
    dev.control().request_trial(Slot::A).unwrap();
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::A, true));
    (dev, a, b)
}

/// The running trial of [`on_trial`], after its first boot.
const RUNNING: Trial = Trial {
    slot: Slot::A,
    version: TRIAL,
    attempts_left: 2,
    started: true,
};

const ROLLED_BACK: BootState = BootState {
    confirmed: Slot::B,
    trial: None,
    min_security_counter: 2,
    last_outcome: Outcome::RolledBack { from: TRIAL },
};

#[test]
fn abandoned_trial_rolls_back_at_the_next_reset() {
    let (dev, _, b) = on_trial();
    assert_eq!(dev.control().abandon_trial(), Ok(RUNNING));
    // Until the reset the trial still runs: nothing else can be put on trial, and the
    // confirmed slot, floor and last outcome are as they were.
    let s = dev.control().status().unwrap();
    assert_eq!(s.running(), Slot::A);
    assert_eq!(
        (s.confirmed, s.min_security_counter, s.last_outcome),
        (Slot::B, 2, Outcome::Confirmed { version: CONFIRMED })
    );
    assert_eq!(
        dev.control().request_trial(Slot::A),
        Err(BootError::TrialInProgress)
    );
    assert_eq!(
        dev.slot_bytes(Slot::B, b.len()),
        b,
        "confirmed slot untouched"
    );
    // The very next reset boots the confirmed slot and records the rollback.
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial, d.state_error), (Slot::B, false, None));
    assert_eq!(d.header.version, CONFIRMED);
    assert_eq!(dev.control().status(), Ok(ROLLED_BACK));
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::B, false), "and stays there");
    // Abandoning again is refused: nothing runs on trial any more.
    assert_eq!(dev.control().abandon_trial(), Err(BootError::NotOnTrial));
}

#[test]
fn refuses_to_abandon_without_a_running_trial() {
    let dev = Device::factory(&image((1, 0, 0), 1, 3000));
    let ops = dev.flash.borrow().ops();
    assert_eq!(dev.control().abandon_trial(), Err(BootError::NotOnTrial));
    assert_eq!(dev.flash.borrow().ops(), ops, "nothing written");

    // A requested trial that has not booted yet is not the running image: refused, and
    // the request stands.
    dev.write_slot(Slot::B, &image((2, 0, 0), 2, 3000)).unwrap();
    dev.control().request_trial(Slot::B).unwrap();
    let before = dev.control().status().unwrap();
    let ops = dev.flash.borrow().ops();
    assert_eq!(dev.control().abandon_trial(), Err(BootError::NotOnTrial));
    assert_eq!(dev.flash.borrow().ops(), ops, "nothing written");
    assert_eq!(dev.control().status(), Ok(before));
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::B, true));
}

/// Every way one operation can be cut: before it, after a clean prefix, torn inside.
fn cuts_of(index: u64, words: u32) -> Vec<PowerCut> {
    let mut cuts = vec![PowerCut::Before { op: index }];
    cuts.extend((1..words).map(|words| PowerCut::Prefix { op: index, words }));
    cuts.extend((0..words).map(|at| PowerCut::Inside {
        op: index,
        at,
        seed: index << 16 ^ u64::from(at),
    }));
    cuts
}

/// After a cut abandon: the next boot must be a verified image, and a trial boot must be
/// counted. Returns whether the abandon had landed (the confirmed slot booted).
fn boot_after_cut(d: &Device, a: &[u8], b: &[u8]) -> Result<bool, String> {
    let boot = d
        .control()
        .decide()
        .map_err(|e| format!("no boot: {e:?}"))?;
    let expected = if boot.slot == Slot::A { a } else { b };
    if d.slot_bytes(boot.slot, expected.len()) != expected {
        return Err(format!("booted slot {} is not its image", boot.slot));
    }
    let state = d.control().status().map_err(|e| format!("state: {e:?}"))?;
    match (boot.slot, boot.trial) {
        (Slot::B, false) if state == ROLLED_BACK => Ok(true),
        (Slot::A, true)
            if state.trial
                == Some(Trial {
                    attempts_left: 1,
                    ..RUNNING
                }) =>
        {
            // The abandon was lost, but this boot was counted; the agent abandons again.
            d.control()
                .abandon_trial()
                .map_err(|e| format!("abandon again: {e:?}"))?;
            let again = d.control().decide().map_err(|e| format!("{e:?}"))?;
            match d.control().status() {
                Ok(s) if (again.slot, again.trial) == (Slot::B, false) && s == ROLLED_BACK => {
                    Ok(false)
                }
                other => Err(format!("second abandon: booted {again:?}, state {other:?}")),
            }
        }
        _ => Err(format!("booted {boot:?} with state {state:?}")),
    }
}

#[test]
fn survives_power_cut_at_every_point_of_the_abandon() {
    let (dev, a, b) = on_trial();
    let start = dev.flash.borrow().ops();
    let dry = dev.clone();
    dry.control().abandon_trial().unwrap();
    let ops = dry.flash.borrow().op_log()[start as usize..].to_vec();
    assert!(!ops.is_empty());
    let (mut points, mut landed, mut lost) = (0, 0, 0);
    let mut violations = Vec::new();
    // Every cut inside the abandon's operations, and last no cut (power lost after it).
    let cuts = ops
        .iter()
        .enumerate()
        .flat_map(|(i, op)| cuts_of(start + i as u64, op.tear_points(WRITE)))
        .map(Some)
        .chain([None]);
    for cut in cuts {
        points += 1;
        let d = dev.clone();
        d.flash.borrow_mut().set_power_cut(cut);
        let abandoned = d.control().abandon_trial();
        d.flash.borrow_mut().restore_power();
        match boot_after_cut(&d, &a, &b) {
            Ok(true) => landed += 1,
            Ok(false) if abandoned.is_err() => lost += 1,
            Ok(false) => violations.push(format!("{cut:?}: acknowledged abandon lost")),
            Err(e) => violations.push(format!("{cut:?}: {e}")),
        }
    }
    println!(
        "{} abandon ops, {points} cut points: {landed} rolled back at once, {lost} booted \
         the trial once more (counted); {} violations",
        ops.len(),
        violations.len()
    );
    for v in violations.iter().take(10) {
        println!("VIOLATION {v}");
    }
    assert!(violations.is_empty());
    assert!(
        lost > 0,
        "the sweep cut the abandon before its record landed"
    );
    assert!(landed > 0, "the completed abandon rolled back at once");
}
