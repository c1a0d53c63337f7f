//! Power loss at every flash operation of an update, with the real agent and otter-boot's
//! `decide()` on the device's file flash: the install into the inactive slot (by delta),
//! the trial request, the trial boot and the confirm. Power dies before an operation,
//! halfway through it, or inside a word or sector (old and new bits mixed). After each cut
//! the device powers on again: every boot must pick a verified image, and the device must
//! end on the new version, confirmed, within a few cycles.

mod common;

use common::{Device, Fleet, firmware, next_release};
use futures_util::StreamExt;
use otter_agent::Agent;
use otter_agent::flash::{PowerCut, Tear};
use otter_boot::layout::Slot;
use std::sync::Arc;

const SIZE: usize = 48 * 1024;

/// An agent on `device` whose flash loses power as `cut` says.
fn agent_with(device: &Device, cut: Option<PowerCut>) -> Agent {
    let mut config = device.config.clone();
    config.power_cut = cut;
    Agent::open(config)
        .unwrap()
        .with_reboot_hook(Arc::new(|| Ok(true)))
}

/// The update as the device lives it: a cycle, a reset, the after-boot confirm. Stops at
/// the first step once the power is gone (nothing runs on a dead device).
async fn update(device: &Device, cut: &PowerCut) {
    let agent = agent_with(device, Some(cut.clone()));
    let _ = agent.check().await;
    if cut.is_dead() {
        return;
    }
    let _ = otter_agent::sim::reset(agent.device());
    if cut.is_dead() {
        return;
    }
    let _ = agent.after_boot().await;
}

/// Powers the device on again until it runs `want` confirmed; every boot must verify.
async fn recover(device: &Device, want: &str) -> Result<u32, String> {
    for round in 1..=4 {
        let agent = agent_with(device, None);
        let boot = otter_agent::sim::reset(agent.device())
            .map_err(|e| format!("round {round}: no verified image boots: {e}"))?;
        let version = boot.header.version.to_string();
        if version != "1.0.0" && version != want {
            return Err(format!("round {round}: booted unexpected {version}"));
        }
        let agent = agent_with(device, None);
        agent
            .after_boot()
            .await
            .map_err(|e| format!("round {round}: after boot: {e}"))?;
        let status = agent
            .device()
            .status()
            .map_err(|e| format!("round {round}: boot state: {e}"))?;
        let running = agent
            .device()
            .slot_image(status.running())
            .map_err(|e| format!("round {round}: running slot: {e}"))?;
        if running.header.version.to_string() == want
            && status.trial.is_none()
            && status.confirmed == status.running()
        {
            return Ok(round);
        }
        // A failed cycle is fine as long as the next power-on recovers.
        let _ = agent.check().await;
    }
    Err("still not on the new version after 4 power-ons".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_power_cut_during_an_update_boots_a_verified_image_and_ends_updated() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 21));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 21), 22));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;

    // How many flash operations the update takes, uncut.
    let golden = fleet.device("SN-P0", &fleet.url, &v1).await;
    let counter = PowerCut::counting();
    update(&golden, &counter).await;
    let ops = counter.operations();
    assert_eq!(recover(&golden, "1.1.0").await, Ok(1), "the uncut update");
    assert!(
        ops > 10,
        "an update of {SIZE} bytes took only {ops} flash operations"
    );

    // Every cut point on its own device, a few at a time.
    let points: Vec<(u64, Tear)> = (0..ops)
        .flat_map(|op| [Tear::Before, Tear::Prefix, Tear::Inside].map(|t| (op, t)))
        .collect();
    let tried = points.len();
    let failures: Vec<String> = futures_util::stream::iter(points)
        .map(|(op, tear)| {
            let (fleet, v1) = (&fleet, &v1);
            async move {
                let device = fleet
                    .device(&format!("SN-P{op}-{tear:?}"), &fleet.url, v1)
                    .await;
                let factory = device.slot_bytes(Slot::A);
                let cut = PowerCut::at(op, tear);
                update(&device, &cut).await;
                let mut failures = Vec::new();
                if !cut.is_dead() {
                    failures.push(format!("cut at op {op} ({tear:?}) never happened"));
                }
                if let Err(e) = recover(&device, "1.1.0").await {
                    failures.push(format!("cut at op {op} ({tear:?}): {e}"));
                }
                // The factory image was the fallback all along: never written.
                if device.slot_bytes(Slot::A) != factory {
                    failures.push(format!("cut at op {op} ({tear:?}): slot A changed"));
                }
                failures
            }
        })
        .buffer_unordered(4)
        .concat()
        .await;
    println!(
        "power cuts: {tried} cut points over {ops} flash operations of an update, {} violations",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    fleet.stop().await;
}
