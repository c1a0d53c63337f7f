//! No endless rollback loop: a release whose trial fails its health check is tried once. The
//! agent abandons the trial and reboots at once, so the bootloader rolls back at that reset;
//! it remembers the image and refuses it however often it is assigned again (and never
//! confirms it, even after a restart), while a newer release still installs.

mod common;

use std::sync::atomic::Ordering;

use common::proxy::Proxy;
use common::smuggle::sha256;
use common::{Fleet, firmware, next_release};
use otter_agent::cycle::Outcome;
use otter_agent::{AfterBoot, Agent};
use otter_boot::layout::Slot;
use otter_keys::keyset::{KeySet, Role};
use otter_keys::wire::AssignedTarget;

const SIZE: usize = 128 * 1024;

fn target_requests(proxy: &Proxy) -> usize {
    proxy
        .log()
        .iter()
        .filter(|l| l.contains("/tuf/targets/"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_fails_its_health_check_is_never_reinstalled() {
    let fleet = Fleet::start().await;
    let base = firmware(SIZE, 61);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, 62));
    fleet.publish(v1.clone()).await;
    let release = fleet.publish(v2.clone()).await;
    let director = KeySet::open(&fleet.state.keys.dir)
        .unwrap()
        .role_key(Role::Director)
        .unwrap();
    let proxy = Proxy::start(&fleet.url, director).await;
    let mut device = fleet.device("SN-loop", &proxy.url, &v1).await;
    device.config.health_checks = vec![otter_agent::config::HealthCheck {
        command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        timeout: std::time::Duration::from_secs(10),
    }];
    let agent = || -> Agent { device.agent() };

    assert!(matches!(
        agent().check().await.unwrap(),
        Outcome::Installed { .. }
    ));
    assert_eq!(device.reboots.load(Ordering::SeqCst), 1);

    // The trial boot fails its health check: the agent abandons the trial and reboots at
    // once, and that very reset boots the confirmed image (one trial boot, not three).
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::B, true));
    assert!(matches!(
        agent().after_boot().await.unwrap(),
        AfterBoot::Unhealthy(_)
    ));
    assert_eq!(
        device.reboots.load(Ordering::SeqCst),
        2,
        "an unhealthy trial must trigger the reboot"
    );
    let boot = device.reset();
    assert_eq!(
        (boot.slot, boot.trial),
        (Slot::A, false),
        "the reset after an unhealthy trial must boot the confirmed image"
    );
    assert_eq!(
        agent().device().status().unwrap().last_outcome,
        otter_boot::state::Outcome::RolledBack {
            from: "1.1.0".parse().unwrap()
        }
    );
    assert_eq!(agent().after_boot().await.unwrap(), AfterBoot::Settled);
    let running = device.slot_bytes(Slot::A);
    assert_eq!(&running[..v1.len()], &v1[..]);

    // The director (or a replay of its answer) keeps assigning the failed release.
    let failed = AssignedTarget {
        name: release["target_name"].as_str().unwrap().to_owned(),
        version: "1.1.0".parse().unwrap(),
        sha256: sha256(&v2),
        length: v2.len() as u64,
        policy: None,
    };
    proxy.rewrite_assignments(move |a| a.target = Some(failed.clone()));
    let fetched = target_requests(&proxy);
    for _ in 0..3 {
        let err = agent().check().await.unwrap_err();
        assert_eq!(err.stage, "select", "{err}");
        assert!(
            err.to_string().contains("rejected that image before"),
            "{err}"
        );
    }
    assert_eq!(
        target_requests(&proxy),
        fetched,
        "the rejected image was downloaded again"
    );
    assert_eq!(device.slot_bytes(Slot::A), running, "running slot changed");
    assert_eq!(agent().device().status().unwrap().trial, None);
    let timeline = fleet.timeline(&device.id()).await;
    assert_eq!(
        timeline.iter().filter(|k| *k == "installed").count(),
        1,
        "{timeline:?}"
    );

    // A newer release is still installed.
    proxy.rewrite_assignments(|_| {});
    let v3 = fleet.image("1.2.0", &next_release(&base, 63));
    fleet.publish(v3.clone()).await;
    let outcome = agent().check().await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Installed { version, .. } if version.to_string() == "1.2.0"),
        "{outcome:?}"
    );
    assert_eq!(&device.slot_bytes(Slot::B)[..v3.len()], &v3[..]);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trial_the_bootloader_rolled_back_is_never_reinstalled() {
    let fleet = Fleet::start().await;
    let base = firmware(SIZE, 71);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, 72));
    fleet.publish(v1.clone()).await;
    let release = fleet.publish(v2.clone()).await;
    let director = KeySet::open(&fleet.state.keys.dir)
        .unwrap()
        .role_key(Role::Director)
        .unwrap();
    let proxy = Proxy::start(&fleet.url, director).await;
    let device = fleet.device("SN-hang", &proxy.url, &v1).await;
    assert!(matches!(
        device.agent().check().await.unwrap(),
        Outcome::Installed { .. }
    ));

    // The new image hangs before the agent ever starts: the bootloader gives up on it.
    let mut trial_boots = 0;
    while device.reset().slot == Slot::B {
        trial_boots += 1;
        assert!(trial_boots <= 3, "never rolled back");
    }
    let agent = device.agent();
    assert_eq!(agent.after_boot().await.unwrap(), AfterBoot::Settled);

    // The honest director heard of the rollback and no longer names 1.1.0.
    assert!(matches!(
        agent.check().await.unwrap(),
        Outcome::UpToDate { .. }
    ));
    // A director that ignores it (or a replay of its answer) names 1.1.0 again: the agent
    // refuses it before any download.
    let failed = AssignedTarget {
        name: release["target_name"].as_str().unwrap().to_owned(),
        version: "1.1.0".parse().unwrap(),
        sha256: sha256(&v2),
        length: v2.len() as u64,
        policy: None,
    };
    proxy.rewrite_assignments(move |a| a.target = Some(failed.clone()));
    let err = agent.check().await.unwrap_err();
    assert_eq!(err.stage, "select", "{err}");
    assert!(
        err.to_string().contains("rolled back by the bootloader"),
        "{err}"
    );
    let timeline = fleet.timeline(&device.id()).await;
    assert_eq!(
        timeline.iter().filter(|k| *k == "downloading").count(),
        1,
        "{timeline:?}"
    );
    fleet.stop().await;
}

