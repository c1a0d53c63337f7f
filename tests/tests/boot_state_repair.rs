//! A device whose boot-state partition was damaged: the bootloader boots the best verified
//! image and writes nothing; the agent then rebuilds the state from the running image,
//! reports the repair, checks in, and can update again.

mod common;

use common::{Fleet, firmware, next_release};
use otter_agent::cycle::Outcome;
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
