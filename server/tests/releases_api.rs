//! The release routes: publishing a signed image, the checks that refuse bad uploads with
//! the right JSON error, listing and reading releases.

mod common;

use std::time::Duration;

use common::{TestServer, databases, expect_error};
use otter_boot::image::{HEADER_LEN, HardwareId, Version};
use otter_keys::image::{ImageSpec, sign_image};
use otter_keys::signer::FileKey;
use otter_server::auth::Scope;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get(s: &TestServer, token: &str, path: &str) -> reqwest::Response {
    s.client
        .get(s.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Publishes and expects 201; returns the release JSON.
async fn published(s: &TestServer, token: &str, image: Vec<u8>) -> Value {
    let (status, body) = json(s.publish(token, image).await).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Waits until the release's delta job has ended, so a test's server stops idle.
async fn settle(s: &TestServer, token: &str, release: &Value) {
    let job = release["delta_job"]["id"].as_str().unwrap().to_owned();
    for _ in 0..300 {
        let (_, body) = json(get(s, token, &format!("/api/v1/delta-jobs/{job}")).await).await;
        if body["state"] == "done" || body["state"] == "failed" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("delta job {job} did not end");
}

fn staging_is_empty(s: &TestServer) -> bool {
    let dir = s.data_dir.path().join("staging");
    std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none())
}

#[tokio::test]
async fn publish_takes_the_facts_from_the_signed_header_and_stores_the_image() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let publisher = s.token(&[Scope::Publish]).await;
        let image = s.sign_image("board-a", "1.4.2", 7, &noise(5000, 1));
        let body = published(&s, &publisher, image.clone()).await;

        let sha = hex::encode(Sha256::digest(&image));
        assert!(body["id"].as_str().unwrap().starts_with("rel_"), "{body}");
        assert_eq!(body["hardware_id"], "board-a");
        assert_eq!(body["version"], "1.4.2");
        assert_eq!(body["security_counter"], 7);
        assert_eq!(
            body["key_id"],
            s.state.keys.firmware[0].id.to_string(),
            "{body}"
        );
        assert_eq!(body["sha256"], sha);
        assert_eq!(body["length"], image.len());
        assert_eq!(body["target_name"], "firmware/board-a/1.4.2.img");
        assert!(body["created_at"].as_i64().unwrap() > 1_600_000_000);
        assert_eq!(body["deltas"], serde_json::json!([]));
        let job = &body["delta_job"];
        assert!(job["id"].as_str().unwrap().starts_with("djob_"), "{body}");
        assert_eq!(job["release_id"], body["id"]);
        assert_eq!(job["bases_total"], 0, "first release has no base");
        assert!(
            body.get("major").is_none(),
            "internal columns stay internal"
        );

        let mut digest = [0u8; 32];
        hex::decode_to_slice(&sha, &mut digest).unwrap();
        assert_eq!(s.state.blobs.read_all(&digest).await.unwrap(), image);
        assert!(staging_is_empty(&s));

        let id = body["id"].as_str().unwrap();
        for token in [&publisher, &s.token(&[Scope::Fleet]).await, &s.admin_token] {
            let (status, one) = json(get(&s, token, &format!("/api/v1/releases/{id}")).await).await;
            assert_eq!(status, 200, "{one}");
            assert_eq!(one["sha256"], sha);
            assert_eq!(one["delta_job"]["id"], job["id"]);
        }
        settle(&s, &publisher, &body).await;
        let (_, one) = json(get(&s, &publisher, &format!("/api/v1/releases/{id}")).await).await;
        assert_eq!(one["delta_job"]["state"], "done", "{one}");
        assert!(
            one["delta_job"]["message"]
                .as_str()
                .unwrap()
                .contains("no earlier release"),
            "{one}"
        );

        let metrics = s.state.metrics.render();
        assert!(
            metrics.contains("otter_publishes_total{outcome=\"ok\"} 1"),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn tokens_are_required_and_scoped() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let image = s.sign_image("board-a", "1.0.0", 1, &noise(1000, 1));
        let fleet = s.token(&[Scope::Fleet]).await;
        let provision = s.token(&[Scope::Provision]).await;

        let r = s
            .client
            .post(s.at("/api/v1/releases"))
            .body(image.clone())
            .send()
            .await
            .unwrap();
        expect_error(r, 401, "unauthorized").await;
        expect_error(
            s.publish("tok_nope.secret", image.clone()).await,
            401,
            "unauthorized",
        )
        .await;
        expect_error(s.publish(&fleet, image.clone()).await, 403, "forbidden").await;
        expect_error(s.publish(&provision, image).await, 403, "forbidden").await;

        for path in [
            "/api/v1/releases",
            "/api/v1/releases/rel_x",
            "/api/v1/delta-jobs/djob_x",
        ] {
            let r = s.client.get(s.at(path)).send().await.unwrap();
            expect_error(r, 401, "unauthorized").await;
            expect_error(get(&s, &provision, path).await, 403, "forbidden").await;
        }
        let (status, list) = json(get(&s, &s.admin_token, "/api/v1/releases").await).await;
        assert_eq!((status, list), (200, serde_json::json!([])));
        s.stop().await;
    }
}

#[tokio::test]
async fn an_image_over_the_size_limit_is_refused_before_and_while_streaming() {
    for kind in databases() {
        let s = TestServer::start_with(kind.clone(), |c| c.max_image_size = 4096).await;
        let token = s.token(&[Scope::Publish]).await;
        let image = s.sign_image("board-a", "1.0.0", 1, &noise(8000, 1));

        // Declared too large.
        let message = expect_error(
            s.publish(&token, image.clone()).await,
            413,
            "payload_too_large",
        )
        .await;
        assert!(message.contains("4096"), "{message}");

        // No length declared: counted while streaming.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            image.chunks(1000).map(|c| Ok(c.to_vec())).collect();
        let r = s
            .client
            .post(s.at("/api/v1/releases"))
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .unwrap();
        expect_error(r, 413, "payload_too_large").await;
        assert!(
            staging_is_empty(&s),
            "a refused upload leaves nothing behind"
        );

        // Just under the limit is fine, also when streamed.
        let small = s.sign_image("board-a", "1.0.0", 1, &noise(4096 - 192, 2));
        assert_eq!(small.len(), 4096);
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            small.chunks(1000).map(|c| Ok(c.to_vec())).collect();
        let r = s
            .client
            .post(s.at("/api/v1/releases"))
            .bearer_auth(&token)
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .unwrap();
        let body = published_response(r).await;
        settle(&s, &token, &body).await;

        // The JSON limit of other routes does not apply to uploads.
        s.stop().await;
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let big = s.sign_image("board-a", "1.0.0", 1, &noise(300 * 1024, 3));
        let body = published(&s, &token, big).await;
        settle(&s, &token, &body).await;
        s.stop().await;
    }
}

async fn published_response(r: reqwest::Response) -> Value {
    let (status, body) = json(r).await;
    assert_eq!(status, 201, "{body}");
    body
}

#[tokio::test]
async fn malformed_uploads_are_bad_requests() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let image = s.sign_image("board-a", "1.0.0", 1, &noise(2000, 1));

        let empty = expect_error(s.publish(&token, Vec::new()).await, 400, "bad_request").await;
        assert!(empty.contains("truncated"), "{empty}");
        expect_error(
            s.publish(&token, image[..50].to_vec()).await,
            400,
            "bad_request",
        )
        .await;
        let cut = expect_error(
            s.publish(&token, image[..image.len() - 1].to_vec()).await,
            400,
            "bad_request",
        )
        .await;
        assert!(cut.contains("truncated"), "{cut}");
        let mut long = image.clone();
        long.extend_from_slice(b"junk");
        let trailing = expect_error(s.publish(&token, long).await, 400, "bad_request").await;
        assert!(trailing.contains("declares"), "{trailing}");
        let mut bad_magic = image.clone();
        bad_magic[..4].copy_from_slice(b"ELF\x7f");
        let magic = expect_error(s.publish(&token, bad_magic).await, 400, "bad_request").await;
        assert!(magic.contains("magic"), "{magic}");
        let mut reserved = image.clone();
        reserved[HEADER_LEN - 1] = 1;
        expect_error(s.publish(&token, reserved).await, 400, "bad_request").await;

        let form = s
            .client
            .post(s.at("/api/v1/releases"))
            .bearer_auth(&token)
            .header("content-type", "multipart/form-data; boundary=x")
            .body("--x\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc\r\n--x--\r\n")
            .send()
            .await
            .unwrap();
        let hint = expect_error(form, 400, "bad_request").await;
        assert!(hint.contains("application/octet-stream"), "{hint}");

        assert!(staging_is_empty(&s));
        let (_, list) = json(get(&s, &token, "/api/v1/releases").await).await;
        assert_eq!(list, serde_json::json!([]));
        s.stop().await;
    }
}

