//! The agent against a real in-process server, on simulated devices whose bootloader is
//! otter-boot's `decide()` on the flash file: the happy path by delta, the full-image
//! fallback, a resumed download, a failed health check rolled back, and every refusal —
//! each refusal leaving the running slot untouched.

mod common;

use common::proxy::{Fault, Proxy, Route};
use common::smuggle::{sha256, smuggle_release};
use common::{BOARD, Fleet, firmware, next_release, sign_with};
use otter_agent::cycle::Outcome;
use otter_agent::{AfterBoot, Agent};
use otter_boot::layout::Slot;
use otter_keys::keyset::{KeySet, Role};
use otter_keys::signer::FileKey;
use std::sync::atomic::Ordering;

const SIZE: usize = 256 * 1024;

fn director(fleet: &Fleet) -> FileKey {
    KeySet::open(&fleet.state.keys.dir)
        .unwrap()
        .role_key(Role::Director)
        .unwrap()
}

async fn expect_refusal(agent: &Agent, stage: &str, needle: &str) {
    let err = agent.check().await.unwrap_err();
    assert_eq!(err.stage, stage, "{err}");
    assert!(err.to_string().contains(needle), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_check_reboot_confirm_by_delta() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 1));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 1), 2));
    fleet.publish(v1.clone()).await;
    let release = fleet.publish(v2.clone()).await;
    let device = fleet.device("SN-1", &fleet.url, &v1).await;

    let agent = device.agent();
    assert_eq!(agent.after_boot().await.unwrap(), AfterBoot::Settled);
    let outcome = agent.check().await.unwrap();
    let Outcome::Installed {
        version,
        slot,
        via_delta,
        downloaded,
        rebooted: true,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (version.to_string(), slot, via_delta),
        ("1.1.0".into(), Slot::B, true)
    );
    assert!(
        downloaded < v2.len() as u64 / 4,
        "delta of {downloaded} bytes for a {} byte image",
        v2.len()
    );
    assert_eq!(device.reboots.load(Ordering::SeqCst), 1);
    assert_eq!(&device.slot_bytes(Slot::B)[..v2.len()], &v2[..]);
    assert_eq!(
        &device.slot_bytes(Slot::A)[..v1.len()],
        &v1[..],
        "running slot untouched"
    );
    drop(agent);

    // The reset boots B on trial; the restarted agent checks health and confirms.
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::B, true));
    let agent = device.agent();
    assert_eq!(
        agent.after_boot().await.unwrap(),
        AfterBoot::Confirmed("1.1.0".parse().unwrap())
    );
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::B, false));
    assert!(matches!(
        agent.check().await.unwrap(),
        Outcome::UpToDate { .. }
    ));

    let id = device.id();
    assert_eq!(
        fleet.timeline(&id).await,
        ["downloading", "installed", "booted", "healthy"]
    );
    let view = fleet.device_view(&id).await;
    assert_eq!(view["current_version"], "1.1.0");
    assert_eq!(release["version"], "1.1.0");
    let status = agent.status().unwrap().to_string();
    assert!(status.contains("1.1.0 (running, confirmed)"), "{status}");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_image_when_no_delta_fits_or_the_delta_fails() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 1));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 1), 2));
    let other_base = fleet.image("1.0.0", &firmware(SIZE, 77));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;

    // A device whose running image is no published release's: no delta applies.
    let stray = fleet.device("SN-stray", &fleet.url, &other_base).await;
    let outcome = stray.agent().check().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Installed { via_delta: false, downloaded, .. } if downloaded == v2.len() as u64),
        "{outcome:?}"
    );
    assert_eq!(&stray.slot_bytes(Slot::B)[..v2.len()], &v2[..]);

    // A delta that breaks on the way (the proxy flips a byte, so it fails its hash): the
    // agent falls back to the full image.
    let proxy = Proxy::start(&fleet.url, director(&fleet)).await;
    let device = fleet.device("SN-2", &proxy.url, &v1).await;
    let agent = Agent::open(device.config.clone())
        .unwrap()
        .with_reboot_hook(std::sync::Arc::new(|| Ok(true)));
    proxy.inject(Route::Delta, Fault::Flip(10), 1);
    let outcome = agent.check().await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Installed {
                via_delta: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    let targets: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|l| l.contains("/tuf/targets/"))
        .collect();
    assert!(
        targets[0].contains("/deltas/") && targets[1].contains("/firmware/"),
        "{targets:?}"
    );
    assert_eq!(&device.slot_bytes(Slot::B)[..v2.len()], &v2[..]);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_download_resumes_with_range() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 3));
    let v2 = fleet.image("1.1.0", &firmware(SIZE, 4)); // unrelated: only the full image
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let proxy = Proxy::start(&fleet.url, director(&fleet)).await;
    let device = fleet.device("SN-3", &proxy.url, &v1).await;
    proxy.cut_next_target_after(100_000);
    let outcome = device.agent().check().await.unwrap();
    let Outcome::Installed {
        via_delta: false,
        downloaded,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(downloaded, v2.len() as u64, "no byte fetched twice");
    let targets: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|l| l.contains("/tuf/targets/"))
        .collect();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(!targets[0].contains("bytes="), "{targets:?}");
    assert!(targets[1].ends_with("bytes=100000-"), "{targets:?}");
    assert_eq!(&device.slot_bytes(Slot::B)[..v2.len()], &v2[..]);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_health_check_is_not_confirmed_and_rolls_back() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 5));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 5), 6));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2).await;
    let mut device = fleet.device("SN-4", &fleet.url, &v1).await;
    device.config.health_checks = vec![otter_agent::config::HealthCheck {
        command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        timeout: std::time::Duration::from_secs(10),
    }];
    assert!(matches!(
        device.agent().check().await.unwrap(),
        Outcome::Installed { .. }
    ));

    // The trial boot fails its health check; the agent abandons the trial, so the next
    // reset rolls back (a trial that never reaches the agent uses up its attempts instead:
    // rejected_images.rs).
    let mut trial_boots = 0;
    loop {
        let boot = device.reset();
        if boot.slot == Slot::A {
            break;
        }
        trial_boots += 1;
        assert!(trial_boots <= 3, "never rolled back");
        assert!(matches!(
            device.agent().after_boot().await.unwrap(),
            AfterBoot::Unhealthy(_)
        ));
    }
    assert_eq!(trial_boots, 1, "an unhealthy trial boots once");
    let agent = device.agent();
    assert_eq!(agent.after_boot().await.unwrap(), AfterBoot::Settled);
    // Reported once, even across restarts.
    assert_eq!(
        device.agent().after_boot().await.unwrap(),
        AfterBoot::Settled
    );
    let timeline = fleet.timeline(&device.id()).await;
    assert_eq!(
        timeline.iter().filter(|k| *k == "rolled_back").count(),
        1,
        "{timeline:?}"
    );
    assert_eq!(
        timeline.iter().filter(|k| *k == "failed").count(),
        1,
        "{timeline:?}"
    );
    assert!(!timeline.contains(&"healthy".to_owned()));
    let status = agent.status().unwrap();
    assert_eq!(status.running, Slot::A);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_leave_the_running_slot_untouched() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 7));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 7), 8));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let proxy = Proxy::start(&fleet.url, director(&fleet)).await;
    let device = fleet.device("SN-5", &proxy.url, &v1).await;
    let id = device.id();
    let slot_a = device.slot_bytes(Slot::A);
    let untouched = |d: &common::Device| {
        assert_eq!(d.slot_bytes(Slot::A), slot_a, "running slot changed");
        assert_eq!(
            d.agent().device().status().unwrap().trial,
            None,
            "trial requested"
        );
    };

    // Director and TUF disagree on the hash. The thief holds the rollout key too here, so
    // the policy allows whatever is assigned: the checks behind it are what refuses.
    let rollout_key = KeySet::open(&fleet.state.keys.dir)
        .unwrap()
        .key_path("rollout-1");
    proxy.rewrite_assignments_with_policy(rollout_key.clone(), |a| {
        if let Some(t) = a.target.as_mut() {
            t.sha256[0] ^= 1;
        }
    });
    expect_refusal(&device.agent(), "select", "disagree").await;
    untouched(&device);

    // An expired assignment, and one for another device.
    proxy.rewrite_assignments(|a| a.expires = 1);
    expect_refusal(&device.agent(), "assignment", "expired").await;
    proxy.rewrite_assignments(|a| a.device_id = "dev_someone_else".into());
    expect_refusal(&device.agent(), "assignment", "wrong device").await;
    untouched(&device);

    // A downgrade, whatever the director says: assign 1.0.0 to a device running 1.1.0.
    let newer = fleet.device("SN-6", &proxy.url, &v2).await;
    let v1_sha: [u8; 32] = sha256(&v1);
    let v1_len = v1.len() as u64;
    proxy.rewrite_assignments_with_policy(rollout_key.clone(), move |a| {
        if let Some(t) = a.target.as_mut() {
            t.name = "firmware/e2e-board/1.0.0.img".into();
            t.version = "1.0.0".parse().unwrap();
            t.sha256 = v1_sha;
            t.length = v1_len;
        }
    });
    expect_refusal(&newer.agent(), "select", "downgrade").await;
    assert_eq!(&newer.slot_bytes(Slot::A)[..v2.len()], &v2[..]);
    assert_eq!(newer.agent().device().status().unwrap().trial, None);

    // Oversize: the signed length is above the device's limit.
    proxy.rewrite_assignments(|_| {});
    let mut config = device.config.clone();
    config.download.max_target_size = 1000;
    let small = Agent::open(config).unwrap();
    expect_refusal(&small, "select", "above the limit").await;
    untouched(&device);

    // Wrong hardware: an image for another board, published and assigned.
    let foreign = fleet.image_for("other-board", "2.0.0", 1, &firmware(4096, 9));
    let foreign_release = fleet.publish(foreign.clone()).await;
    let (name, sha, len) = (
        foreign_release["target_name"].as_str().unwrap().to_owned(),
        sha256(&foreign),
        foreign.len() as u64,
    );
    proxy.rewrite_assignments_with_policy(rollout_key.clone(), move |a| {
        a.target = Some(otter_keys::wire::AssignedTarget {
            name: name.clone(),
            version: "2.0.0".parse().unwrap(),
            sha256: sha,
            length: len,
            policy: None,
        });
    });
    expect_refusal(&device.agent(), "select", "other-board").await;
    untouched(&device);

    // A bad vendor signature: a compromised server lists an image signed by another key.
    // TUF is satisfied, the agent's own check of the written slot is not.
    proxy.rewrite_assignments(|_| {});
    let mallory_dir = tempfile::tempdir().unwrap();
    let mallory = FileKey::generate_at(&mallory_dir.path().join("m.key")).unwrap();
    let evil = sign_with(&mallory, BOARD, "1.2.0", 1, &firmware(SIZE, 10));
    smuggle_release(&fleet, "1.2.0", &evil).await;
    expect_refusal(&device.agent(), "verify", "does not verify").await;
    untouched(&device);
    assert!(
        device.agent().device().slot_image(Slot::B).is_err(),
        "the half-installed slot must not verify"
    );

    let timeline = fleet.timeline(&id).await;
    assert!(
        timeline.iter().filter(|k| *k == "failed").count() >= 6,
        "{timeline:?}"
    );
    fleet.stop().await;
}
