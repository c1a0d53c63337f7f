//! No input can take the server down through the differ: a real UEFI firmware volume (58 %
//! `0xFF`, the input that overflowed the old suffix sort's stack) diffs into a working delta;
//! a differ process that crashes or hangs fails only its job, after a bounded number of
//! runs, with the reason; a job of a worker whose process died is reclaimed at once.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{DbKind, TestServer, databases};
use otter_server::auth::Scope;
use otter_server::deltas::jobs::MAX_RUNS;
use otter_server::deltas::lease::{Lease, lease_dir};
use serde_json::Value;

const SERVER_BIN: &str = env!("CARGO_BIN_EXE_otter-server");

/// Where Debian's `ovmf` package installs the UEFI firmware code volume.
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";

/// The OVMF code volume, or `None` (with the reason printed) when the package is missing.
/// Under `OTTER_REQUIRE_ALL=1` a missing package fails the test.
fn ovmf_code() -> Option<Vec<u8>> {
    let path = std::env::var("OTTER_OVMF_CODE").unwrap_or_else(|_| OVMF_CODE.to_owned());
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            assert!(
                std::env::var("OTTER_REQUIRE_ALL").as_deref() != Ok("1"),
                "OTTER_REQUIRE_ALL=1 but {path} is unreadable ({e}); install it with \
                 `apt-get install -y ovmf`"
            );
            eprintln!("skipping the OVMF delta: {path}: {e} (apt-get install -y ovmf)");
            None
        }
    }
}

/// The next firmware build of `base`: 4096 bytes of its code changed, its `0xFF` padding as
/// it was (this pair overflowed a 2 MiB stack in the `bsdiff` crate's suffix sort).
fn next_build(base: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    let (mut at, mut changed) = (4096, 0);
    while at < out.len() && changed < 4096 {
        if out[at] != 0xff {
            out[at] = out[at].wrapping_add(0x5b);
            changed += 1;
        }
        at += 397;
    }
    out
}

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

