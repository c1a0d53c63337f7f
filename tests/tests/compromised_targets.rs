//! A compromised online targets key: the server lists vendor-signed images under whatever
//! version, board and counter it likes, with deltas to them, and its director assigns them.
//! The agent trusts only the vendor's signed header for version, board and counter: every
//! such listing is refused after the write and before the trial request, by delta and by
//! full image, with the running slot byte-identical, no trial requested, the written slot
//! unbootable and the reason reported.

mod common;

use common::smuggle::{smuggle_delta, smuggle_release};
use common::{BOARD, Fleet, firmware, next_release};
use otter_boot::layout::Slot;
use serde_json::Value;

const SIZE: usize = 128 * 1024;

/// One attack: the image the vendor once signed, and how the server lists it.
struct Attack {
    name: &'static str,
    /// The running image's security counter.
    running_counter: u32,
    /// What the vendor-signed header says.
    board: &'static str,
    version: &'static str,
    counter: u32,
    /// The version TUF and the director claim.
    listed: &'static str,
    /// Part of the refusal reason.
    reason: &'static str,
}

const ATTACKS: [Attack; 4] = [
    Attack {
        name: "old image relisted as 9.9.9",
        running_counter: 1,
        board: BOARD,
        version: "0.9.0",
        counter: 1,
        listed: "9.9.9",
        reason: "signed header says version 0.9.0, but 9.9.9 was planned",
    },
    Attack {
        name: "header version differs from the plan",
        running_counter: 1,
        board: BOARD,
        version: "2.0.0",
        counter: 1,
        listed: "1.2.0",
        reason: "signed header says version 2.0.0, but 1.2.0 was planned",
    },
    Attack {
        name: "lower security counter",
        running_counter: 2,
        board: BOARD,
        version: "1.2.0",
        counter: 1,
        listed: "1.2.0",
        reason: "security counter 1 is below 2",
    },
    Attack {
        name: "another board's image",
        running_counter: 1,
        board: "other-board",
        version: "1.2.0",
        counter: 1,
        listed: "1.2.0",
        reason: "other-board",
    },
];

#[tokio::test(flavor = "multi_thread")]
async fn refuses_downgrade_from_compromised_targets_key() {
    let mut table = Vec::new();
    for (i, attack) in ATTACKS.iter().enumerate() {
        for row in run(attack, 40 + 10 * i as u64).await {
            table.push(row);
        }
    }
    println!("{:<40} {:<6} outcome", "attack", "path");
    for (name, path, outcome) in &table {
        println!("{name:<40} {path:<6} {outcome}");
    }
    assert_eq!(table.len(), 2 * ATTACKS.len());
}

async fn run(attack: &Attack, seed: u64) -> Vec<(String, &'static str, String)> {
    let fleet = Fleet::start().await;
    let base = firmware(SIZE, seed);
    let v1 = fleet.image_for(BOARD, "1.0.0", attack.running_counter, &base);
    fleet.publish(v1.clone()).await;
    let evil = fleet.image_for(
        attack.board,
        attack.version,
        attack.counter,
        &next_release(&base, seed + 1),
    );
    let release = smuggle_release(&fleet, attack.listed, &evil).await;
    smuggle_delta(&fleet, &v1, &release, attack.listed, &evil).await;

    // One device runs the published 1.0.0 (a delta applies), one an image no release is
    // (only the full image applies).
    let stray = fleet.image_for(
        BOARD,
        "1.0.0",
        attack.running_counter,
        &firmware(SIZE, seed + 5),
    );
    let mut rows = Vec::new();
    for (path, factory) in [("delta", &v1), ("full", &stray)] {
        let device = fleet
            .device(&format!("SN-{path}"), &fleet.url, factory)
            .await;
        let running = device.slot_bytes(Slot::A);
        let agent = device.agent();
        let err = agent.check().await.unwrap_err();
        let what = format!("{} / {path}", attack.name);
        assert_eq!(err.stage, "verify", "{what}: {err}");
        assert!(err.to_string().contains(attack.reason), "{what}: {err}");
        assert_eq!(
            device.slot_bytes(Slot::A),
            running,
            "{what}: running slot changed"
        );
        let boot = agent.device().status().unwrap();
        assert_eq!(boot.trial, None, "{what}: trial requested");
        assert!(
            agent.device().slot_image(Slot::B).is_err(),
            "{what}: the refused image is left bootable"
        );
        assert_eq!(device.reboots.load(std::sync::atomic::Ordering::SeqCst), 0);

        let events = events(&fleet, &device.id()).await;
        let downloads: Vec<&str> = events
            .iter()
            .filter(|e| e["kind"] == "downloading")
            .map(|e| e["event"]["target"].as_str().unwrap_or_default())
            .collect();
        let expected_prefix = if path == "delta" {
            "deltas/"
        } else {
            "firmware/"
        };
        assert_eq!(downloads.len(), 1, "{what}: {downloads:?}");
        assert!(
            downloads[0].starts_with(expected_prefix),
            "{what}: {downloads:?}"
        );
        let reported = events
            .iter()
            .filter(|e| e["kind"] == "failed")
            .filter_map(|e| e["event"]["reason"].as_str())
            .any(|r| r.contains(attack.reason));
        assert!(reported, "{what}: reason not reported: {events:?}");
        assert!(!events.iter().any(|e| e["kind"] == "installed"), "{what}");
        rows.push((
            attack.name.to_owned(),
            path,
            format!("refused: {}", err.source),
        ));
    }
    fleet.stop().await;
    rows
}

/// The device's timeline entries, oldest first.
async fn events(fleet: &Fleet, id: &str) -> Vec<Value> {
    let mut events = fleet.device_view(id).await["timeline"]
        .as_array()
        .unwrap()
        .clone();
    events.reverse();
    events
}
