//! A device whose boot-state partition was damaged: the bootloader boots the best verified
//! image and writes nothing; the agent then rebuilds the state from the running image,
//! reports the repair, checks in, and can update again.

mod common;

use common::{Fleet, firmware, next_release};
use otter_agent::AfterBoot;
use otter_agent::after_boot::AfterBootError;
use otter_agent::cycle::Outcome;
use otter_agent::device::DeviceError;
use otter_boot::layout::Slot;

const SIZE: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_boot_state_is_rebuilt_reported_and_the_cycle_goes_on() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 1));
    fleet.publish(v1.clone()).await;
    let device = fleet.device("SN-REPAIR", &fleet.url, &v1).await;
    let id = device.id();

    // Scribble over the state partition of the flash file.
    let flash = device.state_dir().join("flash.img");
    let mut bytes = std::fs::read(&flash).unwrap();
    let state = device.config.layout.state;
    for (i, b) in bytes[state.offset as usize..(state.offset + state.size) as usize]
        .iter_mut()
        .enumerate()
    {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&flash, &bytes).unwrap();
    assert!(
        device.agent().device().status().is_err(),
        "state is unreadable"
    );
    let boot = device.reset();
    assert_eq!(boot.slot, Slot::A);
    assert!(boot.state_error.is_some(), "the bootloader saw the damage");

    // `check`: the state is rebuilt, the repair reported, and the device checks in.
    let agent = device.agent();
    assert!(matches!(
        agent.check().await.unwrap(),
        Outcome::UpToDate { .. }
    ));
    let status = agent.device().status().unwrap();
    assert_eq!((status.confirmed, status.trial), (Slot::A, None));
    assert_eq!(
        status.min_security_counter, 1,
        "the floor is the running image's"
    );
    let view = fleet.device_view(&id).await;
    assert_eq!(view["current_version"], "1.0.0", "checked in: {view}");
    let repairs: Vec<_> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "failed" && e["event"].to_string().contains("boot-state"))
        .collect();
    assert_eq!(repairs.len(), 1, "one repair reported: {view}");
    assert!(
        repairs[0]["event"].to_string().contains("unreadable"),
        "{}",
        repairs[0]
    );

    // The next boot is normal and updates work again.
    let boot = device.reset();
    assert_eq!(
        (boot.slot, boot.trial, boot.state_error),
        (Slot::A, false, None)
    );
    fleet
        .publish(fleet.image("1.1.0", &next_release(&firmware(SIZE, 1), 2)))
        .await;
    assert!(matches!(
        device.agent().check().await.unwrap(),
        Outcome::Installed { slot: Slot::B, .. }
    ));
    fleet.stop().await;
}

/// Scribbles over the state partition of the device's flash file.
fn scribble_state(device: &common::Device) {
    let flash = device.state_dir().join("flash.img");
    let mut bytes = std::fs::read(&flash).unwrap();
    let state = device.config.layout.state;
    for (i, b) in bytes[state.offset as usize..(state.offset + state.size) as usize]
        .iter_mut()
        .enumerate()
    {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&flash, &bytes).unwrap();
}

/// Trial fails, then the state is lost: a rejected image must not come back as confirmed.
/// Rolled back, its header is erased (the bootloader); lost before the rollback, it may boot
/// (it has the highest counter), but the agent refuses to rebuild a state confirming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_state_never_makes_a_rejected_trial_confirmed() {
    let fleet = Fleet::start().await;
    let base = firmware(SIZE, 31);
    let v1 = fleet.image("1.0.0", &base);
    fleet.publish(v1.clone()).await;
    fleet
        .publish(fleet.image("1.1.0", &next_release(&base, 32)))
        .await;
    let unhealthy = vec![otter_agent::config::HealthCheck {
        command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        timeout: std::time::Duration::from_secs(10),
    }];

    // Lost after the rollback: the rolled-back B no longer verifies, A boots and is rebuilt.
    let mut rolled = fleet.device("SN-LOST-1", &fleet.url, &v1).await;
    rolled.config.health_checks = unhealthy.clone();
    rolled.agent().check().await.unwrap();
    assert_eq!(rolled.reset().slot, Slot::B);
    assert!(matches!(
        rolled.agent().after_boot().await.unwrap(),
        AfterBoot::Unhealthy(_)
    ));
    assert_eq!(rolled.reset().slot, Slot::A, "rolled back");
    scribble_state(&rolled);
    let boot = rolled.reset();
    assert_eq!(
        (boot.slot, boot.header.version.to_string()),
        (Slot::A, "1.0.0".into())
    );
    rolled.agent().after_boot().await.unwrap();
    let status = rolled.agent().device().status().unwrap();
    assert_eq!((status.confirmed, status.trial), (Slot::A, None));

    // Lost after the abandon but before the reset: B boots, the rebuild is refused.
    let mut early = fleet.device("SN-LOST-2", &fleet.url, &v1).await;
    early.config.health_checks = unhealthy;
    early.agent().check().await.unwrap();
    assert_eq!(early.reset().slot, Slot::B);
    assert!(matches!(
        early.agent().after_boot().await.unwrap(),
        AfterBoot::Unhealthy(_)
    ));
    scribble_state(&early);
    assert_eq!(early.reset().slot, Slot::B, "the highest counter boots");
    let err = early.agent().after_boot().await.unwrap_err();
    assert!(
        matches!(
            err,
            AfterBootError::Device(DeviceError::RejectedImageRunning { slot: Slot::B, .. })
        ),
        "{err}"
    );
    assert!(
        early.agent().device().status().is_err(),
        "nothing confirmed the rejected image"
    );
    fleet.stop().await;
}

/// A device whose bootloader never stored a record (an older bootloader, or its first write
/// failed): the agent stores the factory image's counter as the floor before it installs
/// anything, so no older signed image can be put on trial before the first confirm, and the
/// state exists before a second image does.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_stores_the_factory_floor_before_its_first_install() {
    let fleet = Fleet::start().await;
    let base = firmware(SIZE, 41);
    let v1 = fleet.image_for(common::BOARD, "1.0.0", 5, &base);
    fleet.publish(v1.clone()).await;
    fleet
        .publish(fleet.image_for(common::BOARD, "1.1.0", 5, &next_release(&base, 42)))
        .await;
    let device = fleet.device("SN-SEAL", &fleet.url, &v1).await;
    let flash = device.state_dir().join("flash.img");
    let mut bytes = std::fs::read(&flash).unwrap();
    let state = device.config.layout.state;
    bytes[state.offset as usize..(state.offset + state.size) as usize].fill(0xff);
    std::fs::write(&flash, &bytes).unwrap();
    assert_eq!(
        device
            .agent()
            .device()
            .status()
            .unwrap()
            .min_security_counter,
        0,
        "never written"
    );

    assert!(matches!(
        device.agent().check().await.unwrap(),
        Outcome::Installed { slot: Slot::B, .. }
    ));
    let status = device.agent().device().status().unwrap();
    assert_eq!(status.confirmed, Slot::A);
    assert_eq!(
        status.min_security_counter, 5,
        "the factory image's counter"
    );
    assert!(
        status.trial.is_some(),
        "the install's trial request went through"
    );
    fleet.stop().await;
}
