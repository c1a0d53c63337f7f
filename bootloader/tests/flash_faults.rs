//! Flash faults at boot: a slot that cannot be read, or a boot state that cannot be read or
//! written, never stops the device from booting a verified image, and never lets a trial
//! boot without its attempt counted on flash.

mod common;

use common::*;
use otter_boot::image::Version;
use otter_boot::sim::Failing;
use otter_boot::verify::{VerifyError, VerifyFailure};
use otter_boot::{BootError, Outcome, Partition, Slot};

/// A device with v1.0.0 (counter 1) confirmed in slot A, booted once.
fn factory() -> Device {
    Device::factory(&image((1, 0, 0), 1, 3000))
}

/// A factory device with v2.0.0 (counter 2) in slot B, its trial requested.
fn trial_pending() -> Device {
    let dev = factory();
    dev.write_slot(Slot::B, &image((2, 0, 0), 2, 4000)).unwrap();
    dev.control().request_trial(Slot::B).unwrap();
    dev
}

fn range(p: Partition) -> std::ops::Range<u32> {
    p.offset..p.offset + p.size
}

fn fail(dev: &Device, p: Partition, fails: Failing) {
    dev.flash.borrow_mut().add_bad_region(range(p), fails);
}

fn slot(s: Slot) -> Partition {
    layout().slot(s)
}

#[test]
fn boots_confirmed_slot_when_trial_slot_reads_fail() {
    let dev = trial_pending();
    fail(&dev, slot(Slot::B), Failing::READS);
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::A, false));
    assert_eq!(d.header.version, Version::new(1, 0, 0));
    assert_eq!(d.state_error, None, "the rejection was recorded");
    let s = dev.control().status().unwrap();
    assert_eq!((s.confirmed, s.trial), (Slot::A, None));
    assert_eq!(
        s.last_outcome,
        Outcome::TrialRejected {
            version: Version::new(2, 0, 0),
            reason: VerifyFailure::Flash
        }
    );
}

#[test]
fn boots_confirmed_slot_when_state_write_fails() {
    let dev = trial_pending();
    fail(&dev, layout().state(), Failing::WRITES);
    // However often it resets, the trial never boots while its attempt cannot be counted.
    for boot in 0..5 {
        let d = dev.control().decide().unwrap();
        assert_eq!((d.slot, d.trial), (Slot::A, false), "boot {boot}");
        assert!(
            d.state_error.is_some(),
            "boot {boot}: the failure is reported"
        );
    }
    let pending = dev.control().status().unwrap().trial.unwrap();
    assert_eq!((pending.attempts_left, pending.started), (3, false));
    // Once writes work again the trial boots, with its attempt counted.
    dev.flash.borrow_mut().heal();
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial, d.state_error), (Slot::B, true, None));
    let started = dev.control().status().unwrap().trial.unwrap();
    assert_eq!((started.attempts_left, started.started), (2, true));
}

#[test]
fn boots_confirmed_slot_when_the_rollback_cannot_be_recorded() {
    let dev = trial_pending();
    for _ in 0..3 {
        assert_eq!(dev.control().decide().unwrap().slot, Slot::B);
    }
    fail(&dev, layout().state(), Failing::WRITES);
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::A, false));
    assert!(d.state_error.is_some());
}

#[test]
fn falls_back_to_the_other_slot_when_confirmed_slot_reads_fail() {
    let dev = factory();
    dev.write_slot(Slot::B, &image((1, 1, 0), 1, 3500)).unwrap();
    fail(&dev, slot(Slot::A), Failing::READS);
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::B, true));
    assert_eq!(
        dev.control().status().unwrap().last_outcome,
        Outcome::FellBack {
            reason: VerifyFailure::Flash
        }
    );
}

#[test]
fn falls_back_to_the_other_slot_when_confirmed_slot_and_state_writes_fail() {
    let dev = factory();
    dev.write_slot(Slot::B, &image((1, 1, 0), 1, 3500)).unwrap();
    fail(&dev, slot(Slot::A), Failing::READS);
    fail(&dev, layout().state(), Failing::WRITES);
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::B, true));
    assert!(d.state_error.is_some());
}

#[test]
fn unreadable_slots_and_state_are_a_typed_error_not_a_jump() {
    let dev = trial_pending();
    fail(&dev, slot(Slot::A), Failing::READS);
    fail(&dev, slot(Slot::B), Failing::READS);
    match dev.control().decide() {
        Err(BootError::NoBootableImage { confirmed, other }) => {
            assert!(matches!(confirmed, VerifyError::Flash(_)));
            assert!(matches!(other, VerifyError::Flash(_)));
        }
        r => panic!("expected NoBootableImage, got {r:?}"),
    }
}

/// The device lives a scenario is built from.
fn scenarios() -> Vec<(&'static str, Device)> {
    let started = trial_pending();
    started.control().decide().unwrap();
    let exhausted = trial_pending();
    for _ in 0..3 {
        exhausted.control().decide().unwrap();
    }
    let confirmed_b = trial_pending();
    confirmed_b.control().decide().unwrap();
    confirmed_b.control().confirm().unwrap();
    let spare_b = factory();
    spare_b
        .write_slot(Slot::B, &image((1, 1, 0), 1, 3500))
        .unwrap();
    let damaged_a = trial_pending();
    damaged_a.flip_bit(Slot::A, 900);
    let never_booted = Device::new();
    never_booted
        .write_slot(Slot::A, &image((1, 0, 0), 1, 3000))
        .unwrap();
    vec![
        ("factory, never booted", never_booted),
        ("factory", factory()),
        ("trial pending", trial_pending()),
        ("trial started", started),
        ("trial out of attempts", exhausted),
        ("B confirmed, old A below the floor", confirmed_b),
        ("spare image in B", spare_b),
        ("trial pending, confirmed A damaged", damaged_a),
    ]
}

