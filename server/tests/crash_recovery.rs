//! The real `otter-server` binary killed with SIGKILL at the worst moments (right after a
//! release commits, during an upload, during a delta job) and restarted on the same data
//! dir: nothing acknowledged is lost, no release is assigned that signed TUF does not list,
//! staging is empty, the delta job resumes at once and finishes, and python-tuf loads the
//! repository. Plus, in process: the director never assigns an unsigned release.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::{self, BIN, Running};
use otter_boot::image::{HardwareId, Version};
use otter_keys::image::{ImageSpec, sign_image};
use otter_keys::keyset::{KeySet, Role};
use otter_keys::signer::{FileKey, Signer};
use otter_keys::wire::{AssignedTarget, Assignment, Signed};
use serde_json::Value;

const BOARD: &str = "crash-board";

type Server = Running;

/// `otter-server serve` on `data` with extra flags and environment.
fn start(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    binary::spawn(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .envs(env.iter().copied()),
    )
}

fn sign(data: &Path, version: &str, payload: &[u8]) -> Vec<u8> {
    let keys = KeySet::open(&data.join("dev-keys")).unwrap();
    let spec = ImageSpec {
        hardware_id: HardwareId::new(BOARD).unwrap(),
        version: version.parse::<Version>().unwrap(),
        security_counter: 1,
    };
    sign_image(payload, &spec, &keys.signing_firmware_key().unwrap()).unwrap()
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

fn now() -> u64 {
    jiff::Timestamp::now().as_second() as u64
}

fn staging_files(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("staging"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// The targets of the served (signed) targets metadata: name → sha256 hex.
async fn signed_targets(http: &reqwest::Client, s: &Server) -> Value {
    let body: Value = http
        .get(s.at("/tuf/metadata/targets.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["signed"]["targets"].clone()
}

struct Device {
    id: String,
    key: FileKey,
    counter: u64,
    _dir: tempfile::TempDir,
}

impl Device {
    async fn register(http: &reqwest::Client, base: &str, token: &str) -> Self {
        let device = common::register_device(http, base, token, BOARD, "SN-CRASH").await;
        Self {
            id: device.id,
            key: device.key,
            counter: 0,
            _dir: device.dir,
        }
    }

    /// Checks in and returns the verified assignment's target.
    async fn checkin(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        director: &[u8; 32],
    ) -> Option<AssignedTarget> {
        self.counter += 1;
        let message = common::checkin_message(&self.id, self.counter, now(), "0.1.0");
        let signed = Signed::sign(message, &self.key).unwrap();
        let answer: Signed<Assignment> = http
            .post(format!("{base}/api/v1/devices/{}/checkin", self.id))
            .json(&signed)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let assignment = answer
            .verify(director, &self.id, self.counter, now())
            .unwrap();
        assignment.target.clone()
    }
}

/// Every target the director assigns is listed in signed TUF with its hash.
async fn assert_assigned_is_signed(
    http: &reqwest::Client,
    s: &Server,
    device: &mut Device,
    director: &[u8; 32],
    expected: &str,
) {
    let target = device
        .checkin(http, &s.url, director)
        .await
        .expect("a target");
    assert_eq!(target.version.to_string(), expected);
    let listed = signed_targets(http, s).await;
    assert_eq!(
        listed[&target.name]["hashes"]["sha256"],
        hex::encode(target.sha256),
        "assigned {} is not in signed TUF: {listed}",
        target.name
    );
}

async fn job_state(http: &reqwest::Client, s: &Server, token: &str, job: &str) -> Value {
    http.get(s.at(&format!("/api/v1/delta-jobs/{job}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls until `done(job)` holds (60 s at most).
async fn wait_job(
    http: &reqwest::Client,
    s: &Server,
    token: &str,
    job: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = job_state(http, s, token, job).await;
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "job never got there: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a publish of `image` and stops sending halfway; returns the open connection.
fn partial_upload(s: &Server, token: &str, image: &[u8]) -> std::net::TcpStream {
    let addr = s.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /api/v1/releases HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        image.len()
    )
    .unwrap();
    stream.write_all(&image[..image.len() / 2]).unwrap();
    stream.flush().unwrap();
    stream
}

#[tokio::test]
async fn kill_9_at_the_worst_moments_loses_nothing_and_leaves_tuf_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let p1 = noise(200_000, 1);
    let mut p2 = p1.clone();
    p2[1000..1100].copy_from_slice(&noise(100, 2));

    // 1. Killed right after the release row commits, before TUF is signed.
    let mut s = start(&data, &[], &[("OTTER_FAULT", "after-release-commit")]);
    let admin = s.wait_for("tok_").trim().to_owned();
    let v1 = sign(&data, "1.0.0", &p1);
    let answer = http
        .post(s.at("/api/v1/releases"))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(v1.clone())
        .send()
        .await;
    assert!(
        answer.is_err(),
        "the server died before answering: {answer:?}"
    );
    s.wait_killed();

    // Restarted: the committed release is signed at start and only then assigned.
    let s = start(&data, &[], &[]);
    let director = KeySet::open(&data.join("dev-keys"))
        .unwrap()
        .role_key(Role::Director)
        .unwrap()
        .public_key();
    let mut device = Device::register(&http, &s.url, &admin).await;
    let keys = KeySet::open(&data.join("dev-keys")).unwrap();
    let v1_id = common::release_id_at(&http, &s.url, &admin, BOARD, "1.0.0").await;
    let first = common::roll_out_at(&http, &s.url, &admin, &keys, &v1_id, "1h").await;
    assert_assigned_is_signed(&http, &s, &mut device, &director, "1.0.0").await;

    // 2. Killed during an upload: the partial file is gone after the restart.
    let v2 = sign(&data, "1.1.0", &p2);
    let _conn = partial_upload(&s, &admin, &v2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while staging_files(&data).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the upload never reached staging"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill9();
    assert!(
        !staging_files(&data).is_empty(),
        "a partial upload was left"
    );

    // 3. Killed during a delta job (its differ hangs, so the job is surely running).
    let scripts = tempfile::tempdir().unwrap();
    let hang = scripts.path().join("hang");
    // Hangs until its parent, the server, is gone.
    std::fs::write(
        &hang,
        "#!/bin/sh\nwhile kill -0 $PPID 2>/dev/null; do sleep 0.2; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = start(&data, &["--delta-differ", hang.to_str().unwrap()], &[]);
    assert!(
        staging_files(&data).is_empty(),
        "{:?}",
        staging_files(&data)
    );
    let published: Value = http
        .post(s.at("/api/v1/releases"))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(v2.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(published["version"], "1.1.0", "{published}");
    let job = published["delta_job"]["id"].as_str().unwrap().to_owned();
    wait_job(&http, &s, &admin, &job, |j| j["state"] == "running").await;
    s.kill9();

    // Restarted with the real differ: the dead worker's job is reclaimed at once and built.
    let s = start(&data, &[], &[]);
    let finished = wait_job(&http, &s, &admin, &job, |j| j["state"] == "done").await;
    assert_eq!(finished["attempts"][0]["outcome"], "built", "{finished}");
    assert!(staging_files(&data).is_empty());
    let listed = signed_targets(&http, &s).await;
    let delta = format!("deltas/{BOARD}/1.0.0_1.1.0.patch");
    assert!(listed.get(&delta).is_some(), "{listed}");
    common::rollout_command_at(&http, &s.url, &admin, &first, "abort").await;
    let v2_id = common::release_id_at(&http, &s.url, &admin, BOARD, "1.1.0").await;
    common::roll_out_at(&http, &s.url, &admin, &keys, &v2_id, "1h").await;
    assert_assigned_is_signed(&http, &s, &mut device, &director, "1.1.0").await;
    python_tuf_loads(
        &s,
        &data,
        &[
            format!("firmware/{BOARD}/1.0.0.img"),
            format!("firmware/{BOARD}/1.1.0.img"),
            delta,
        ],
    )
    .await;
    s.kill9();
}

/// python-tuf's reference client refreshes the metadata and downloads `targets`.
async fn python_tuf_loads(s: &Server, data: &Path, targets: &[String]) {
    let probe = Command::new("python3")
        .args(["-c", "import tuf.ngclient"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("OTTER_REQUIRE_ALL").as_deref() != Ok("1"),
            "OTTER_REQUIRE_ALL=1 but python-tuf is missing (pip install tuf)"
        );
        eprintln!("skipping python-tuf: it is missing (pip install tuf)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_tuf_client.py");
    let work = tempfile::tempdir().unwrap();
    let mut args = vec![
        script.display().to_string(),
        s.at("/tuf/metadata/"),
        s.at("/tuf/targets/"),
        data.join("dev-keys/1.root.json").display().to_string(),
        work.path().display().to_string(),
    ];
    args.extend(targets.iter().cloned());
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(&args).output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "python-tuf failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_director_assigns_only_releases_that_signed_tuf_lists() {
    // Served without the background tasks, so nothing signs behind the test's back.
    let dir = tempfile::tempdir().unwrap();
    let app = otter_server::App::open(otter_server::Config::with_data_dir(dir.path()))
        .await
        .unwrap();
    let admin = app.first_admin_token.as_ref().unwrap().token.clone();
    let state = app.state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn(async move { axum::serve(listener, app.router()).await });
    let http = reqwest::Client::new();
    let published = http
        .post(format!("{base}/api/v1/releases"))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(sign(dir.path(), "1.0.0", &noise(5000, 1)))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201);
    // A newer release row that committed without its signing (a crash in between).
    let v: Version = "2.0.0".parse().unwrap();
    sqlx::query(
        "INSERT INTO releases (id, hardware_id, version, major, minor, patch, \
         security_counter, key_id, sha256, length, target_name, created_at) \
         VALUES ('rel_unsigned', $1, '2.0.0', 2, 0, 0, 1, 'k', $2, 4096, $3, 0)",
    )
    .bind(BOARD)
    .bind("ab".repeat(32))
    .bind(otter_keys::targets::image_target_name(BOARD, v))
    .execute(state.db.pool())
    .await
    .unwrap();
    let mut device = Device::register(&http, &base, &admin).await;
    let keys = KeySet::open(&dir.path().join("dev-keys")).unwrap();
    let director = keys.role_key(Role::Director).unwrap().public_key();
    // 1.0.0 is rolled out to the whole board, then the unsigned 2.0.0 to the devices
    // tagged "next" (this one): the newer rollout is passed over while TUF does not list
    // its release.
    let old_id = common::release_id_at(&http, &base, &admin, BOARD, "1.0.0").await;
    common::roll_out_at(&http, &base, &admin, &keys, &old_id, "1h").await;
    let tagged = http
        .post(format!("{base}/api/v1/devices/{}/tags", device.id))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"tags": ["next"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
    let release = common::release_at(&http, &base, &admin, "rel_unsigned").await;
    let policy = common::sign_policy(&keys, "rol_next", &release, "100%");
    let created = http
        .post(format!("{base}/api/v1/rollouts"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "release_id": "rel_unsigned", "cohort": {"tags": ["next"]},
            "stages": [{"percent": "100%", "soak": "1h"}],
            "failure_threshold": {"max": "10%", "min_devices": 10},
            "device_timeout": "24h", "policy": policy}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    common::rollout_command_at(&http, &base, &admin, "rol_next", "start").await;
    let assigned = device.checkin(&http, &base, &director).await.unwrap();
    assert_eq!(
        assigned.version.to_string(),
        "1.0.0",
        "not the unsigned 2.0.0"
    );
    // The refresher's reconcile signs it; then it is assigned.
    assert!(state.tuf.reconcile().await.unwrap());
    assert!(
        !state.tuf.reconcile().await.unwrap(),
        "nothing left to sign"
    );
    let assigned = device.checkin(&http, &base, &director).await.unwrap();
    assert_eq!(assigned.version.to_string(), "2.0.0");
    serving.abort();
}
