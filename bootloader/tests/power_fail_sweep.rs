//! Power-fail sweep: the promise that a power cut at any instant of an update leaves a
//! device that boots only verified images, never below its anti-rollback floor, with a
//! readable boot state, and that the update then either completes or rolls back (and a
//! rolled-back image can never boot again, not even once the boot state is lost).
//!
//! A device "life" is a loop of power-ons. Each power-on runs the bootloader's `decide()`
//! and then the agent, which continues the update from whatever state it finds (install
//! into slot B, request a trial, reboot, confirm after a healthy boot). The sweep replays the
//! life from the factory state with power cut before every flash operation and inside every
//! one (each word of a program, each word of an erase, torn), then lets the device reboot
//! and finish. A second sweep cuts twice, both times inside boot-state writes, which is
//! where `sequential-storage`'s power-cut bugs live (its issue 136 needs two torn stores).

mod common;

use common::*;
use otter_boot::image::Version;
use otter_boot::sim::{Op, PowerCut};
use otter_boot::{Outcome, Slot};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// The new image is healthy: the agent confirms it.
    Update,
    /// The new image fails its health check every time: it must be rolled back.
    Rollback,
}

const NEW: Version = Version::new(2, 0, 0);
const MAX_BOOTS: usize = 16;

struct World {
    a: Vec<u8>,
    b: Vec<u8>,
}

/// What the device acknowledged (an API call returned `Ok`): it must never be lost.
#[derive(Clone, Copy, Default, Debug)]
struct Acked {
    floor: u32,
    confirmed_b: bool,
    rolled_back: bool,
    trial_requested: bool,
}

enum Next {
    Reboot,
    Done,
    PowerLost,
}

/// Turns an API error into `PowerLost` when the simulated power is off, and into a
/// violation otherwise.
fn check<T, E: std::fmt::Debug>(
    dev: &Device,
    what: &str,
    r: Result<T, E>,
) -> Result<Result<T, Next>, String> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(_) if !dev.flash.borrow().is_powered() => Ok(Err(Next::PowerLost)),
        Err(e) => Err(format!("{what} failed with power on: {e:?}")),
    }
}

macro_rules! step {
    ($dev:expr, $what:expr, $r:expr) => {
        match check($dev, $what, $r)? {
            Ok(v) => v,
            Err(next) => return Ok(next),
        }
    };
}

/// One power-on: bootloader, then agent.
fn power_on(dev: &Device, sc: Scenario, w: &World, acked: &mut Acked) -> Result<Next, String> {
    let mut ctl = dev.control();
    let d = step!(dev, "decide", ctl.decide());
    if !dev.flash.borrow().is_powered() {
        // The power died inside `decide` (its last record write): nothing was booted.
        return Ok(Next::PowerLost);
    }
    // Only verified images boot: the slot holds exactly one of the two signed images.
    let (expected, slot_image) = match d.slot {
        Slot::A => (&w.a, dev.slot_bytes(Slot::A, w.a.len())),
        Slot::B => (&w.b, dev.slot_bytes(Slot::B, w.b.len())),
    };
    if &slot_image != expected {
        return Err(format!(
            "booted slot {} whose bytes are not the signed image",
            d.slot
        ));
    }
    if d.header.security_counter < acked.floor {
        return Err(format!(
            "downgrade: booted counter {} below floor {}",
            d.header.security_counter, acked.floor
        ));
    }
    if acked.confirmed_b && (d.slot != Slot::B || d.trial) {
        return Err(format!("acknowledged confirm of B lost: booted {:?}", d));
    }
    if acked.rolled_back && d.slot != Slot::A {
        return Err("booted B again after its rollback".into());
    }
    let s = ctl
        .status()
        .map_err(|e| format!("state unreadable after boot: {e:?}"))?;
    if s.min_security_counter < acked.floor {
        return Err(format!(
            "floor fell from {} to {}",
            acked.floor, s.min_security_counter
        ));
    }
    if acked.trial_requested
        && s.trial.is_none()
        && s.confirmed == Slot::A
        && s.last_outcome == Outcome::None
    {
        return Err("acknowledged trial request lost".into());
    }
    if s.confirmed == Slot::B && s.trial.is_none() {
        return match sc {
            Scenario::Update => Ok(Next::Done),
            Scenario::Rollback => Err("unhealthy image became confirmed".into()),
        };
    }
    if let Outcome::RolledBack { from } = s.last_outcome {
        if sc == Scenario::Update || from != NEW {
            return Err(format!("unexpected rollback from {from} in {sc:?}"));
        }
        acked.rolled_back = true;
        return Ok(Next::Done);
    }
    if s.running() == Slot::B {
        if sc == Scenario::Rollback {
            return Ok(Next::Reboot); // health check failed: no confirm, reset
        }
        step!(dev, "confirm", ctl.confirm());
        acked.floor = acked.floor.max(2);
        acked.confirmed_b = true;
        return Ok(Next::Reboot);
    }
    // Not updated yet: (re)install and request the trial.
    step!(dev, "write slot B", dev.write_slot(Slot::B, &w.b));
    step!(dev, "request_trial", dev.control().request_trial(Slot::B));
    acked.trial_requested = true;
    Ok(Next::Reboot)
}

