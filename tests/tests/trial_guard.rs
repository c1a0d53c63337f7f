//! While a trial image runs unconfirmed, the confirmed slot is the device's only known-good
//! image. No cycle may write it: the device layer hands out no writer for the confirmed or
//! the running slot, and the cycle starts no install during a trial.

mod common;

use common::{Fleet, firmware, next_release};
use otter_agent::cycle::Outcome;
use otter_agent::device::DeviceError;
use otter_agent::{AfterBoot, Agent};
use otter_boot::layout::Slot;

const SIZE: usize = 128 * 1024;

fn refused(agent: &Agent, slot: Slot) -> DeviceError {
    match agent.device().writable(slot) {
        Ok(_) => panic!("slot {slot:?} is writable"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_during_an_unhealthy_trial_leaves_the_confirmed_slot_untouched() {
    let fleet = Fleet::start().await;
    let base = firmware(SIZE, 21);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, 22));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let mut device = fleet.device("SN-trial", &fleet.url, &v1).await;
    device.config.health_checks = vec![otter_agent::config::HealthCheck {
        command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        timeout: std::time::Duration::from_secs(10),
    }];

    // Before any trial: A is confirmed and running, B is the only writable slot.
    let agent = device.agent();
    let err = refused(&agent, Slot::A);
    assert!(err.to_string().contains("confirmed slot"), "{err}");
    assert_eq!(agent.device().writable(Slot::B).unwrap().slot(), Slot::B);
    assert!(matches!(
        agent.check().await.unwrap(),
        Outcome::Installed { slot: Slot::B, .. }
    ));
    drop(agent);

    // B boots on trial and fails its health check.
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::B, true));
    let agent = device.agent();
    assert!(matches!(
        agent.after_boot().await.unwrap(),
        AfterBoot::Unhealthy(_)
    ));
    let confirmed = device.slot_bytes(Slot::A);
    let trial = device.slot_bytes(Slot::B);

    // Neither slot is writable now: A is confirmed, B runs.
    let err = refused(&agent, Slot::A);
    assert!(err.to_string().contains("confirmed slot"), "{err}");
    let err = refused(&agent, Slot::B);
    assert!(err.to_string().contains("running slot"), "{err}");

    // A newer release is assigned; the cycle must not start an install.
    fleet
        .publish(fleet.image("1.2.0", &next_release(&base, 23)))
        .await;
    let outcome = agent.check().await.unwrap();
    assert_eq!(
        outcome,
        Outcome::TrialUnconfirmed {
            version: "1.1.0".parse().unwrap()
        }
    );
    assert_eq!(
        device.slot_bytes(Slot::A),
        confirmed,
        "confirmed slot changed"
    );
    assert_eq!(device.slot_bytes(Slot::B), trial, "running slot changed");
    let timeline = fleet.timeline(&device.id()).await;
    assert_eq!(
        timeline.iter().filter(|k| *k == "downloading").count(),
        1,
        "{timeline:?}"
    );

    // The bootloader still has its fallback: after the trial's boots it rolls back to A.
    let mut boots = 0;
    while device.reset().slot == Slot::B {
        boots += 1;
        assert!(boots < 3, "never rolled back");
    }
    assert_eq!(&device.slot_bytes(Slot::A)[..v1.len()], &v1[..]);
    fleet.stop().await;
}
