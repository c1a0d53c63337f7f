//! A compromised server against the signed rollout policy. The attacker holds the server's
//! online keys (the director key re-signs every assignment on the way, here in the proxy)
//! but not the fleet manager's rollout key. Whatever it assigns, the device installs only
//! what a genuine policy allows: its bucket under the signed ceiling, that image, this board,
//! before the expiry and inside the window. Each refusal fails the cycle at stage `policy`,
//! reports why to the server, and downloads nothing: no request for a target, the inactive
//! slot untouched. Outside the window the device waits without a failure. A genuine policy
//! that covers the device installs, and the healthy report names the image that booted.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::proxy::{Fault, Proxy, Route};
use common::smuggle::sha256;
use common::{BOARD, Device, Fleet, firmware, next_release};
use otter_agent::cycle::Outcome;
use otter_agent::{AfterBoot, Agent};
use otter_boot::layout::Slot;
use otter_keys::keyset::{KeySet, Role};
use otter_keys::rollout::{BasisPoints, MaintenanceWindow, bucket};
use otter_keys::signer::{FileKey, Signer};
use otter_keys::wire::{RolloutPolicy, Signed};
use serde_json::Value;

const SIZE: usize = 128 * 1024;

fn keys(fleet: &Fleet) -> KeySet {
    KeySet::open(&fleet.state.keys.dir).unwrap()
}

/// The dev key dir's `rollout-1.key`: the fleet manager's, which the attacker does not have.
fn rollout_key(fleet: &Fleet) -> FileKey {
    keys(fleet).rollout_keys().unwrap().remove(0)
}

fn now() -> u64 {
    jiff::Timestamp::now().as_second() as u64
}

/// A rollout id in which `device_id`'s bucket is under `ceiling` (`true`) or not.
fn rollout_id(device_id: &str, ceiling: BasisPoints, under: bool) -> String {
    (0..)
        .map(|i| format!("rol_e2e_{i}"))
        .find(|r| ceiling.admits(bucket(device_id, r)) == under)
        .unwrap()
}

/// A window of every day, `from` to `to` hours after the current UTC hour.
fn window_hours(from: i8, to: i8) -> String {
    let hour = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .hour();
    let at = |offset: i8| (hour + offset).rem_euclid(24);
    format!("mon-sun {:02}:00-{:02}:00 UTC", at(from), at(to))
}

