//! Anomaly flags through the API: each rule raised by what devices really send (signed
//! check-ins and reports), one open flag per kind and subject, and acknowledgement.

mod common;

use std::time::Duration;

use common::{ProtocolDevice, TestServer, databases, expect_error};
use otter_keys::signer::FileKey;
use otter_keys::wire::Event;
use otter_server::auth::Scope;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

async fn flags(s: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let r = s
        .client
        .get(s.at(&format!("/api/v1/anomalies{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Vec<Value>>().await.unwrap()
}

/// Publishes `version` of `board`; returns the image hash and the release id.
async fn publish(s: &TestServer, token: &str, board: &str, version: &str) -> ([u8; 32], String) {
    let payload: Vec<u8> = version.bytes().cycle().take(3000).collect();
    let image = s.sign_image(board, version, 1, &payload);
    let sha = Sha256::digest(&image).into();
    let r = s.publish(token, image).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    (sha, body["id"].as_str().unwrap().to_owned())
}

fn v(text: &str) -> otter_boot::image::Version {
    text.parse().unwrap()
}

#[tokio::test]
async fn an_image_that_is_no_release_is_flagged_once_and_acknowledged_once() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let publisher = s.token(&[Scope::Publish]).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let (release_sha, _) = publish(&s, &publisher, "board-a", "1.0.0").await;
        let mut good = ProtocolDevice::register(&s, "board-a", "SN-1").await;
        good.check_in(&s, "1.0.0", release_sha).await;
        assert!(
            flags(&s, &fleet, "").await.is_empty(),
            "a release is no anomaly"
        );

        let mut odd = ProtocolDevice::register(&s, "board-a", "SN-2").await;
        odd.check_in(&s, "1.0.0", [9; 32]).await;
        odd.check_in(&s, "1.0.0", [9; 32]).await;
        let open = flags(&s, &fleet, "").await;
        assert_eq!(open.len(), 1, "{open:?}");
        let flag = &open[0];
        assert_eq!(flag["kind"], "unknown_image");
        assert_eq!(flag["subject"], odd.id.as_str());
        assert_eq!(flag["hardware_id"], "board-a");
        assert_eq!(flag["occurrences"], 1, "the same image again is not news");
        let reason = flag["reason"].as_str().unwrap();
        assert!(reason.contains(&hex::encode([9u8; 32])), "{reason}");

        // A release of another board with that hash would not make it one of this board's.
        let id = flag["id"].as_str().unwrap();
        let ack = |body: Value| {
            s.client
                .post(s.at(&format!("/api/v1/anomalies/{id}/acknowledge")))
                .bearer_auth(&fleet)
                .json(&body)
                .send()
        };
        let r = ack(json!({"note": "lab unit, side-loaded"})).await.unwrap();
        assert_eq!(r.status(), 200);
        let acked: Value = r.json().await.unwrap();
        assert_eq!(acked["acknowledged_note"], "lab unit, side-loaded");
        assert_eq!(acked["acknowledged_by"], "test", "the token's label");
        let again = ack(json!({})).await.unwrap();
        let message = expect_error(again, 409, "conflict").await;
        assert!(message.contains("already acknowledged"), "{message}");
        assert!(flags(&s, &fleet, "").await.is_empty());
        assert_eq!(flags(&s, &fleet, "?open=false").await.len(), 1);

        // Only the fleet scope may read or acknowledge.
        let r = s
            .client
            .get(s.at("/api/v1/anomalies"))
            .bearer_auth(&publisher)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = s
            .client
            .get(s.at("/api/v1/anomalies"))
            .send()
            .await
            .unwrap();
        expect_error(r, 401, "unauthorized").await;
        let r = s
            .client
            .post(s.at("/api/v1/anomalies/anm_nope/acknowledge"))
            .bearer_auth(&fleet)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not_found").await;
        s.stop().await;
    }
}

#[tokio::test]
async fn bad_signatures_under_a_known_device_id_are_flagged_and_counted() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let mut victim = ProtocolDevice::register(&s, "board-b", "SN-V").await;
        let dir = tempfile::tempdir().unwrap();
        let thief = FileKey::generate_at(&dir.path().join("thief.key")).unwrap();
        for _ in 0..2 {
            let message = common::checkin_message(&victim.id, 0, common::unix_now(), "1.0.0");
            let r = victim.check_in_signed_by(&s, message, Some(&thief)).await;
            expect_error(r, 401, "unauthorized").await;
        }
        let open = flags(&s, &fleet, "?kind=bad_signature").await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0]["subject"], victim.id.as_str());
        assert_eq!(open[0]["occurrences"], 2);

        // An id that is no device is a 404 to the sender, and impersonates nobody.
        let message = common::checkin_message("dev_nobody", 1, common::unix_now(), "1.0.0");
        let r = s
            .client
            .post(s.at("/api/v1/devices/dev_nobody/checkin"))
            .json(&otter_keys::wire::Signed::sign(message, &thief).unwrap())
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not_found").await;
        assert_eq!(flags(&s, &fleet, "?kind=bad_signature").await.len(), 1);

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
            metrics.contains("otter_anomalies_total{kind=\"bad_signature\"} 2"),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn repeated_refusals_are_flagged_but_network_failures_are_not() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let failed = |stage: &str| Event::Failed {
            stage: stage.into(),
            reason: "refused".into(),
        };
        let mut flaky = ProtocolDevice::register(&s, "board-c", "SN-F").await;
        for _ in 0..5 {
            flaky.report(&s, failed("download")).await;
        }
        let mut refusing = ProtocolDevice::register(&s, "board-c", "SN-R").await;
        refusing.report(&s, failed("policy")).await;
        refusing.report(&s, failed("verify")).await;
        assert!(
            flags(&s, &fleet, "").await.is_empty(),
            "two are not yet a pattern"
        );
        refusing.report(&s, failed("assignment")).await;
        let open = flags(&s, &fleet, "").await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0]["kind"], "repeated_failures");
        assert_eq!(open[0]["subject"], refusing.id.as_str());
        let reason = open[0]["reason"].as_str().unwrap();
        assert!(reason.contains("3 refusals"), "{reason}");
        assert!(reason.contains("assignment, policy, verify"), "{reason}");
        s.stop().await;
    }
}

