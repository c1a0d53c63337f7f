//! No endless rollback loop: a release a device rolled back, or whose trial failed its
//! health check, is not assigned to that device again (the director passes its rollout
//! over, to the release of an older rollout the device is a member of); a newer rollout's
//! release still is; an operator's retry makes the rejected one assignable again.

mod common;

use common::{ProtocolDevice, TestServer, databases, expect_error};
use otter_keys::wire::Event;
use otter_server::auth::Scope;
use serde_json::Value;

/// Publishes `version` of board-r; its image hash.
async fn publish(s: &TestServer, token: &str, version: &str) -> [u8; 32] {
    use sha2::Digest;
    let payload: Vec<u8> = version.bytes().cycle().take(4000).collect();
    let image = s.sign_image("board-r", version, 1, &payload);
    let sha = sha2::Sha256::digest(&image).into();
    let r = s.publish(token, image).await;
    assert_eq!(r.status(), 201);
    sha
}

async fn retry(s: &TestServer, token: &str, device: &str) -> reqwest::Response {
    s.client
        .post(s.at(&format!("/api/v1/devices/{device}/retry")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rolled_back_or_failed_release_is_not_reassigned_until_an_operator_retries() {
    for kind in databases() {
        // Rollouts complete only on the devices' reports here, never by the ticker.
        let s = TestServer::start_with(kind, |c| {
            c.rollout_tick = std::time::Duration::from_secs(3600);
        })
        .await;
        let publisher = s.token(&[Scope::Publish]).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let v = |text: &str| text.parse().unwrap();
        let v1_sha = publish(&s, &publisher, "1.0.0").await;
        publish(&s, &publisher, "1.1.0").await;
        let mut device = ProtocolDevice::register(&s, "board-r", "SN-R").await;
        // 1.0.0 is rolled out and the device vouches for it: that rollout completes, the
        // device stays its member (1.0.0 is what it falls back to).
        s.roll_out_soaked(&s.release_id("board-r", "1.0.0").await, "0s")
            .await;
        assert_eq!(device.assigned_version(&s).await.as_deref(), Some("1.0.0"));
        device
            .report(
                &s,
                Event::Healthy {
                    version: v("1.0.0"),
                    image_sha256: v1_sha,
                },
            )
            .await;
        s.roll_out_soaked(&s.release_id("board-r", "1.1.0").await, "0s")
            .await;
        assert_eq!(device.assigned_version(&s).await.as_deref(), Some("1.1.0"));

        // 1.1.0 is installed, boots on trial and is rolled back: the previous release now.
        device
            .report(
                &s,
                Event::Installed {
                    version: v("1.1.0"),
                },
            )
            .await;
        device
            .report(&s, Event::RolledBack { from: v("1.1.0") })
            .await;
        assert_eq!(device.assigned_version(&s).await.as_deref(), Some("1.0.0"));
        assert_eq!(device.assigned_version(&s).await.as_deref(), Some("1.0.0"));

        // A newer release is still offered; its failed health check rejects it too.
        publish(&s, &publisher, "1.2.0").await;
        assert_eq!(
            device.assigned_version(&s).await.as_deref(),
            Some("1.0.0"),
            "1.2.0 is not rolled out"
        );
        s.roll_out_soaked(&s.release_id("board-r", "1.2.0").await, "0s")
            .await;
        assert_eq!(device.assigned_version(&s).await.as_deref(), Some("1.2.0"));
        device
            .report(
                &s,
                Event::Booted {
                    version: v("1.2.0"),
                    image_sha256: [0x12; 32],
                },
            )
            .await;
        device
            .report(
                &s,
                Event::Failed {
                    stage: "health".into(),
                    reason: "watchdog".into(),
                },
            )
            .await;
        assert_eq!(device.assigned_version(&s).await.as_deref(), Some("1.0.0"));
        // A download failure says nothing about the image: nothing more is rejected.
        device
            .report(
                &s,
                Event::Failed {
                    stage: "download".into(),
                    reason: "connection reset".into(),
                },
            )
            .await;
        assert_eq!(device.assigned_version(&s).await.as_deref(), Some("1.0.0"));

        // Only the fleet may retry, and only a known device.
        expect_error(retry(&s, &publisher, &device.id).await, 403, "forbidden").await;
        expect_error(retry(&s, &fleet, "dev_missing").await, 404, "not_found").await;
        let r = retry(&s, &fleet, &device.id).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["cleared"].as_array().unwrap().len(), 2, "{body}");
        assert_eq!(device.assigned_version(&s).await.as_deref(), Some("1.2.0"));

        // The route is in the OpenAPI document.
        let doc: Value = s
            .client
            .get(s.at("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            doc["paths"]["/api/v1/devices/{id}/retry"]["post"].is_object(),
            "{}",
            doc["paths"]
        );
        s.stop().await;
    }
}
