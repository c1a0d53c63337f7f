//! Rebuilding an unreadable boot state from the running image: the new record confirms
//! the image that runs, with its security counter as the floor, and a power cut at any
//! point of the rebuild leaves a device that boots a verified image and can finish it.

mod common;

use common::*;
use embedded_storage::nor_flash::NorFlash;
use otter_boot::image::Version;
use otter_boot::sim::{Failing, PowerCut};
use otter_boot::state::StateError;
use otter_boot::{BootError, BootState, Outcome, Slot};

/// A device whose B (v2.0.0, counter 2) was confirmed over A (v1.0.0, counter 1), then
/// whose state partition was scribbled over.
fn corrupted() -> (Device, Vec<u8>, Vec<u8>) {
    let a = image((1, 0, 0), 1, 3000);
    let b = image((2, 0, 0), 2, 4000);
    let dev = Device::factory(&a);
    dev.write_slot(Slot::B, &b).unwrap();
    dev.control().request_trial(Slot::B).unwrap();
    dev.control().decide().unwrap();
    dev.control().confirm().unwrap();
    scribble(&dev);
    (dev, a, b)
}

fn scribble(dev: &Device) {
    let state = layout().state();
    let mut f = dev.flash.borrow_mut();
    let bytes = &mut f.bytes_mut()[state.offset as usize..(state.offset + state.size) as usize];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
}

const REBUILT: BootState = BootState {
    confirmed: Slot::B,
    trial: None,
    min_security_counter: 2,
    last_outcome: Outcome::None,
};

#[test]
fn rebuilds_an_unreadable_state_from_the_running_image() {
    let (dev, _, _) = corrupted();
    assert_eq!(dev.control().status(), Err(StateError::Corrupted));
    let d = dev.control().decide().unwrap();
    assert_eq!(d.slot, Slot::B);
    assert_eq!(dev.control().rebuild_state(), Ok(REBUILT));
    assert_eq!(dev.control().status(), Ok(REBUILT));
    // Booting and updating work again, and the floor holds: A's counter 1 is refused.
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial, d.state_error), (Slot::B, false, None));
    assert!(matches!(
        dev.control().request_trial(Slot::A),
        Err(BootError::Verify(
            otter_boot::verify::VerifyError::Downgrade { .. }
        ))
    ));
    dev.write_slot(Slot::A, &image((3, 0, 0), 3, 3000)).unwrap();
    assert_eq!(
        dev.control().request_trial(Slot::A).unwrap().version,
        Version::new(3, 0, 0)
    );
}

#[test]
fn refuses_to_rebuild_a_readable_state() {
    let (dev, _, _) = corrupted();
    dev.control().rebuild_state().unwrap();
    let ops = dev.flash.borrow().ops();
    assert_eq!(dev.control().rebuild_state(), Err(BootError::StateReadable));
    assert_eq!(dev.flash.borrow().ops(), ops, "nothing written");
    // A fresh device's empty state is readable too: nothing to rebuild.
    let fresh = Device::new();
    fresh
        .write_slot(Slot::A, &image((1, 0, 0), 1, 3000))
        .unwrap();
    assert_eq!(
        fresh.control().rebuild_state(),
        Err(BootError::StateReadable)
    );
}

#[test]
fn refuses_to_erase_a_state_it_cannot_read_at_all() {
    let dev = Device::new();
    dev.write_slot(Slot::A, &image((1, 0, 0), 1, 3000)).unwrap();
    let state = layout().state();
    dev.flash
        .borrow_mut()
        .add_bad_region(state.offset..state.offset + state.size, Failing::READS);
    let ops = dev.flash.borrow().ops();
    assert!(matches!(
        dev.control().rebuild_state(),
        Err(BootError::State(StateError::Flash(_)))
    ));
    assert_eq!(dev.flash.borrow().ops(), ops, "nothing erased");
}

