//! Device registration, signed check-ins answered by director-signed assignments, signed
//! reports, and the fleet view — on every database.

mod common;

use common::{TestServer, databases, expect_error};
use otter_keys::keyset::Role;
use otter_keys::signer::{FileKey, Signer};
use otter_keys::wire::{Assignment, BootOutcome, CheckIn, Event, Report, Signed};
use otter_server::auth::Scope;
use serde_json::{Value, json};

struct Device {
    id: String,
    key: FileKey,
    _dir: tempfile::TempDir,
}

fn new_key() -> (FileKey, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = FileKey::generate_at(&dir.path().join("device.key")).unwrap();
    (key, dir)
}

fn now() -> u64 {
    jiff::Timestamp::now().as_second() as u64
}

async fn register(s: &TestServer, token: &str, serial: &str, hw: &str) -> Device {
    let (key, dir) = new_key();
    let r = s
        .client
        .post(s.at("/api/v1/devices"))
        .bearer_auth(token)
        .json(&json!({"public_key": hex::encode(key.public_key()), "hardware_id": hw, "serial": serial}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["serial"], serial);
    Device {
        id: body["id"].as_str().unwrap().to_owned(),
        key,
        _dir: dir,
    }
}

fn checkin(device_id: &str, counter: u64, timestamp: u64) -> CheckIn {
    CheckIn {
        last_outcome: BootOutcome::RolledBack {
            from: "1.1.0".parse().unwrap(),
        },
        ..common::checkin_message(device_id, counter, timestamp, "1.0.0")
    }
}

async fn post_checkin(
    s: &TestServer,
    path_id: &str,
    signed: &Signed<CheckIn>,
) -> reqwest::Response {
    s.client
        .post(s.at(&format!("/api/v1/devices/{path_id}/checkin")))
        .json(signed)
        .send()
        .await
        .unwrap()
}

async fn post_report(
    s: &TestServer,
    device: &Device,
    counter: u64,
    event: Event,
) -> reqwest::Response {
    post_event(s, device, counter, counter, event).await
}

/// Sends event number `event_seq` signed with message counter `counter`.
async fn post_event(
    s: &TestServer,
    device: &Device,
    counter: u64,
    event_seq: u64,
    event: Event,
) -> reqwest::Response {
    let report = Report {
        device_id: device.id.clone(),
        counter,
        timestamp: now(),
        event_seq,
        event,
    };
    let signed = Signed::sign(report, &device.key).unwrap();
    s.client
        .post(s.at(&format!("/api/v1/devices/{}/reports", device.id)))
        .json(&signed)
        .send()
        .await
        .unwrap()
}

async fn insert_release(s: &TestServer, hw: &str, version: &str, sha: &str) {
    let v: otter_boot::image::Version = version.parse().unwrap();
    sqlx::query(
        "INSERT INTO releases (id, hardware_id, version, major, minor, patch, security_counter, \
         key_id, sha256, length, target_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, 'k', $7, 4096, $8, 0)",
    )
    .bind(otter_server::db::new_id("rel"))
    .bind(hw)
    .bind(version)
    .bind(i64::from(v.major))
    .bind(i64::from(v.minor))
    .bind(i64::from(v.patch))
    .bind(sha)
    .bind(otter_keys::targets::image_target_name(hw, v))
    .execute(s.state.db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn registration_needs_the_provision_scope_and_unique_identity() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let provision = s.token(&[Scope::Provision]).await;
        let publish = s.token(&[Scope::Publish]).await;
        let (key, _dir) = new_key();
        let body = json!({"public_key": hex::encode(key.public_key()), "hardware_id": "acme-1", "serial": "SN1"});
        let url = s.at("/api/v1/devices");

        let r = s.client.post(&url).json(&body).send().await.unwrap();
        expect_error(r, 401, "unauthorized").await;
        let r = s
            .client
            .post(&url)
            .bearer_auth(&publish)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = s
            .client
            .post(&url)
            .bearer_auth(&provision)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);

        // Same serial, or same key under another serial: conflict.
        let r = s
            .client
            .post(&url)
            .bearer_auth(&provision)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(r, 409, "conflict").await;
        let same_key = json!({"public_key": hex::encode(key.public_key()), "hardware_id": "acme-1", "serial": "SN2"});
        let r = s
            .client
            .post(&url)
            .bearer_auth(&provision)
            .json(&same_key)
            .send()
            .await
            .unwrap();
        expect_error(r, 409, "conflict").await;

        let (other, _d) = new_key();
        for (bad, why) in [
            (
                json!({"public_key": "abcd", "hardware_id": "acme-1", "serial": "SN3"}),
                "public_key",
            ),
            (
                json!({"public_key": "00".repeat(32), "hardware_id": "acme-1", "serial": "SN3"}),
                "weak",
            ),
            (
                json!({"public_key": hex::encode(other.public_key()), "hardware_id": "bad id!", "serial": "SN3"}),
                "hardware_id",
            ),
            (
                json!({"public_key": hex::encode(other.public_key()), "hardware_id": "acme-1", "serial": ""}),
                "serial",
            ),
        ] {
            let r = s
                .client
                .post(&url)
                .bearer_auth(&provision)
                .json(&bad)
                .send()
                .await
                .unwrap();
            let message = expect_error(r, 422, "unprocessable").await;
            assert!(message.contains(why), "{message}");
        }
        let r = s
            .client
            .post(&url)
            .bearer_auth(&provision)
            .json(&json!({"serial": "x"}))
            .send()
            .await
            .unwrap();
        expect_error(r, 422, "unprocessable").await;
        s.stop().await;
    }
}