#[tokio::test]
async fn images_that_do_not_verify_are_unprocessable() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let payload = noise(2000, 1);
        let image = s.sign_image("board-a", "1.0.0", 1, &payload);

        let rogue = FileKey::generate_at(&s.data_dir.path().join("rogue.key")).unwrap();
        let spec = ImageSpec {
            hardware_id: HardwareId::new("board-a").unwrap(),
            version: "1.0.0".parse::<Version>().unwrap(),
            security_counter: 1,
        };
        let untrusted = sign_image(&payload, &spec, &rogue).unwrap();
        let message = expect_error(s.publish(&token, untrusted).await, 422, "unprocessable").await;
        assert!(message.contains("not a firmware key"), "{message}");

        let mut tampered = image.clone();
        tampered[HEADER_LEN + 100] ^= 0x01;
        let message = expect_error(s.publish(&token, tampered).await, 422, "unprocessable").await;
        assert!(message.contains("SHA-256"), "{message}");

        let mut bad_signature = image.clone();
        let last = bad_signature.len() - 1;
        bad_signature[last] ^= 0x80;
        let message =
            expect_error(s.publish(&token, bad_signature).await, 422, "unprocessable").await;
        assert!(message.contains("signature"), "{message}");

        // A header edit (a version bump without re-signing) breaks the signature too.
        let mut bumped = image.clone();
        bumped[44] = 9;
        expect_error(s.publish(&token, bumped).await, 422, "unprocessable").await;

        assert!(staging_is_empty(&s));
        let body = published(&s, &token, image).await;
        settle(&s, &token, &body).await;
        let metrics = s.state.metrics.render();
        assert!(
            metrics.contains("otter_publishes_total{outcome=\"unprocessable\"} 4"),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn versions_and_security_counters_only_go_up() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let first = published(
            &s,
            &token,
            s.sign_image("board-a", "1.1.0", 5, &noise(1000, 1)),
        )
        .await;

        let same = s.sign_image("board-a", "1.1.0", 5, &noise(1000, 2));
        let message = expect_error(s.publish(&token, same).await, 409, "conflict").await;
        assert!(message.contains("1.1.0"), "{message}");
        let lower = s.sign_image("board-a", "1.0.9", 5, &noise(1000, 3));
        let message = expect_error(s.publish(&token, lower).await, 409, "conflict").await;
        assert!(message.contains("not greater"), "{message}");
        let lower_counter = s.sign_image("board-a", "1.2.0", 4, &noise(1000, 4));
        let message = expect_error(s.publish(&token, lower_counter).await, 409, "conflict").await;
        assert!(message.contains("security counter"), "{message}");

        // Another board has its own history; equal counters are fine.
        let other = published(
            &s,
            &token,
            s.sign_image("board-b", "1.0.0", 1, &noise(1000, 5)),
        )
        .await;
        let second = published(
            &s,
            &token,
            s.sign_image("board-a", "1.2.0", 5, &noise(1000, 6)),
        )
        .await;
        assert_eq!(second["delta_job"]["bases_total"], 1);
        let r = s
            .publish(&token, s.sign_image("board-a", "1.1.5", 6, &noise(1000, 7)))
            .await;
        expect_error(r, 409, "conflict").await;
        for body in [&first, &other, &second] {
            settle(&s, &token, body).await;
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn concurrent_publishes_of_one_version_admit_exactly_one() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let uploads = (0..4u64).map(|i| {
            let image = s.sign_image("board-a", "2.0.0", 1, &noise(20_000, i));
            s.publish(&token, image)
        });
        let mut created = Vec::new();
        for response in futures_util::future::join_all(uploads).await {
            match response.status().as_u16() {
                201 => created.push(response.json::<Value>().await.unwrap()),
                _ => {
                    expect_error(response, 409, "conflict").await;
                }
            }
        }
        assert_eq!(created.len(), 1);
        let (_, list) = json(get(&s, &token, "/api/v1/releases?hardware_id=board-a").await).await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        settle(&s, &token, &created[0]).await;
        s.stop().await;
    }
}