#[test]
fn an_erased_state_beside_two_images_is_lost_not_factory_fresh() {
    // The state of a device with B confirmed over an older A, erased (as a rebuild cut
    // after its erase leaves it): read as factory-fresh it would boot A below the floor.
    let (dev, _, _) = corrupted();
    let state = layout().state();
    dev.flash
        .borrow_mut()
        .erase(state.offset, state.offset + state.size)
        .unwrap();
    assert_eq!(dev.control().status(), Err(StateError::Lost));
    let d = dev.control().decide().unwrap();
    assert_eq!(
        (d.slot, d.header.security_counter, d.state_error),
        (Slot::B, 2, Some(StateError::Lost)),
        "the highest counter boots, as with any unreadable state"
    );
    assert_eq!(dev.control().rebuild_state(), Ok(REBUILT));
}

/// The sweep's promise, per cut point: the next boot runs a verified image whose security
/// counter is at least the floor the device had acknowledged before the rebuild.
#[test]
fn survives_power_cut_at_every_point_of_the_rebuild() {
    let (dev, a, b) = corrupted();
    let floor = REBUILT.min_security_counter;
    let start = dev.flash.borrow().ops();
    let dry = dev.clone();
    dry.control().rebuild_state().unwrap();
    let ops = dry.flash.borrow().op_log()[start as usize..].to_vec();
    assert!(!ops.is_empty());
    let (mut points, mut still_corrupt, mut lost, mut rebuilt) = (0, 0, 0, 0);
    let mut violations = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let index = start + i as u64;
        let words = op.tear_points(WRITE);
        let mut cuts = vec![PowerCut::Before { op: index }];
        cuts.extend((1..words).map(|words| PowerCut::Prefix { op: index, words }));
        cuts.extend((0..words).map(|at| PowerCut::Inside {
            op: index,
            at,
            seed: index << 16 ^ u64::from(at),
        }));
        for cut in cuts {
            points += 1;
            let d = dev.clone();
            d.flash.borrow_mut().set_power_cut(Some(cut));
            if d.control().rebuild_state().is_ok() {
                violations.push(format!("{cut:?}: rebuild reported success"));
                continue;
            }
            d.flash.borrow_mut().restore_power();
            // The next boot runs a verified image, never one below the floor.
            let boot = match d.control().decide() {
                Ok(boot) => boot,
                Err(e) => {
                    violations.push(format!("{cut:?}: no boot: {e:?}"));
                    continue;
                }
            };
            let expected = if boot.slot == Slot::A { &a } else { &b };
            if &d.slot_bytes(boot.slot, expected.len()) != expected {
                violations.push(format!("{cut:?}: booted slot {} unverified", boot.slot));
            }
            if boot.header.security_counter < floor {
                violations.push(format!(
                    "{cut:?}: downgrade: booted counter {} below the floor {floor}",
                    boot.header.security_counter
                ));
            }
            // And the state is still unreadable (or lost: erased beside two images), and
            // the rebuild then succeeds, or it is rebuilt. Never factory-fresh.
            match d.control().status() {
                Err(e) => {
                    if e == StateError::Lost {
                        lost += 1;
                    } else {
                        still_corrupt += 1;
                    }
                    if d.control().rebuild_state() != Ok(REBUILT) {
                        violations.push(format!("{cut:?}: the later rebuild failed"));
                    }
                }
                Ok(s) if s == REBUILT => rebuilt += 1,
                Ok(s) => violations.push(format!("{cut:?}: unexpected state {s:?}")),
            }
        }
    }
    println!(
        "{} rebuild ops, {points} cut points: {still_corrupt} left the state unreadable, \
         {lost} erased (lost), {rebuilt} rebuilt; {} violations",
        ops.len(),
        violations.len()
    );
    for v in violations.iter().take(10) {
        println!("VIOLATION {v}");
    }
    assert!(violations.is_empty());
    assert!(
        still_corrupt > 0 && lost > 0,
        "the sweep reached both sides of the erase"
    );
}
