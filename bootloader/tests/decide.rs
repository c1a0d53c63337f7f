//! Every path of the boot decision and of the device-side state API.

mod common;

use common::*;
use otter_boot::image::Version;
use otter_boot::state::{StateError, Trial};
use otter_boot::verify::{VerifyError, VerifyFailure};
use otter_boot::{BootError, Outcome, Slot};

/// A device with v1.0.0 (counter 1) in slot A, as from the factory, booted once.
fn factory() -> (Device, Vec<u8>) {
    let a = image((1, 0, 0), 1, 3000);
    (Device::factory(&a), a)
}

/// Installs v2.0.0 (counter 2) into B and requests its trial.
fn stage_update(dev: &Device) -> Vec<u8> {
    let b = image((2, 0, 0), 2, 4000);
    dev.write_slot(Slot::B, &b).unwrap();
    dev.control().request_trial(Slot::B).unwrap();
    b
}

#[test]
fn the_first_boot_stores_the_factory_floor_and_later_boots_write_nothing() {
    let dev = Device::new();
    dev.write_slot(Slot::A, &image((1, 0, 0), 5, 3000)).unwrap();
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial, d.state_error), (Slot::A, false, None));
    let sealed = dev.control().status().unwrap();
    assert_eq!(
        (sealed.confirmed, sealed.trial, sealed.min_security_counter),
        (Slot::A, None, 5),
        "the factory image's counter is the floor from the first boot on"
    );
    // So an older signed image can not be put on trial before the first confirm.
    dev.write_slot(Slot::B, &image((0, 9, 0), 4, 3000)).unwrap();
    assert!(matches!(
        dev.control().request_trial(Slot::B),
        Err(BootError::Verify(VerifyError::Downgrade {
            security_counter: 4,
            minimum: 5
        }))
    ));
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::A, false));
    assert_eq!(dev.control().status(), Ok(sealed));
}

#[test]
fn the_device_side_stores_the_factory_record_once() {
    let dev = Device::new();
    dev.write_slot(Slot::A, &image((1, 0, 0), 5, 3000)).unwrap();
    let sealed = dev.control().seal_factory_state().unwrap().unwrap();
    assert_eq!(
        (sealed.confirmed, sealed.min_security_counter),
        (Slot::A, 5)
    );
    assert_eq!(dev.control().status(), Ok(sealed));
    let ops = dev.flash.borrow().ops();
    assert_eq!(dev.control().seal_factory_state(), Ok(None));
    assert_eq!(
        dev.flash.borrow().ops(),
        ops,
        "a stored record is left alone"
    );
}

#[test]
fn boots_the_factory_image_without_writing_state() {
    let (dev, _) = factory();
    let ops = dev.flash.borrow().ops();
    let d = dev.control().decide().unwrap();
    assert_eq!(
        (d.slot, d.trial, d.header.version),
        (Slot::A, false, Version::new(1, 0, 0))
    );
    assert_eq!(
        dev.flash.borrow().ops(),
        ops,
        "a plain boot must not write flash"
    );
}

#[test]
fn nothing_bootable_is_a_typed_error_not_a_jump() {
    let dev = Device::new();
    match dev.control().decide() {
        Err(BootError::NoBootableImage { confirmed, other }) => {
            assert!(matches!(confirmed, VerifyError::Image(_)));
            assert!(matches!(other, VerifyError::Image(_)));
        }
        other => panic!("expected NoBootableImage, got {other:?}"),
    }
}

#[test]
fn a_trial_boots_and_counts_the_attempt_before_the_jump() {
    let (dev, _) = factory();
    stage_update(&dev);
    let pending = dev.control().status().unwrap().trial.unwrap();
    assert_eq!((pending.attempts_left, pending.started), (3, false));
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::B, true));
    let s = dev.control().status().unwrap();
    assert_eq!(
        s.trial,
        Some(Trial {
            slot: Slot::B,
            version: Version::new(2, 0, 0),
            attempts_left: 2,
            started: true
        })
    );
    assert_eq!(s.running(), Slot::B);
    assert_eq!(s.confirmed, Slot::A);
}

#[test]
fn confirm_makes_the_trial_permanent_and_raises_the_floor() {
    let (dev, _) = factory();
    stage_update(&dev);
    dev.control().decide().unwrap();
    let h = dev.control().confirm().unwrap();
    assert_eq!(h.version, Version::new(2, 0, 0));
    let s = dev.control().status().unwrap();
    assert_eq!(
        (s.confirmed, s.trial, s.min_security_counter),
        (Slot::B, None, 2)
    );
    assert_eq!(
        s.last_outcome,
        Outcome::Confirmed {
            version: Version::new(2, 0, 0)
        }
    );
    for _ in 0..5 {
        let d = dev.control().decide().unwrap();
        assert_eq!((d.slot, d.trial), (Slot::B, false));
    }
}