#[tokio::test]
async fn a_release_that_rolls_back_far_more_than_the_fleet_is_a_storm() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let publisher = s.token(&[Scope::Publish]).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        publish(&s, &publisher, "board-d", "1.0.0").await;
        let (_, bad_release) = publish(&s, &publisher, "board-d", "1.1.0").await;
        let mut devices = Vec::new();
        for i in 0..6 {
            let mut d = ProtocolDevice::register(&s, "board-d", &format!("SN-{i}")).await;
            d.report(
                &s,
                Event::Installed {
                    version: v("1.0.0"),
                },
            )
            .await;
            d.report(
                &s,
                Event::Installed {
                    version: v("1.1.0"),
                },
            )
            .await;
            devices.push(d);
        }
        // One of six (17 %) is under the storm rate.
        devices[0]
            .report(&s, Event::RolledBack { from: v("1.1.0") })
            .await;
        assert!(flags(&s, &fleet, "").await.is_empty());
        devices[1]
            .report(&s, Event::RolledBack { from: v("1.1.0") })
            .await;
        let open = flags(&s, &fleet, "").await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0]["kind"], "rollback_storm");
        assert_eq!(open[0]["subject"], bad_release.as_str());
        let reason = open[0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("2 of 6 devices rolled back (33%)"),
            "{reason}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn a_device_silent_for_longer_than_configured_is_flagged_once() {
    for kind in databases() {
        let s = TestServer::start_with(kind, |c| c.silent_after = Duration::from_secs(1)).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let quiet = ProtocolDevice::register(&s, "board-e", "SN-Q").await;
        // The sweeper runs every second: the flag appears within a few.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let open = loop {
            let open = flags(&s, &fleet, "?kind=silent").await;
            if !open.is_empty() {
                break open;
            }
            assert!(std::time::Instant::now() < deadline, "no silence flag");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(open[0]["subject"], quiet.id.as_str());
        let reason = open[0]["reason"].as_str().unwrap();
        assert!(reason.contains("never checked in"), "{reason}");
        // Further sweeps do not raise it again.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let open = flags(&s, &fleet, "?kind=silent").await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0]["occurrences"], 1);
        s.stop().await;
    }
}