async fn get(s: &TestServer, token: &str, path: &str) -> Value {
    let response = s
        .client
        .get(s.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn publish(s: &TestServer, token: &str, image: Vec<u8>) -> Value {
    let response = s.publish(token, image).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// Polls a job until it is done or failed (`limit` at most).
async fn wait_job(s: &TestServer, token: &str, job: &str, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let body = get(s, token, &format!("/api/v1/delta-jobs/{job}")).await;
        if body["state"] == "done" || body["state"] == "failed" {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delta job did not end: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A differ program that behaves badly: a shell script in `dir`.
fn bad_differ(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Publishes 1.0.0 and 1.1.0 of `board` and returns the second release's delta job.
async fn two_releases(s: &TestServer, token: &str, board: &str, v1: &[u8], v2: &[u8]) -> Value {
    let first = publish(s, token, s.sign_image(board, "1.0.0", 1, v1)).await;
    let job = first["delta_job"]["id"].as_str().unwrap().to_owned();
    wait_job(s, token, &job, Duration::from_secs(60)).await;
    publish(s, token, s.sign_image(board, "1.1.0", 1, v2)).await
}

#[tokio::test]
async fn ovmf_firmware_volumes_diff_into_a_working_delta() {
    let Some(v1) = ovmf_code() else { return };
    let v2 = next_build(&v1);
    // Both ways: in the server process on a blocking thread's 2 MiB stack (where the old
    // suffix sort aborted the process), and in the differ child the server binary runs.
    for differ in [None, Some(PathBuf::from(SERVER_BIN))] {
        let s = TestServer::start_with(DbKind::Sqlite, |c| c.delta_differ = differ.clone()).await;
        let token = s.token(&[Scope::Publish]).await;
        let release = two_releases(&s, &token, "ovmf-x64", &v1, &v2).await;
        let job = release["delta_job"]["id"].as_str().unwrap();
        let job = wait_job(&s, &token, job, Duration::from_secs(600)).await;
        assert_eq!(job["state"], "done", "{differ:?}: {job}");
        assert_eq!(job["attempts"][0]["outcome"], "built", "{differ:?}: {job}");
        let id = release["id"].as_str().unwrap();
        let view = get(&s, &token, &format!("/api/v1/releases/{id}")).await;
        let delta = &view["deltas"][0];
        let name = delta["target_name"].as_str().unwrap();
        let patch = s
            .client
            .get(s.at(&format!("/tuf/targets/{name}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let old_image = s.sign_image("ovmf-x64", "1.0.0", 1, &v1);
        let rebuilt = otter_server::deltas::build::apply(&old_image, &patch).unwrap();
        assert!(rebuilt == s.sign_image("ovmf-x64", "1.1.0", 1, &v2));
        s.stop().await;
    }
}

#[tokio::test]
async fn a_crashing_or_hanging_differ_fails_its_job_after_the_last_run_and_the_server_stays_up() {
    let scripts = tempfile::tempdir().unwrap();
    let cases = [
        (
            bad_differ(scripts.path(), "abort", "kill -ABRT $$"),
            "signal 6",
        ),
        (
            bad_differ(scripts.path(), "hang", "exec sleep 600"),
            "time limit",
        ),
        (
            bad_differ(scripts.path(), "garbage", "echo nonsense"),
            "not a patch",
        ),
    ];
    for kind in databases() {
        for (program, reason) in &cases {
            let s = TestServer::start_with(kind.clone(), |c| {
                c.delta_differ = Some(program.clone());
                c.delta_timeout = Duration::from_secs(1);
            })
            .await;
            let token = s.token(&[Scope::Publish, Scope::Fleet]).await;
            let v1 = noise(30_000, 1);
            let mut v2 = v1.clone();
            v2[100] ^= 1;
            let release = two_releases(&s, &token, "board-a", &v1, &v2).await;
            let job = release["delta_job"]["id"].as_str().unwrap();
            let job = wait_job(&s, &token, job, Duration::from_secs(120)).await;
            assert_eq!(job["state"], "failed", "{job}");
            assert_eq!(job["runs"], MAX_RUNS, "{job}");
            let message = job["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("failed {MAX_RUNS} times")),
                "{message}"
            );
            assert!(message.contains(reason), "{reason}: {message}");
            // The server still answers, and the full image is offered without a delta.
            let health = s.client.get(s.at("/healthz")).send().await.unwrap();
            assert_eq!(health.status(), 200);
            let targets = s
                .client
                .get(s.at("/tuf/metadata/targets.json"))
                .send()
                .await
                .unwrap();
            let targets: Value = targets.json().await.unwrap();
            let names: Vec<&String> = targets["signed"]["targets"]
                .as_object()
                .unwrap()
                .keys()
                .collect();
            assert!(
                names
                    .iter()
                    .any(|n| n.as_str() == "firmware/board-a/1.1.0.img"),
                "{names:?}"
            );
            s.stop().await;
        }
    }
}

#[tokio::test]
async fn a_job_of_a_worker_whose_process_died_is_reclaimed_at_once() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let token = s.token(&[Scope::Publish]).await;
        let mut jobs = Vec::new();
        for (version, seed) in [("1.0.0", 1), ("1.1.0", 2)] {
            let image = s.sign_image("board-a", version, 1, &noise(20_000, seed));
            let release = publish(&s, &token, image).await;
            let job = release["delta_job"]["id"].as_str().unwrap().to_owned();
            wait_job(&s, &token, &job, Duration::from_secs(60)).await;
            jobs.push(job);
        }
        // Two jobs "running" with fresh heartbeats: one of a worker whose process was killed
        // (its lease file is left, unlocked), one of a live worker holding its lease.
        let dir = lease_dir(&s.state.config.data_dir);
        std::fs::write(dir.join("wrk_killed.lock"), b"").unwrap();
        let live = Lease::take(&dir, "wrk_alive").unwrap();
        let now = otter_server::db::now();
        for (worker, job) in [("wrk_killed", &jobs[1]), ("wrk_alive", &jobs[0])] {
            sqlx::query(
                "UPDATE delta_jobs SET state = 'running', worker = $1, updated_at = $2 \
                 WHERE id = $3",
            )
            .bind(worker)
            .bind(now)
            .bind(job)
            .execute(s.state.db.pool())
            .await
            .unwrap();
        }
        // Far sooner than a stale heartbeat (minutes) would allow.
        let after = wait_job(&s, &token, &jobs[1], Duration::from_secs(30)).await;
        assert_eq!(after["state"], "done", "{after}");
        assert_eq!(after["runs"], 2, "the killed run counts: {after}");
        assert!(!dir.join("wrk_killed.lock").exists());
        tokio::time::sleep(otter_server::deltas::POLL_INTERVAL * 2).await;
        let held = get(&s, &token, &format!("/api/v1/delta-jobs/{}", jobs[0])).await;
        assert_eq!(held["state"], "running", "{held}");
        assert_eq!(held["worker"], "wrk_alive");
        drop(live);
        s.stop().await;
    }
}