#[test]
fn an_unconfirmed_trial_rolls_back_after_its_attempts() {
    let (dev, _) = factory();
    stage_update(&dev);
    for attempt in 0..3 {
        let d = dev.control().decide().unwrap();
        assert_eq!(d.slot, Slot::B, "attempt {attempt}");
    }
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::A, false));
    let s = dev.control().status().unwrap();
    assert_eq!((s.confirmed, s.trial), (Slot::A, None));
    assert_eq!(
        s.last_outcome,
        Outcome::RolledBack {
            from: Version::new(2, 0, 0)
        }
    );
    assert_eq!(
        s.min_security_counter, 1,
        "the factory floor, nothing confirmed since"
    );
    assert_eq!(dev.control().confirm(), Err(BootError::NotOnTrial));
}

/// Scribbles over the state partition: page markers and items become garbage.
fn scribble_state(dev: &Device) {
    let state = layout().state();
    let mut f = dev.flash.borrow_mut();
    let bytes = &mut f.bytes_mut()[state.offset as usize..(state.offset + state.size) as usize];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
}

#[test]
fn a_rolled_back_trial_never_boots_again_even_when_the_state_is_lost() {
    let (dev, a) = factory();
    stage_update(&dev);
    for _ in 0..3 {
        dev.control().decide().unwrap();
    }
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::A, false), "rolled back");
    assert!(
        matches!(
            dev.control().verify_slot(Slot::B, 0),
            Err(VerifyError::Image(_))
        ),
        "the rolled-back image's header is erased"
    );
    assert_eq!(
        dev.slot_bytes(Slot::A, a.len()),
        a,
        "the confirmed slot untouched"
    );
    // Without a state, the highest verified counter boots: it must not be the given-up B.
    scribble_state(&dev);
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.header.version), (Slot::A, Version::new(1, 0, 0)));
}

#[test]
fn a_trial_rejected_at_boot_is_erased_too() {
    let (dev, _) = factory();
    stage_update(&dev);
    // A read fault could come and go; a trial the bootloader refused is given up for good.
    dev.flip_bit(Slot::B, 900);
    let d = dev.control().decide().unwrap();
    assert_eq!(d.slot, Slot::A);
    dev.flip_bit(Slot::B, 900);
    assert!(matches!(
        dev.control().verify_slot(Slot::B, 0),
        Err(VerifyError::Image(_))
    ));
}

#[test]
fn a_fallback_trial_that_runs_out_is_not_erased_while_the_confirmed_slot_is_damaged() {
    let (dev, _) = factory();
    let b = image((1, 1, 0), 1, 3500);
    dev.write_slot(Slot::B, &b).unwrap();
    dev.flip_bit(Slot::A, 700);
    assert_eq!(dev.control().decide().unwrap().slot, Slot::B, "fell back");
    dev.control().abandon_trial().unwrap();
    // The only image that verifies is the abandoned fall-back: it is kept and boots again.
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::B, true));
    assert_eq!(dev.slot_bytes(Slot::B, b.len()), b);
}

#[test]
fn a_trial_image_damaged_after_the_request_is_never_booted() {
    let (dev, _) = factory();
    stage_update(&dev);
    dev.flip_bit(Slot::B, 500);
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::A, false));
    let s = dev.control().status().unwrap();
    assert_eq!(s.trial, None);
    assert_eq!(
        s.last_outcome,
        Outcome::TrialRejected {
            version: Version::new(2, 0, 0),
            reason: VerifyFailure::PayloadHash
        }
    );
}

#[test]
fn request_trial_refuses_the_confirmed_slot() {
    let (dev, _) = factory();
    assert_eq!(
        dev.control().request_trial(Slot::A),
        Err(BootError::SlotIsConfirmed)
    );
}

#[test]
fn request_trial_refuses_an_image_that_does_not_verify() {
    let (dev, _) = factory();
    let mut b = image((2, 0, 0), 2, 4000);
    b[200] ^= 1;
    dev.write_slot(Slot::B, &b).unwrap();
    assert_eq!(
        dev.control().request_trial(Slot::B),
        Err(BootError::Verify(VerifyError::PayloadHashMismatch))
    );
    assert_eq!(dev.control().status().unwrap().trial, None);
}

#[test]
fn request_trial_refuses_while_a_trial_runs() {
    let (dev, _) = factory();
    stage_update(&dev);
    dev.control().decide().unwrap();
    assert_eq!(
        dev.control().request_trial(Slot::B),
        Err(BootError::TrialInProgress)
    );
}