/// The proxy attaches `policy` (or none) to every assignment, re-signed with the director
/// key: the compromised server.
fn assign_with(proxy: &Proxy, policy: Option<Signed<RolloutPolicy>>) {
    proxy.rewrite_assignments(move |a| {
        if let Some(target) = a.target.as_mut() {
            target.policy = policy.clone();
        }
    });
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

fn target_requests(proxy: &Proxy) -> usize {
    proxy
        .log()
        .iter()
        .filter(|l| l.contains("/tuf/targets/"))
        .count()
}

/// What must hold after any cycle that downloads nothing: no target requested or sent, both
/// slots as before, no trial, no reboot.
struct Untouched {
    slot_a: Vec<u8>,
    slot_b: Vec<u8>,
}

impl Untouched {
    fn record(device: &Device) -> Self {
        Self {
            slot_a: device.slot_bytes(Slot::A),
            slot_b: device.slot_bytes(Slot::B),
        }
    }

    fn check(&self, device: &Device, proxy: &Proxy, what: &str) {
        assert_eq!(target_requests(proxy), 0, "{what}: {:?}", proxy.log());
        assert_eq!(proxy.target_bytes_sent(), 0, "{what}");
        assert!(
            device.slot_bytes(Slot::B) == self.slot_b,
            "{what}: the inactive slot was written"
        );
        assert!(
            device.slot_bytes(Slot::A) == self.slot_a,
            "{what}: the running slot changed"
        );
        let agent = device.agent();
        assert_eq!(agent.device().status().unwrap().trial, None, "{what}");
        assert_eq!(device.reboots.load(Ordering::SeqCst), 0, "{what}");
    }
}

/// The device refuses at stage `policy` with `reason` in the error and in a new `failed`
/// report the server has.
async fn expect_refusal(
    fleet: &Fleet,
    agent: &Agent,
    id: &str,
    what: &str,
    reason: &str,
) -> String {
    let before = events(fleet, id).await.len();
    let err = agent.check().await.unwrap_err();
    assert_eq!(err.stage, "policy", "{what}: {err}");
    let text = err.source.to_string();
    assert!(text.contains(reason), "{what}: {text}");
    let new = events(fleet, id).await.split_off(before);
    let reported: Vec<&Value> = new.iter().filter(|e| e["kind"] == "failed").collect();
    assert_eq!(reported.len(), 1, "{what}: {new:?}");
    assert_eq!(reported[0]["event"]["stage"], "policy", "{what}");
    assert_eq!(reported[0]["event"]["reason"], text.as_str(), "{what}");
    assert!(
        !new.iter().any(|e| e["kind"] == "downloading"),
        "{what}: {new:?}"
    );
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_stolen_online_keys_cannot_widen_a_rollout() {
    let fleet = Fleet::start().await;
    let base = firmware(SIZE, 61);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, 62));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let (v1_sha, v2_sha) = (sha256(&v1), sha256(&v2));
    let director = keys(&fleet).role_key(Role::Director).unwrap();
    let proxy = Proxy::start(&fleet.url, director).await;
    let rollout = rollout_key(&fleet);

    let mut device = fleet.device("SN-policy-1", &proxy.url, &v1).await;
    device.config.rollout.require_policy = Some(true);
    let id = device.id();
    let agent = device.agent();
    assert!(
        !agent.device().bundle().rollout_keys.is_empty(),
        "the trust bundle lists the rollout key"
    );
    let untouched = Untouched::record(&device);
    let ceiling: BasisPoints = "10%".parse().unwrap();
    let genuine = |rollout_id: String| RolloutPolicy {
        rollout_id,
        hardware_id: BOARD.into(),
        image_sha256: v2_sha,
        ceiling,
        window: None,
        expires: now() + 3600,
    };
    let sign = |policy: RolloutPolicy, key: &dyn Signer| Signed::sign(policy, key).unwrap();

    // a) A genuine policy whose ceiling leaves this device out: the server assigns it anyway.
    let outside = rollout_id(&id, ceiling, false);
    let b = bucket(&id, &outside);
    assign_with(&proxy, Some(sign(genuine(outside.clone()), &rollout)));
    let text = expect_refusal(
        &fleet,
        &agent,
        &id,
        "above the ceiling",
        &format!("bucket {b} is not under the signed ceiling {ceiling}"),
    )
    .await;
    untouched.check(&device, &proxy, "above the ceiling");
    let mut table = vec![("bucket above the signed ceiling", text)];

    // b) No policy at all; also with the shipped default (required: the bundle has the key).
    assign_with(&proxy, None);
    let text = expect_refusal(
        &fleet,
        &agent,
        &id,
        "no policy",
        "the server sent an assignment without a signed rollout policy",
    )
    .await;
    let mut default = device.config.clone();
    default.rollout.require_policy = None;
    let default_agent = Agent::open(default).unwrap();
    expect_refusal(
        &fleet,
        &default_agent,
        &id,
        "no policy, default setting",
        "without a signed rollout policy",
    )
    .await;
    drop(default_agent);
    untouched.check(&device, &proxy, "no policy");
    table.push(("no policy", text));

    // c) The attacker signs its own policy, with the director key or a fresh key.
    let inside = rollout_id(&id, ceiling, true);
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = FileKey::generate_at(&fresh_dir.path().join("mallory.key")).unwrap();
    let director = keys(&fleet).role_key(Role::Director).unwrap();
    for (name, key) in [
        ("director key", &director as &dyn Signer),
        ("fresh key", &fresh),
    ] {
        let wide = RolloutPolicy {
            ceiling: "100%".parse().unwrap(),
            ..genuine(inside.clone())
        };
        assign_with(&proxy, Some(sign(wide, key)));
        let text = expect_refusal(
            &fleet,
            &agent,
            &id,
            name,
            "not signed by any of the 1 trusted rollout keys",
        )
        .await;
        untouched.check(&device, &proxy, name);
        table.push((name, text));
    }

    // d) A genuine policy of another rollout, for another image, replayed with this one.
    let replayed = RolloutPolicy {
        image_sha256: v1_sha,
        ceiling: "100%".parse().unwrap(),
        ..genuine(inside.clone())
    };
    assign_with(&proxy, Some(sign(replayed, &rollout)));
    let text = expect_refusal(
        &fleet,
        &agent,
        &id,
        "another image",
        &format!(
            "rollout policy names image {}, the assignment is image {}",
            hex::encode(v1_sha),
            hex::encode(v2_sha)
        ),
    )
    .await;
    untouched.check(&device, &proxy, "another image");
    table.push(("policy for another image", text));

    // e) A genuine policy that has expired.
    let expired = RolloutPolicy {
        expires: now() - 60,
        ..genuine(inside.clone())
    };
    assign_with(&proxy, Some(sign(expired, &rollout)));
    let text = expect_refusal(&fleet, &agent, &id, "expired", "rollout policy expired").await;
    untouched.check(&device, &proxy, "expired");
    table.push(("expired policy", text));

    // f) A genuine policy covering the device, outside its window: no failure, it waits.
    let later: MaintenanceWindow = window_hours(2, 3).parse().unwrap();
    let windowed = RolloutPolicy {
        window: Some(later.clone()),
        ..genuine(inside.clone())
    };
    assign_with(&proxy, Some(sign(windowed, &rollout)));
    let before = events(&fleet, &id).await.len();
    let outcome = agent.check().await.unwrap();
    assert_eq!(
        outcome,
        Outcome::OutsideWindow {
            version: "1.1.0".parse().unwrap(),
            window: later.to_string(),
        }
    );
    assert!(
        outcome
            .to_string()
            .contains("assigned, waits for its maintenance window"),
        "{outcome}"
    );
    let new = events(&fleet, &id).await.split_off(before);
    assert!(new.is_empty(), "nothing is reported while waiting: {new:?}");
    untouched.check(&device, &proxy, "outside the window");
    table.push(("outside the window", outcome.to_string()));

    println!("{:<34} device says", "the server sends");
    for (case, text) in &table {
        println!("{case:<34} {text}");
    }

    // The fleet manager's genuine policy covers the device, inside its window: it installs.
    let now_window = window_hours(-1, 2);
    let allowed = RolloutPolicy {
        window: Some(now_window.parse().unwrap()),
        ..genuine(inside.clone())
    };
    assign_with(&proxy, Some(sign(allowed, &rollout)));
    let outcome = agent.check().await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Installed { version, slot: Slot::B, .. } if version.to_string() == "1.1.0"),
        "{outcome:?}"
    );
    assert!(target_requests(&proxy) > 0);
    assert_eq!(&device.slot_bytes(Slot::B)[..v2.len()], &v2[..]);
    drop(agent);

    // It boots on trial, is confirmed, and the reports name the image that really runs.
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::B, true));
    assert_eq!(
        device.agent().after_boot().await.unwrap(),
        AfterBoot::Confirmed("1.1.0".parse().unwrap())
    );
    let events = events(&fleet, &id).await;
    for kind in ["booted", "healthy"] {
        let event = events
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} report: {events:?}"));
        assert_eq!(
            event["event"]["image_sha256"],
            hex::encode(v2_sha),
            "{kind}: {event}"
        );
    }
    fleet.stop().await;
}