/// Every fault we model: reads of either slot, reads or writes of the state partition.
fn faults() -> Vec<Vec<(Partition, Failing)>> {
    let each = [
        (slot(Slot::A), Failing::READS),
        (slot(Slot::B), Failing::READS),
        (layout().state(), Failing::READS),
        (layout().state(), Failing::WRITES),
    ];
    (0..1u8 << each.len())
        .map(|mask| {
            each.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, f)| *f)
                .collect()
        })
        .collect()
}

#[test]
fn every_fault_combination_boots_a_verified_image_and_never_an_uncounted_trial() {
    let mut cases = 0;
    let mut violations = Vec::new();
    for (name, template) in scenarios() {
        for fault in faults() {
            cases += 1;
            let dev = template.clone();
            let before = dev.control().status().unwrap();
            let state_unreadable = fault.iter().any(|(p, f)| *p == layout().state() && f.reads);
            let state_unwritable = fault
                .iter()
                .any(|(p, f)| *p == layout().state() && f.programs);
            let floor = if state_unreadable {
                0
            } else {
                before.min_security_counter
            };
            // The slots a correct bootloader may boot: readable, verifying at the floor.
            let bootable: Vec<Slot> = [Slot::A, Slot::B]
                .into_iter()
                .filter(|&s| !fault.iter().any(|(p, f)| *p == slot(s) && f.reads))
                .filter(|&s| dev.control().verify_slot(s, floor).is_ok())
                .collect();
            for (p, f) in &fault {
                fail(&dev, *p, *f);
            }
            let what = format!("{name} with faults {fault:?}");
            // Several resets under the same fault: each one must boot a verified image.
            for boot in 0..4 {
                let result = dev.control().decide();
                let d = match (result, bootable.is_empty()) {
                    (Ok(d), false) => d,
                    (Err(BootError::NoBootableImage { .. }), true) => break,
                    (r, _) => {
                        violations
                            .push(format!("{what}, boot {boot}: {r:?}, bootable {bootable:?}"));
                        break;
                    }
                };
                if !bootable.contains(&d.slot) {
                    violations.push(format!("{what}, boot {boot}: booted {}", d.slot));
                }
                // With a readable state and a verifying confirmed slot, anything else boots
                // only as a trial whose attempt was written.
                let confirmed_ok = bootable.contains(&before.confirmed);
                if !state_unreadable
                    && confirmed_ok
                    && d.slot != before.confirmed
                    && state_unwritable
                {
                    violations.push(format!(
                        "{what}, boot {boot}: booted trial slot {} without recording the attempt",
                        d.slot
                    ));
                }
            }
        }
    }
    println!("{cases} scenario and fault combinations");
    for v in &violations {
        println!("VIOLATION {v}");
    }
    assert!(violations.is_empty(), "{} violations", violations.len());
    assert_eq!(cases, 8 * 16);
}

/// The state partition's flash, whose `lie_at`-th program lands on flash and then reports
/// failure anyway (as a chip whose status read fails after the program did its work).
struct LyingState<'a> {
    inner: otter_boot::flash::Shared<'a, Flash>,
    programs: usize,
    lie_at: usize,
}

impl embedded_storage::nor_flash::ErrorType for LyingState<'_> {
    type Error = otter_boot::flash::SharedError<otter_boot::sim::SimError>;
}

impl embedded_storage::nor_flash::ReadNorFlash for LyingState<'_> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl embedded_storage::nor_flash::NorFlash for LyingState<'_> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.inner.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.inner.write(offset, bytes)?;
        self.programs += 1;
        if self.programs == self.lie_at {
            return Err(otter_boot::flash::SharedError::Device(
                otter_boot::sim::SimError::BadRegion { offset },
            ));
        }
        Ok(())
    }
}

#[test]
fn the_boot_follows_the_state_on_flash_when_a_write_lands_but_reports_failure() {
    use otter_boot::flash::Shared;
    use otter_boot::{BootConfig, BootControl};
    let mut checked = 0;
    for lie_at in 1..=8 {
        let dev = trial_pending();
        let decision = {
            let state = LyingState {
                inner: Shared::new(&dev.flash),
                programs: 0,
                lie_at,
            };
            let mut ctl = BootControl::new(
                layout(),
                Shared::new(&dev.flash),
                Shared::new(&dev.flash),
                state,
                dev.anchors(),
                BootConfig::default(),
            )
            .unwrap();
            let d = ctl.decide().unwrap();
            let (_, _, state) = ctl.into_parts();
            (d, state.programs)
        };
        let (d, programs) = decision;
        if programs < lie_at {
            break; // the decision wrote less than that: every lie point is covered
        }
        checked += 1;
        // What the agent will read is what really booted: it never believes a trial runs
        // (and confirms it) while the old image runs, nor the other way round.
        let s = dev.control().status().unwrap();
        assert_eq!(
            s.running(),
            d.slot,
            "lie at program {lie_at}: {d:?}, state {s:?}"
        );
    }
    assert!(checked > 0, "the trial's record was written at least once");
}
