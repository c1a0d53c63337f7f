//! Delta jobs: which patches a publish produces, that each one turns its base into the new
//! image byte for byte, when a patch is dropped or skipped, and that a job of a dead worker
//! is taken over.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{TestServer, databases};
use otter_keys::targets::DELTA_ZSTD_WINDOW_LOG;
use otter_server::auth::Scope;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Deterministic incompressible bytes (the worst case for zstd, the best for a delta).
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

/// `base` with a few scattered edits and an insertion, like a small firmware change.
fn edited(base: &[u8], seed: u64) -> Vec<u8> {
    let mut out = base.to_vec();
    let edits = noise(16, seed);
    for (i, b) in edits.iter().enumerate() {
        let at = (i * 2917 + seed as usize * 131) % out.len();
        out[at] ^= b | 1;
    }
    let at = out.len() / 3;
    out.splice(at..at, noise(300, seed + 100));
    out
}

async fn json(response: reqwest::Response) -> Value {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn get(s: &TestServer, token: &str, path: &str) -> Value {
    json(
        s.client
            .get(s.at(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn publish(s: &TestServer, token: &str, image: &[u8]) -> Value {
    let response = s.publish(token, image.to_vec()).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// Polls the job until it has ended (30 s at most).
async fn wait_job(s: &TestServer, token: &str, job: &str) -> Value {
    for _ in 0..300 {
        let body = get(s, token, &format!("/api/v1/delta-jobs/{job}")).await;
        if body["state"] == "done" || body["state"] == "failed" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("delta job {job} did not end in time");
}

fn digest(hex_text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).unwrap();
    out
}

/// Decompresses and applies a stored patch exactly as a device with a 128 KiB window would.
async fn apply(s: &TestServer, delta: &Value, base: &[u8]) -> Vec<u8> {
    let patch = s
        .state
        .blobs
        .read_all(&digest(delta["sha256"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(patch.len() as u64, delta["length"].as_u64().unwrap());
    assert_eq!(hex::encode(Sha256::digest(&patch)), delta["sha256"]);
    let mut decoder = zstd::stream::read::Decoder::new(patch.as_slice()).unwrap();
    decoder.window_log_max(DELTA_ZSTD_WINDOW_LOG).unwrap();
    let mut raw = Vec::new();
    decoder.read_to_end(&mut raw).unwrap();
    let mut out = Vec::new();
    bsdiff::patch(base, &mut raw.as_slice(), &mut out).unwrap();
    out
}

/// The names of the targets in the newest TUF targets metadata, and its version.
async fn tuf_targets(s: &TestServer) -> (u64, Vec<String>) {
    let body: Value = s
        .client
        .get(s.at("/tuf/metadata/targets.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signed = &body["signed"];
    let mut names: Vec<String> = signed["targets"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    names.sort();
    (signed["version"].as_u64().unwrap(), names)
}

fn versions(deltas: &Value) -> Vec<&str> {
    deltas
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["from_version"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn three_releases_get_every_delta_and_each_reproduces_its_release() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let p1 = noise(48 * 1024, 1);
        let p2 = edited(&p1, 2);
        let p3 = edited(&p2, 3);
        let images = [
            s.sign_image("board-a", "1.0.0", 1, &p1),
            s.sign_image("board-a", "1.1.0", 1, &p2),
            s.sign_image("board-a", "1.2.0", 2, &p3),
        ];
        let mut releases = Vec::new();
        for image in &images {
            let release = publish(&s, &token, image).await;
            // The full image is in TUF as soon as the publish answers.
            let (_, names) = tuf_targets(&s).await;
            assert!(names.contains(&release["target_name"].as_str().unwrap().to_owned()));
            releases.push(release);
        }
        let mut jobs = Vec::new();
        for release in &releases {
            jobs.push(wait_job(&s, &token, release["delta_job"]["id"].as_str().unwrap()).await);
        }
        for (job, expected) in jobs.iter().zip([0, 1, 2]) {
            assert_eq!(job["state"], "done", "{job}");
            assert_eq!(job["bases_total"], expected, "{job}");
            assert_eq!(job["bases_done"], expected, "{job}");
            assert!(job["worker"].as_str().unwrap().starts_with("wrk_"), "{job}");
        }
        assert_eq!(jobs[2]["message"], "2 bases: 2 built", "{}", jobs[2]);

        let id = |i: usize| releases[i]["id"].as_str().unwrap().to_owned();
        let r2 = get(&s, &token, &format!("/api/v1/releases/{}", id(1))).await;
        let r3 = get(&s, &token, &format!("/api/v1/releases/{}", id(2))).await;
        assert_eq!(versions(&r2["deltas"]), ["1.0.0"]);
        assert_eq!(
            versions(&r3["deltas"]),
            ["1.1.0", "1.0.0"],
            "newest base first"
        );
        assert_eq!(
            r3["deltas"][1]["target_name"],
            "deltas/board-a/1.0.0_1.2.0.patch"
        );
        assert_eq!(r3["deltas"][0]["from_release"], id(1));
        assert_eq!(r3["deltas"][0]["to_release"], id(2));

        let full = images[2].len() as u64;
        for attempt in r3["delta_job"]["attempts"].as_array().unwrap() {
            assert_eq!(attempt["outcome"], "built", "{attempt}");
            let patch = attempt["patch_length"].as_u64().unwrap();
            let reference = attempt["full_compressed_length"].as_u64().unwrap();
            assert!(patch * 4 < reference && reference > full / 2, "{attempt}");
        }
        for (delta, base) in [
            (&r2["deltas"][0], &images[0]),
            (&r3["deltas"][0], &images[1]),
            (&r3["deltas"][1], &images[0]),
        ] {
            assert!(delta["length"].as_u64().unwrap() < full / 10, "{delta}");
            let to = if delta["to_release"] == id(1) {
                &images[1]
            } else {
                &images[2]
            };
            assert!(
                apply(&s, delta, base).await == *to,
                "{delta} does not reproduce"
            );
        }

        // The deltas are TUF targets too, in a later targets version.
        let (_, names) = tuf_targets(&s).await;
        for delta in r2["deltas"]
            .as_array()
            .unwrap()
            .iter()
            .chain(r3["deltas"].as_array().unwrap())
        {
            assert!(
                names.contains(&delta["target_name"].as_str().unwrap().to_owned()),
                "{names:?}"
            );
        }
        let list = get(&s, &token, "/api/v1/releases?hardware_id=board-a").await;
        assert_eq!(versions(&list[0]["deltas"]), ["1.1.0", "1.0.0"]);

        let metrics = s.state.metrics.render();
        assert!(
            metrics.contains("otter_delta_builds_total{outcome=\"built\"} 3"),
            "{metrics}"
        );
        assert!(
            metrics.contains("otter_delta_build_seconds_count 3"),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn only_the_configured_number_of_bases_is_used() {
    for kind in databases() {
        let s = TestServer::start_with(kind, |c| c.delta_bases = 1).await;
        let token = s.token(&[Scope::Publish]).await;
        let p1 = noise(20_000, 1);
        let p2 = edited(&p1, 2);
        let p3 = edited(&p2, 3);
        let mut last = Value::Null;
        for (version, payload) in [("1.0.0", &p1), ("1.1.0", &p2), ("1.2.0", &p3)] {
            last = publish(&s, &token, &s.sign_image("board-a", version, 1, payload)).await;
            wait_job(&s, &token, last["delta_job"]["id"].as_str().unwrap()).await;
        }
        assert_eq!(last["delta_job"]["bases_total"], 1);
        let r3 = get(
            &s,
            &token,
            &format!("/api/v1/releases/{}", last["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(versions(&r3["deltas"]), ["1.1.0"]);
        s.stop().await;
    }
}

#[tokio::test]
async fn a_patch_that_is_not_clearly_smaller_is_dropped() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let p1 = noise(30_000, 1);
        let p2 = noise(30_000, 2);
        let p3 = edited(&p2, 3);
        let mut releases = Vec::new();
        for (version, payload) in [("1.0.0", &p1), ("2.0.0", &p2), ("2.1.0", &p3)] {
            let release = publish(&s, &token, &s.sign_image("board-a", version, 1, payload)).await;
            wait_job(&s, &token, release["delta_job"]["id"].as_str().unwrap()).await;
            releases.push(release);
        }
        let r2 = get(
            &s,
            &token,
            &format!("/api/v1/releases/{}", releases[1]["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(r2["deltas"], serde_json::json!([]), "{r2}");
        let attempt = &r2["delta_job"]["attempts"][0];
        assert_eq!(attempt["outcome"], "dropped", "{r2}");
        assert_eq!(attempt["from_version"], "1.0.0");
        assert!(
            attempt["patch_length"].as_u64().unwrap() * 100
                > attempt["full_compressed_length"].as_u64().unwrap() * 75,
            "{attempt}"
        );
        assert!(
            attempt["reason"].as_str().unwrap().contains("75%"),
            "{attempt}"
        );
        assert_eq!(r2["delta_job"]["state"], "done");

        let r3 = get(
            &s,
            &token,
            &format!("/api/v1/releases/{}", releases[2]["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(versions(&r3["deltas"]), ["2.0.0"]);
        let outcomes: Vec<&str> = r3["delta_job"]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["built", "dropped"], "{r3}");
        assert_eq!(r3["delta_job"]["message"], "2 bases: 1 built, 1 dropped");
        let metrics = s.state.metrics.render();
        assert!(
            metrics.contains("otter_delta_builds_total{outcome=\"dropped\"} 2"),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn images_over_the_differ_cap_are_skipped() {
    for kind in databases() {
        let s = TestServer::start_with(kind, |c| c.delta_max_image_size = 16 * 1024).await;
        let token = s.token(&[Scope::Publish]).await;
        let small = noise(8 * 1024, 1);
        let big = noise(40 * 1024, 2);
        let mut releases = Vec::new();
        for (version, payload) in [
            ("1.0.0", small.clone()),
            ("1.1.0", big),
            ("1.2.0", edited(&small, 3)),
        ] {
            let release = publish(&s, &token, &s.sign_image("board-a", version, 1, &payload)).await;
            wait_job(&s, &token, release["delta_job"]["id"].as_str().unwrap()).await;
            releases.push(release);
        }
        let r2 = get(
            &s,
            &token,
            &format!("/api/v1/releases/{}", releases[1]["id"].as_str().unwrap()),
        )
        .await;
        let attempt = &r2["delta_job"]["attempts"][0];
        assert_eq!(attempt["outcome"], "skipped", "{r2}");
        assert!(
            attempt["reason"].as_str().unwrap().contains("new image"),
            "{attempt}"
        );
        assert!(
            attempt["reason"]
                .as_str()
                .unwrap()
                .contains("delta_max_image_size"),
            "{attempt}"
        );
        assert!(attempt["patch_length"].is_null());

        let r3 = get(
            &s,
            &token,
            &format!("/api/v1/releases/{}", releases[2]["id"].as_str().unwrap()),
        )
        .await;
        let attempts = r3["delta_job"]["attempts"].as_array().unwrap();
        assert_eq!(attempts[0]["outcome"], "skipped", "{r3}");
        assert!(
            attempts[0]["reason"]
                .as_str()
                .unwrap()
                .contains("base image"),
            "{r3}"
        );
        assert_eq!(attempts[1]["outcome"], "built", "{r3}");
        assert_eq!(versions(&r3["deltas"]), ["1.0.0"]);
        s.stop().await;
    }
}

#[tokio::test]
async fn a_job_of_a_dead_worker_is_taken_over_and_a_live_one_is_left_alone() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let db = s.state.db.pool();
        let p1 = noise(20_000, 1);
        let p2 = edited(&p1, 2);
        let p3 = edited(&p2, 3);
        let mut releases = Vec::new();
        for (version, payload) in [("1.0.0", &p1), ("1.1.0", &p2), ("1.2.0", &p3)] {
            let release = publish(&s, &token, &s.sign_image("board-a", version, 1, payload)).await;
            wait_job(&s, &token, release["delta_job"]["id"].as_str().unwrap()).await;
            releases.push(release);
        }
        let r1 = releases[0]["id"].as_str().unwrap();
        let r3 = releases[2]["id"].as_str().unwrap();
        let job1 = releases[0]["delta_job"]["id"].as_str().unwrap();
        let job3 = releases[2]["delta_job"]["id"].as_str().unwrap();
        let before = get(&s, &token, &format!("/api/v1/delta-jobs/{job3}")).await;

        // A process died while building 1.0.0 -> 1.2.0: the 1.1.0 base is recorded, the other
        // is not, and the heartbeat is an hour old. Another job has a fresh heartbeat.
        sqlx::query("DELETE FROM deltas WHERE from_release = $1 AND to_release = $2")
            .bind(r1)
            .bind(r3)
            .execute(db)
            .await
            .unwrap();
        sqlx::query("DELETE FROM delta_attempts WHERE job_id = $1 AND from_release = $2")
            .bind(job3)
            .bind(r1)
            .execute(db)
            .await
            .unwrap();
        let now = otter_server::db::now();
        let stale = "UPDATE delta_jobs SET state = 'running', worker = $1, updated_at = $2, \
                     bases_done = 1 WHERE id = $3";
        for (worker, at, job) in [("wrk_dead", now - 3600, job3), ("wrk_alive", now, job1)] {
            sqlx::query(stale)
                .bind(worker)
                .bind(at)
                .bind(job)
                .execute(db)
                .await
                .unwrap();
        }

        let after = wait_job(&s, &token, job3).await;
        assert_eq!(after["state"], "done", "{after}");
        assert_ne!(after["worker"], "wrk_dead");
        assert_eq!(after["bases_done"], 2);
        assert_eq!(after["message"], "2 bases: 2 built");
        assert_eq!(
            after["attempts"][0], before["attempts"][0],
            "the recorded base is not built again"
        );
        let r3_view = get(&s, &token, &format!("/api/v1/releases/{r3}")).await;
        assert_eq!(versions(&r3_view["deltas"]), ["1.1.0", "1.0.0"]);
        let rebuilt = &r3_view["deltas"][1];
        let image1 = s.sign_image("board-a", "1.0.0", 1, &p1);
        let image3 = s.sign_image("board-a", "1.2.0", 1, &p3);
        // ed25519 signatures are deterministic, so re-signing gives the published bytes.
        assert_eq!(hex::encode(Sha256::digest(&image1)), releases[0]["sha256"]);
        assert!(apply(&s, rebuilt, &image1).await == image3);

        // Several poll intervals later the job with a live heartbeat is still its owner's.
        tokio::time::sleep(otter_server::deltas::POLL_INTERVAL * 2 + Duration::from_millis(500))
            .await;
        let live = get(&s, &token, &format!("/api/v1/delta-jobs/{job1}")).await;
        assert_eq!(live["state"], "running");
        assert_eq!(live["worker"], "wrk_alive");
        s.stop().await;
    }
}

#[tokio::test]
async fn a_missing_base_fails_its_attempt_and_a_missing_image_fails_the_job() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let blob = |sha: &Value| {
            let sha = sha.as_str().unwrap();
            s.data_dir
                .path()
                .join("blobs/sha256")
                .join(&sha[..2])
                .join(sha)
        };
        let p1 = noise(20_000, 1);
        let p2 = edited(&p1, 2);
        let p3 = edited(&p2, 3);
        let mut releases = Vec::new();
        for (version, payload) in [("1.0.0", &p1), ("1.1.0", &p2)] {
            let release = publish(&s, &token, &s.sign_image("board-a", version, 1, payload)).await;
            wait_job(&s, &token, release["delta_job"]["id"].as_str().unwrap()).await;
            releases.push(release);
        }
        std::fs::remove_file(blob(&releases[0]["sha256"])).unwrap();
        let r3 = publish(&s, &token, &s.sign_image("board-a", "1.2.0", 1, &p3)).await;
        let job = wait_job(&s, &token, r3["delta_job"]["id"].as_str().unwrap()).await;
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["message"], "2 bases: 1 built, 1 failed");
        let failed = &job["attempts"][1];
        assert_eq!(failed["outcome"], "failed", "{job}");
        assert!(
            failed["reason"]
                .as_str()
                .unwrap()
                .contains("reading the base image"),
            "{failed}"
        );

        // A job whose own image is gone fails as a whole, with a message saying why.
        std::fs::remove_file(blob(&r3["sha256"])).unwrap();
        let now = otter_server::db::now();
        sqlx::query(
            "INSERT INTO delta_jobs (id, release_id, state, bases_total, bases_done, message, \
             worker, created_at, updated_at) VALUES ('djob_again', $1, 'queued', 0, 0, '', \
             NULL, $2, $2)",
        )
        .bind(r3["id"].as_str().unwrap())
        .bind(now)
        .execute(s.state.db.pool())
        .await
        .unwrap();
        let job = wait_job(&s, &token, "djob_again").await;
        assert_eq!(job["state"], "failed", "{job}");
        assert!(
            job["message"]
                .as_str()
                .unwrap()
                .contains("reading the new image"),
            "{job}"
        );
        let metrics = s.state.metrics.render();
        assert!(
            metrics.contains("otter_delta_builds_total{outcome=\"failed\"} 1"),
            "{metrics}"
        );
        s.stop().await;
    }
}