/// The policy is checked again once the slot is written, just before the trial: a download
/// slowed by a hostile network (or a slow link) can not carry the install past the policy's
/// expiry. The device downloaded, but asks for no trial, reboots not, and reports why.
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_that_expires_during_a_slow_download_gets_no_trial() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(2048, 71));
    let v2 = fleet.image("1.1.0", &firmware(2048, 72));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let director = keys(&fleet).role_key(Role::Director).unwrap();
    let proxy = Proxy::start(&fleet.url, director).await;
    let device = fleet.device("SN-policy-slow", &proxy.url, &v1).await;
    let (id, agent) = (device.id(), device.agent());
    // Whole seconds: at least two left for the check-in and the first look.
    let expires = now() + 3;
    let policy = RolloutPolicy {
        rollout_id: "rol_slow".into(),
        hardware_id: BOARD.into(),
        image_sha256: sha256(&v2),
        ceiling: "100%".parse().unwrap(),
        window: None,
        expires,
    };
    assign_with(
        &proxy,
        Some(Signed::sign(policy, &rollout_key(&fleet)).unwrap()),
    );
    // Three milliseconds a byte: the ~2 KiB download takes over six seconds, past the expiry.
    proxy.inject(Route::Targets, Fault::Trickle(Duration::from_millis(3)), 10);

    let err = agent.check().await.unwrap_err();
    assert_eq!(err.stage, "policy", "{err}");
    assert!(err.source.to_string().contains("expired"), "{err}");
    assert!(now() >= expires);
    assert!(
        proxy.target_bytes_sent() > 0,
        "the first look allowed the download"
    );
    assert_eq!(
        agent.device().status().unwrap().trial,
        None,
        "no trial requested"
    );
    assert_eq!(device.reboots.load(Ordering::SeqCst), 0);
    let reported = events(&fleet, &id).await;
    let failed = (reported.iter())
        .find(|e| e["kind"] == "failed")
        .unwrap_or_else(|| panic!("{reported:?}"));
    assert_eq!(failed["event"]["stage"], "policy");
    // The slot it wrote is not bootable: a reset boots 1.0.0 from slot A.
    drop(agent);
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::A, false));
    fleet.stop().await;
}