#[tokio::test]
async fn checkin_is_answered_with_a_signed_assignment_of_the_rolled_out_release() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let provision = s.token(&[Scope::Provision]).await;
        let device = register(&s, &provision, "SN1", "acme-1").await;
        let director = s.keyset().role_key(Role::Director).unwrap().public_key();

        // No release yet: a signed "nothing to do".
        let signed = Signed::sign(checkin(&device.id, 1, now()), &device.key).unwrap();
        let r = post_checkin(&s, &device.id, &signed).await;
        assert_eq!(r.status(), 200);
        let answer: Signed<Assignment> = r.json().await.unwrap();
        let assignment = answer.verify(&director, &device.id, 1, now()).unwrap();
        assert_eq!(assignment.target, None);
        assert!(assignment.expires > now() + 3000, "default ttl is an hour");

        insert_release(&s, "acme-1", "1.1.0", &"11".repeat(32)).await;
        insert_release(&s, "acme-1", "1.10.0", &"22".repeat(32)).await;
        insert_release(&s, "acme-1", "1.9.3", &"33".repeat(32)).await;
        insert_release(&s, "other-board", "9.0.0", &"44".repeat(32)).await;
        // The director assigns only what the signed TUF targets list.
        s.state.tuf.targets_changed().await.unwrap();

        // Published is not rolled out: no newest-wins, the device keeps its version.
        let signed = Signed::sign(checkin(&device.id, 2, now()), &device.key).unwrap();
        let answer: Signed<Assignment> = post_checkin(&s, &device.id, &signed)
            .await
            .json()
            .await
            .unwrap();
        let assignment = answer.verify(&director, &device.id, 2, now()).unwrap();
        assert_eq!(assignment.target, None);

        // A rollout of 1.10.0 to the whole board assigns it.
        s.roll_out(&s.release_id("acme-1", "1.10.0").await).await;
        let signed = Signed::sign(checkin(&device.id, 3, now()), &device.key).unwrap();
        let answer: Signed<Assignment> = post_checkin(&s, &device.id, &signed)
            .await
            .json()
            .await
            .unwrap();
        let target = answer
            .verify(&director, &device.id, 3, now())
            .unwrap()
            .target
            .clone()
            .unwrap();
        assert_eq!(target.name, "firmware/acme-1/1.10.0.img");
        assert_eq!(target.version.to_string(), "1.10.0");
        assert_eq!(target.sha256, [0x22; 32]);
        assert_eq!(target.length, 4096);
        // The answer is bound to this check-in: another device or counter refuses it.
        assert!(answer.verify(&director, "dev_other", 3, now()).is_err());
        assert!(answer.verify(&director, &device.id, 4, now()).is_err());

        // The fleet sees what the device reported.
        let fleet = s.token(&[Scope::Fleet]).await;
        let view: Value = s
            .client
            .get(s.at(&format!("/api/v1/devices/{}", device.id)))
            .bearer_auth(&fleet)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(view["current_version"], "1.0.0");
        assert_eq!(view["image_sha256"], "07".repeat(32));
        assert_eq!(view["status"]["last_outcome"]["kind"], "rolled_back");
        assert!(view["last_seen"].as_i64().unwrap() > 0);
        s.stop().await;
    }
}

