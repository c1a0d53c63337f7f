//! A staged rollout across 50 simulated devices, each running the real agent on simulated
//! flash: v2 goes through every stage to all of them; v3, which fails its health check on
//! boot, rolls back on the first stage's devices, the server pauses the rollout by itself, and
//! no device outside that stage ever downloads v3.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Device, Fleet, RolloutSpec, firmware, next_release};
use otter_agent::after_boot::AfterBoot;
use otter_agent::cycle::Outcome;
use serde_json::Value;

const DEVICES: usize = 50;
const SIZE: usize = 24 * 1024;

/// One round of a device's life: what the agent does after a boot, then a check; a reset
/// whenever the agent asked for one (an installed update) or abandoned a trial.
async fn live(device: &Device) {
    let agent = device.agent();
    if let Ok(AfterBoot::Unhealthy(_)) = agent.after_boot().await {
        device.reset();
        return;
    }
    if let Ok(Outcome::Installed { .. }) = agent.check().await {
        device.reset();
    }
}

/// Runs rounds of every device until `done` says so of the rollout (at most a minute).
async fn run_until(
    fleet: &Fleet,
    devices: &[Device],
    rollout: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        futures_util::future::join_all(devices.iter().map(live)).await;
        let view = fleet.rollout(rollout).await;
        if done(&view) {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "rollout {rollout} did not get there: {}",
        fleet.rollout(rollout).await
    )
}

fn admitted(view: &Value) -> u64 {
    (view["per_stage"].as_array().unwrap().iter())
        .map(|s| s["admitted"].as_u64().unwrap())
        .sum()
}

fn count(view: &Value, state: &str) -> u64 {
    (view["per_stage"].as_array().unwrap().iter())
        .map(|s| s["states"][state].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_devices_through_a_healthy_rollout_and_a_failing_one() {
    let fleet = Fleet::start_with(|c, _| c.rollout_tick = Duration::from_millis(200)).await;
    let base = firmware(SIZE, 50);
    let v1 = fleet.image("1.0.0", &base);
    fleet.publish_only(v1.clone()).await;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(fleet.device(&format!("SN-{i:02}"), &fleet.url, &v1).await);
    }

    // v2 through 10 %, 50 % and 100 %: every device ends healthy on it.
    let v2_bytes = next_release(&base, 51);
    let v2 = fleet.publish_only(fleet.image("1.1.0", &v2_bytes)).await;
    let spec = RolloutSpec {
        // A soak of a second: every device checks in within it, so no stage passes empty.
        stages: [("10%", "1s"), ("50%", "1s"), ("100%", "1s")]
            .map(|(p, s)| (p.to_owned(), s.to_owned()))
            .to_vec(),
        max_failures: "20%".into(),
        min_devices: 3,
        ceiling: "100%".into(),
    };
    let healthy = fleet.create_rollout(&v2, &spec).await;
    fleet.rollout_command(&healthy, "start").await;
    let view = run_until(&fleet, &devices, &healthy, |v| {
        v["state"] == "completed" && count(v, "healthy") == DEVICES as u64
    })
    .await;
    assert_eq!(admitted(&view), DEVICES as u64, "{view}");
    assert_eq!(count(&view, "healthy"), DEVICES as u64, "{view}");
    let stages: Vec<u64> = (view["per_stage"].as_array().unwrap().iter())
        .map(|s| s["admitted"].as_u64().unwrap())
        .collect();
    // Buckets spread the fleet: each stage admitted devices, roughly in proportion.
    assert!(stages[0] <= 12 && stages[2] >= 15, "per stage {stages:?}");
    let changes: Vec<String> = (view["timeline"].as_array().unwrap().iter())
        .map(|e| e["change"].as_str().unwrap().to_owned())
        .collect();
    for change in [
        "stage 1 -> stage 2",
        "stage 2 -> stage 3",
        "running -> completed",
    ] {
        assert!(changes.iter().any(|c| c.contains(change)), "{changes:?}");
    }
    for device in &devices {
        let view = fleet.device_view(&device.id()).await;
        assert_eq!(view["current_version"], "1.1.0");
    }

    // v3 fails its health check on every device that boots it.
    let v3 = fleet
        .publish_only(fleet.image("1.2.0", &next_release(&v2_bytes, 52)))
        .await;
    for device in &mut devices {
        device.config.health_checks = vec![otter_agent::config::HealthCheck {
            command: vec!["sh".into(), "-c".into(), "exit 1".into()],
            timeout: Duration::from_secs(10),
        }];
    }
    // The threshold applies from the first device: a first stage of 10 % of 50 devices holds
    // fewer than 3 one run in ten (the buckets of fresh device ids), and under a minimum of 3
    // the rollout rightly neither pauses nor widens.
    let failing_spec = RolloutSpec {
        min_devices: 1,
        ..spec.clone()
    };
    let failing = fleet.create_rollout(&v3, &failing_spec).await;
    fleet.rollout_command(&failing, "start").await;
    let view = run_until(&fleet, &devices, &failing, |v| v["state"] == "paused").await;
    // Paused at the first stage that admitted anyone (stage 1 but for an empty bucket range).
    let first = (view["per_stage"].as_array().unwrap().iter())
        .position(|s| s["admitted"].as_u64().unwrap() > 0)
        .unwrap();
    assert_eq!(
        view["stage"],
        first + 1,
        "paused at the first stage: {view}"
    );
    let in_stage = admitted(&view);
    assert!(in_stage >= 1, "{view}");
    let pause = (view["timeline"].as_array().unwrap().iter())
        .find(|e| e["change"] == "running -> paused")
        .unwrap_or_else(|| panic!("{view}"));
    assert_eq!(pause["actor"], "engine");
    // Let the rolled-back devices settle and report, then look at who fetched v3.
    for _ in 0..3 {
        futures_util::future::join_all(devices.iter().map(live)).await;
    }
    let view = fleet.rollout(&failing).await;
    assert_eq!(view["state"], "paused");
    assert_eq!(
        admitted(&view),
        in_stage,
        "a paused rollout admits nobody new"
    );
    let v3_name = v3["target_name"].as_str().unwrap().to_owned();
    let mut fetched = BTreeSet::new();
    for device in &devices {
        let id = device.id();
        let view = fleet.device_view(&id).await;
        let downloaded_v3 = (view["timeline"].as_array().unwrap().iter()).any(|e| {
            e["kind"] == "downloading"
                && e["event"]["target"]
                    .as_str()
                    .is_some_and(|t| t == v3_name || t.contains("1.1.0_1.2.0"))
        });
        if downloaded_v3 {
            fetched.insert(id.clone());
        }
        assert_eq!(view["current_version"], "1.1.0", "{id} still runs v2");
    }
    assert_eq!(
        fetched.len() as u64,
        in_stage,
        "only the first stage's devices fetched v3"
    );
    assert_eq!(
        count(&view, "rolled_back") + count(&view, "failed"),
        in_stage,
        "{view}"
    );
    fleet.stop().await;
}