#[test]
fn a_pending_trial_can_be_replaced_before_it_boots() {
    let (dev, _) = factory();
    stage_update(&dev);
    let b2 = image((2, 1, 0), 2, 4100);
    dev.write_slot(Slot::B, &b2).unwrap();
    dev.control().request_trial(Slot::B).unwrap();
    let d = dev.control().decide().unwrap();
    assert_eq!(d.header.version, Version::new(2, 1, 0));
}

#[test]
fn confirm_refuses_a_trial_that_never_booted() {
    let (dev, _) = factory();
    stage_update(&dev);
    assert_eq!(dev.control().confirm(), Err(BootError::NotOnTrial));
}

#[test]
fn refuses_to_trial_or_fall_back_to_a_lower_security_counter() {
    let (dev, _) = factory();
    stage_update(&dev);
    dev.control().decide().unwrap();
    dev.control().confirm().unwrap(); // floor is now 2
    // An old image (counter 1) written to A can neither be put on trial...
    let old = image((1, 5, 0), 1, 3000);
    dev.write_slot(Slot::A, &old).unwrap();
    assert_eq!(
        dev.control().request_trial(Slot::A),
        Err(BootError::Verify(VerifyError::Downgrade {
            security_counter: 1,
            minimum: 2
        }))
    );
    // ...nor booted as a fallback when the confirmed image is damaged.
    dev.flip_bit(Slot::B, 300);
    match dev.control().decide() {
        Err(BootError::NoBootableImage { other, .. }) => {
            assert!(matches!(other, VerifyError::Downgrade { .. }))
        }
        r => panic!("expected NoBootableImage, got {r:?}"),
    }
}

#[test]
fn a_same_counter_older_version_may_still_boot() {
    // The security counter, not the version, is the bootloader's floor: a vendor can ship a
    // fix as a lower version with the same counter. Version order is the agent's rule.
    let (dev, _) = factory();
    stage_update(&dev);
    dev.control().decide().unwrap();
    dev.control().confirm().unwrap();
    dev.write_slot(Slot::A, &image((1, 9, 0), 2, 3000)).unwrap();
    assert!(dev.control().request_trial(Slot::A).is_ok());
}

#[test]
fn a_damaged_confirmed_slot_falls_back_to_the_other_and_it_can_be_confirmed() {
    let (dev, _) = factory();
    let b = image((1, 1, 0), 1, 3500);
    dev.write_slot(Slot::B, &b).unwrap();
    dev.flip_bit(Slot::A, 700);
    let d = dev.control().decide().unwrap();
    assert_eq!((d.slot, d.trial), (Slot::B, true));
    let s = dev.control().status().unwrap();
    assert_eq!(
        s.last_outcome,
        Outcome::FellBack {
            reason: VerifyFailure::PayloadHash
        }
    );
    assert_eq!(s.running(), Slot::B);
    dev.control().confirm().unwrap();
    let s = dev.control().status().unwrap();
    assert_eq!((s.confirmed, s.min_security_counter), (Slot::B, 1));
}

#[test]
fn an_image_for_another_board_is_refused_as_a_trial() {
    let (dev, _) = factory();
    let key = vendor_key();
    let p = payload(100, 3);
    let mut h = header_for(&key, Version::new(2, 0, 0), 2, &p);
    h.hardware_id = otter_boot::image::HardwareId::new("other").unwrap();
    dev.write_slot(Slot::B, &sign(&key, &h, &p)).unwrap();
    assert!(matches!(
        dev.control().request_trial(Slot::B),
        Err(BootError::Verify(VerifyError::WrongHardware { .. }))
    ));
}

#[test]
fn unreadable_state_still_boots_the_best_verified_slot_and_writes_nothing() {
    let (dev, _) = factory();
    let b = image((2, 0, 0), 2, 4000);
    dev.write_slot(Slot::B, &b).unwrap();
    // Scribble over the state partition: page markers and items become garbage.
    let state = layout().state();
    {
        let mut f = dev.flash.borrow_mut();
        let bytes = f.bytes_mut();
        for (i, b) in bytes[state.offset as usize..(state.offset + state.size) as usize]
            .iter_mut()
            .enumerate()
        {
            *b = (i as u8).wrapping_mul(37) ^ 0x5a;
        }
    }
    assert_eq!(dev.control().status(), Err(StateError::Corrupted));
    let ops = dev.flash.borrow().ops();
    let d = dev.control().decide().unwrap();
    assert_eq!(
        (d.slot, d.trial),
        (Slot::B, false),
        "highest security counter wins"
    );
    assert_eq!(dev.flash.borrow().ops(), ops, "nothing written");
}