/// Runs power-ons until the scenario is done; restores power after a cut.
fn live(dev: &Device, sc: Scenario, w: &World, acked: &mut Acked) -> Result<(), String> {
    for _ in 0..MAX_BOOTS {
        match power_on(dev, sc, w, acked)? {
            Next::Done => return check_end(dev, sc),
            Next::Reboot => {}
            Next::PowerLost => dev.flash.borrow_mut().restore_power(),
        }
    }
    Err(format!("no progress after {MAX_BOOTS} boots"))
}

/// The allowed end states.
fn check_end(dev: &Device, sc: Scenario) -> Result<(), String> {
    let mut ctl = dev.control();
    let s = ctl
        .status()
        .map_err(|e| format!("final state unreadable: {e:?}"))?;
    let d = ctl
        .decide()
        .map_err(|e| format!("final boot failed: {e:?}"))?;
    let ok = match sc {
        Scenario::Update => {
            s.confirmed == Slot::B
                && s.trial.is_none()
                && s.min_security_counter == 2
                && s.last_outcome == Outcome::Confirmed { version: NEW }
                && d.slot == Slot::B
                && !d.trial
        }
        Scenario::Rollback => {
            s.confirmed == Slot::A
                && s.trial.is_none()
                && s.last_outcome == Outcome::RolledBack { from: NEW }
                && d.slot == Slot::A
                && !d.trial
                // The rolled-back image is gone: a lost state cannot bring it back.
                && ctl.verify_slot(Slot::B, 0).is_err()
                && ctl.decide_without_state().is_ok_and(|d| d.slot == Slot::A)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "end state not allowed for {sc:?}: {s:?}, boots {:?}",
            d.slot
        ))
    }
}

fn world() -> (Device, World) {
    let dev = Device::new();
    let w = World {
        a: image((1, 0, 0), 1, 5000),
        b: image((2, 0, 0), 2, 6500),
    };
    dev.write_slot(Slot::A, &w.a).unwrap();
    (dev, w)
}

/// Every cut of one operation: before it, after each of its words (a clean prefix), and
/// torn inside each of its words (undefined bits).
fn cuts_of(index: u64, op: &Op, seed: u64) -> Vec<PowerCut> {
    let words = op.tear_points(WRITE);
    let mut v = vec![PowerCut::Before { op: index }];
    v.extend((1..words).map(|words| PowerCut::Prefix { op: index, words }));
    v.extend((0..words).map(|at| PowerCut::Inside {
        op: index,
        at,
        seed: seed ^ (index << 16) ^ u64::from(at),
    }));
    v
}

fn is_state_op(op: &Op) -> bool {
    let s = layout().state();
    op.offset >= s.offset && op.offset < s.offset + s.size
}

struct Report {
    points: usize,
    failures: Vec<String>,
}