#[tokio::test]
async fn forged_replayed_foreign_and_skewed_checkins_are_refused() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let provision = s.token(&[Scope::Provision]).await;
        let a = register(&s, &provision, "SN-A", "acme-1").await;
        let b = register(&s, &provision, "SN-B", "acme-1").await;

        // Forged: A's message signed by another key.
        let (mallory, _d) = new_key();
        let forged = Signed::sign(checkin(&a.id, 1, now()), &mallory).unwrap();
        expect_error(post_checkin(&s, &a.id, &forged).await, 401, "unauthorized").await;
        // Tampered after signing.
        let mut tampered = Signed::sign(checkin(&a.id, 1, now()), &a.key).unwrap();
        tampered.message.current_version = "9.9.9".parse().unwrap();
        expect_error(
            post_checkin(&s, &a.id, &tampered).await,
            401,
            "unauthorized",
        )
        .await;
        // Garbage signature.
        let mut garbage = Signed::sign(checkin(&a.id, 1, now()), &a.key).unwrap();
        garbage.signature = "zz".into();
        expect_error(post_checkin(&s, &a.id, &garbage).await, 401, "unauthorized").await;

        // Foreign: B's valid message sent to A's URL fails A's key; A's key signing a
        // message that names B is refused as another device's.
        let bs = Signed::sign(checkin(&b.id, 1, now()), &b.key).unwrap();
        expect_error(post_checkin(&s, &a.id, &bs).await, 401, "unauthorized").await;
        let names_b = Signed::sign(checkin(&b.id, 1, now()), &a.key).unwrap();
        expect_error(post_checkin(&s, &a.id, &names_b).await, 403, "forbidden").await;

        // Replayed: the same counter twice, then a lower one.
        let first = Signed::sign(checkin(&a.id, 5, now()), &a.key).unwrap();
        assert_eq!(post_checkin(&s, &a.id, &first).await.status(), 200);
        expect_error(post_checkin(&s, &a.id, &first).await, 409, "conflict").await;
        let older = Signed::sign(checkin(&a.id, 4, now()), &a.key).unwrap();
        expect_error(post_checkin(&s, &a.id, &older).await, 409, "conflict").await;

        // A clock far off is refused; so is a counter that leaps far ahead (2^63-1 accepted
        // once would lock the device out for good).
        let skewed = Signed::sign(checkin(&a.id, 6, now() - 86_400), &a.key).unwrap();
        expect_error(post_checkin(&s, &a.id, &skewed).await, 422, "unprocessable").await;
        for leap in [u64::MAX, i64::MAX as u64, 5 + (1 << 20) + 1] {
            let huge = Signed::sign(checkin(&a.id, leap, now()), &a.key).unwrap();
            let message =
                expect_error(post_checkin(&s, &a.id, &huge).await, 422, "unprocessable").await;
            assert!(message.contains("above the last"), "{message}");
        }

        // Unknown device, malformed JSON.
        let ghost = Signed::sign(checkin("dev_ghost", 1, now()), &a.key).unwrap();
        expect_error(
            post_checkin(&s, "dev_ghost", &ghost).await,
            404,
            "not_found",
        )
        .await;
        let r = s
            .client
            .post(s.at(&format!("/api/v1/devices/{}/checkin", a.id)))
            .json(&json!({"message": {}, "signature": ""}))
            .send()
            .await
            .unwrap();
        expect_error(r, 422, "unprocessable").await;

        // None of the refused messages moved the counter: 6 is still accepted.
        let next = Signed::sign(checkin(&a.id, 6, now()), &a.key).unwrap();
        assert_eq!(post_checkin(&s, &a.id, &next).await.status(), 200);
        // The whole window above the last counter stays open.
        let far = Signed::sign(checkin(&a.id, 6 + (1 << 20), now()), &a.key).unwrap();
        assert_eq!(post_checkin(&s, &a.id, &far).await.status(), 200);

        // Twelve refusals counted; the malformed body never reached the check-in handler.
        let metrics = s
            .client
            .get(s.at("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("otter_checkins_total{outcome=\"ok\"} 3"),
            "{metrics}"
        );
        assert!(
            metrics.contains("otter_checkins_total{outcome=\"refused\"} 12"),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn a_retried_event_is_stored_once_and_answered_as_accepted() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let provision = s.token(&[Scope::Provision]).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let d = register(&s, &provision, "SN1", "acme-1").await;
        let rolled_back = Event::RolledBack {
            from: "1.1.0".parse().unwrap(),
        };
        assert_eq!(
            post_event(&s, &d, 1, 7, rolled_back.clone()).await.status(),
            204
        );
        // The same event again (the agent did not see the answer), re-signed with a fresh
        // counter: accepted, not stored twice.
        let again = post_event(&s, &d, 2, 7, rolled_back.clone()).await;
        assert_eq!(again.status(), 200);
        let ack: Value = again.json().await.unwrap();
        assert_eq!(ack, json!({"duplicate": true, "event_seq": 7}));
        // The same rollback value as a new event (a second rollback) is a second entry.
        assert_eq!(post_event(&s, &d, 3, 8, rolled_back).await.status(), 204);
        // A replayed message is still refused, whatever its event number.
        let replay = post_event(
            &s,
            &d,
            3,
            9,
            Event::Healthy {
                version: "1.1.0".parse().unwrap(),
                image_sha256: [0x11; 32],
            },
        );
        expect_error(replay.await, 409, "conflict").await;

        let view: Value = s
            .client
            .get(s.at(&format!("/api/v1/devices/{}", d.id)))
            .bearer_auth(&fleet)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kinds: Vec<&str> = view["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["rolled_back", "rolled_back"]);
    }
}

#[tokio::test]
async fn reports_build_a_timeline_sharing_the_checkin_counter() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let provision = s.token(&[Scope::Provision]).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let d = register(&s, &provision, "SN1", "acme-1").await;
        let v = |t: &str| t.parse::<otter_boot::image::Version>().unwrap();

        let signed = Signed::sign(checkin(&d.id, 1, now()), &d.key).unwrap();
        assert_eq!(post_checkin(&s, &d.id, &signed).await.status(), 200);
        let events = [
            Event::Downloading {
                target: "deltas/acme-1/1.0.0_1.1.0.patch".into(),
                bytes: 10,
                total: 100,
            },
            Event::Installed {
                version: v("1.1.0"),
            },
            Event::Failed {
                stage: "health".into(),
                reason: "service x down".into(),
            },
            Event::RolledBack { from: v("1.1.0") },
        ];
        for (i, event) in events.iter().enumerate() {
            let r = post_report(&s, &d, 2 + i as u64, event.clone()).await;
            assert_eq!(r.status(), 204);
        }
        // The counter is shared with check-ins: reusing 1 or 5 is a replay.
        for used in [1, 5] {
            let healthy = Event::Healthy {
                version: v("1.1.0"),
                image_sha256: [0x11; 32],
            };
            let r = post_report(&s, &d, used, healthy).await;
            expect_error(r, 409, "conflict").await;
        }
        let stale = Signed::sign(checkin(&d.id, 5, now()), &d.key).unwrap();
        expect_error(post_checkin(&s, &d.id, &stale).await, 409, "conflict").await;

        let url = s.at(&format!("/api/v1/devices/{}", d.id));
        let r = s
            .client
            .get(&url)
            .bearer_auth(&provision)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let view: Value = s
            .client
            .get(&url)
            .bearer_auth(&fleet)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let timeline = view["timeline"].as_array().unwrap();
        let kinds: Vec<&str> = timeline
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["rolled_back", "failed", "installed", "downloading"]);
        assert_eq!(
            timeline[0]["event"],
            json!({"kind": "rolled_back", "from": "1.1.0"})
        );
        assert_eq!(timeline[1]["event"]["reason"], "service x down");
        assert_eq!(timeline[0]["counter"], 5);

        let r = s
            .client
            .get(s.at("/api/v1/devices/dev_nope"))
            .bearer_auth(&fleet)
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not_found").await;
        s.stop().await;
    }
}