#[tokio::test]
async fn list_is_newest_first_and_filters_and_unknown_ids_are_not_found() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let mut bodies = Vec::new();
        for (hw, version) in [
            ("board-a", "1.0.0"),
            ("board-b", "3.0.0"),
            ("board-a", "1.10.0"),
        ] {
            let image = s.sign_image(hw, version, 1, &noise(1000, bodies.len() as u64));
            bodies.push(published(&s, &token, image).await);
        }

        let (status, list) =
            json(get(&s, &token, "/api/v1/releases?hardware_id=board-a").await).await;
        assert_eq!(status, 200);
        let versions: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["1.10.0", "1.0.0"], "numeric, not text, order");
        assert!(list[0].get("delta_job").is_none());
        let (_, all) = json(get(&s, &token, "/api/v1/releases").await).await;
        assert_eq!(all.as_array().unwrap().len(), 3);
        let (_, one) = json(get(&s, &token, "/api/v1/releases?limit=1").await).await;
        assert_eq!(one.as_array().unwrap().len(), 1);
        let (_, none) = json(get(&s, &token, "/api/v1/releases?hardware_id=board-z").await).await;
        assert_eq!(none, serde_json::json!([]));

        expect_error(
            get(&s, &token, "/api/v1/releases?limit=0").await,
            400,
            "bad_request",
        )
        .await;
        expect_error(
            get(&s, &token, "/api/v1/releases?limit=x").await,
            400,
            "bad_request",
        )
        .await;
        expect_error(
            get(&s, &token, "/api/v1/releases?colour=red").await,
            400,
            "bad_request",
        )
        .await;
        let message = expect_error(
            get(&s, &token, "/api/v1/releases/rel_nope").await,
            404,
            "not_found",
        )
        .await;
        assert!(message.contains("rel_nope"), "{message}");
        expect_error(
            get(&s, &token, "/api/v1/delta-jobs/djob_nope").await,
            404,
            "not_found",
        )
        .await;
        let r = s
            .client
            .delete(s.at("/api/v1/releases"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        expect_error(r, 405, "method_not_allowed").await;

        let doc: Value = s
            .client
            .get(s.at("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (path, method) in [
            ("/api/v1/releases", "post"),
            ("/api/v1/releases", "get"),
            ("/api/v1/releases/{id}", "get"),
            ("/api/v1/delta-jobs/{id}", "get"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{path} {method}");
        }
        for body in &bodies {
            settle(&s, &token, body).await;
        }
        s.stop().await;
    }
}