impl Report {
    fn run(&mut self, what: String, dev: &Device, sc: Scenario, w: &World, acked: &mut Acked) {
        self.points += 1;
        if let Err(e) = live(dev, sc, w, acked) {
            self.failures.push(format!("{what}: {e}"));
        }
    }
}

/// Cuts once at every point of a whole life. Returns the op log of the uncut life.
fn single_cuts(sc: Scenario, rep: &mut Report) -> Vec<Op> {
    let (factory, w) = world();
    let dry = factory.clone();
    live(&dry, sc, &w, &mut Acked::default()).expect("uncut life succeeds");
    let ops = dry.flash.borrow().op_log().to_vec();
    let start = factory.flash.borrow().ops();
    for (i, op) in ops.iter().enumerate().skip(start as usize) {
        for cut in cuts_of(i as u64, op, 0x5eed) {
            let dev = factory.clone();
            dev.flash.borrow_mut().set_power_cut(Some(cut));
            rep.run(
                format!("{sc:?} {cut:?} in {op:?}"),
                &dev,
                sc,
                &w,
                &mut Acked::default(),
            );
        }
    }
    ops
}

/// Cuts inside a boot-state write, reboots, and cuts again inside every later boot-state
/// write of the recovery.
fn double_state_cuts(sc: Scenario, ops: &[Op], rep: &mut Report) {
    let (factory, w) = world();
    for (i, op) in ops.iter().enumerate().filter(|(_, op)| is_state_op(op)) {
        for first in cuts_of(i as u64, op, 0xf1) {
            // Run to the first cut and take a snapshot right after the reboot.
            let dev = factory.clone();
            dev.flash.borrow_mut().set_power_cut(Some(first));
            let mut acked = Acked::default();
            let mut lost = false;
            for _ in 0..MAX_BOOTS {
                match power_on(&dev, sc, &w, &mut acked) {
                    Ok(Next::PowerLost) => {
                        dev.flash.borrow_mut().restore_power();
                        lost = true;
                        break;
                    }
                    Ok(Next::Reboot) => {}
                    Ok(Next::Done) | Err(_) => break,
                }
            }
            if !lost {
                continue; // the single-cut sweep already judged this life
            }
            // Which boot-state writes does the recovery make?
            let after = dev.flash.borrow().ops();
            let dry = dev.clone();
            if live(&dry, sc, &w, &mut acked.clone()).is_err() {
                continue; // reported by the single-cut sweep
            }
            let later: Vec<(u64, Op)> = dry.flash.borrow().op_log()[after as usize..]
                .iter()
                .enumerate()
                .filter(|(_, op)| is_state_op(op))
                .map(|(j, op)| (after + j as u64, *op))
                .collect();
            for (j, op2) in later {
                for second in cuts_of(j, &op2, 0xf2) {
                    let d2 = dev.clone();
                    d2.flash.borrow_mut().set_power_cut(Some(second));
                    rep.run(
                        format!("{sc:?} {first:?} then {second:?}"),
                        &d2,
                        sc,
                        &w,
                        &mut acked.clone(),
                    );
                }
            }
        }
    }
}

#[test]
fn survives_power_cut_at_every_write_and_inside_each() {
    let mut total = 0;
    let mut failures = Vec::new();
    for sc in [Scenario::Update, Scenario::Rollback] {
        let mut single = Report {
            points: 0,
            failures: Vec::new(),
        };
        let ops = single_cuts(sc, &mut single);
        let mut double = Report {
            points: 0,
            failures: Vec::new(),
        };
        double_state_cuts(sc, &ops, &mut double);
        println!(
            "{sc:?}: {} flash operations; {} single cut points, {} double cut points in boot-state writes; {} violations",
            ops.len(),
            single.points,
            double.points,
            single.failures.len() + double.failures.len()
        );
        total += single.points + double.points;
        failures.extend(single.failures);
        failures.extend(double.failures);
    }
    println!("{total} cut points");
    for f in failures.iter().take(20) {
        println!("VIOLATION {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cut points violated an invariant",
        failures.len()
    );
    assert!(total > 10_000, "sweep too small: {total} cut points");
}