#[tokio::test]
async fn the_device_list_pages_by_id() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let provision = s.token(&[Scope::Provision]).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(
                register(&s, &provision, &format!("SN{i}"), "acme-1")
                    .await
                    .id,
            );
        }
        ids.sort();
        let page = |after: Option<String>| {
            let mut url = s.at("/api/v1/devices?limit=2");
            if let Some(after) = after {
                url.push_str(&format!("&after={after}"));
            }
            let request = s.client.get(url).bearer_auth(&fleet);
            async move {
                request
                    .send()
                    .await
                    .unwrap()
                    .json::<Vec<Value>>()
                    .await
                    .unwrap()
            }
        };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let devices = page(after.clone()).await;
            if devices.is_empty() {
                break;
            }
            assert!(devices.len() <= 2);
            for d in &devices {
                seen.push(d["id"].as_str().unwrap().to_owned());
            }
            after = seen.last().cloned();
        }
        assert_eq!(seen, ids);
        let r = s
            .client
            .get(s.at("/api/v1/devices?limit=0"))
            .bearer_auth(&fleet)
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad_request").await;
        let r = s
            .client
            .get(s.at("/api/v1/devices?limit=abc"))
            .bearer_auth(&fleet)
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad_request").await;
        s.stop().await;
    }
}