/// A trial the agent abandoned is never confirmed, not even by a later agent that finds it
/// still running and healthy (the process restarted before the reboot took effect).
#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_trial_is_not_confirmed_after_an_agent_restart() {
    let fleet = Fleet::start().await;
    let base = firmware(SIZE, 81);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, 82));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let mut device = fleet.device("SN-restart", &fleet.url, &v1).await;
    let check = |script: &str| otter_agent::config::HealthCheck {
        command: vec!["sh".into(), "-c".into(), script.into()],
        timeout: std::time::Duration::from_secs(10),
    };
    device.config.health_checks = vec![check("exit 3")];
    assert!(matches!(
        device.agent().check().await.unwrap(),
        Outcome::Installed { .. }
    ));
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::B, true));
    assert!(matches!(
        device.agent().after_boot().await.unwrap(),
        AfterBoot::Unhealthy(_)
    ));
    let reboots = device.reboots.load(Ordering::SeqCst);

    // The reboot did not happen; the agent restarts, and now the health check passes.
    device.config.health_checks = vec![check("exit 0")];
    for _ in 0..2 {
        let agent = device.agent();
        assert!(
            matches!(agent.after_boot().await.unwrap(), AfterBoot::Rejected(_)),
            "an abandoned trial must not be confirmed"
        );
        let _ = agent.check().await;
        let status = agent.device().status().unwrap();
        assert_eq!(status.confirmed, Slot::A, "{status:?}");
        assert!(status.trial.is_some_and(|t| t.attempts_left == 0));
    }
    assert!(
        device.reboots.load(Ordering::SeqCst) > reboots,
        "the reboot is asked for again"
    );

    // The reset rolls back, and the given-up image is gone from its slot.
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::A, false));
    assert!(device.agent().device().slot_image(Slot::B).is_err());
    assert_eq!(
        device.agent().after_boot().await.unwrap(),
        AfterBoot::Settled
    );
    fleet.stop().await;
}
