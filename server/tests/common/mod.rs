//! In-process test servers on a random port, on SQLite and (when `OTTER_TEST_DATABASE_URL`
//! is set) on a fresh PostgreSQL database dropped at the end; [`binary`] runs the real
//! executable instead.
#![allow(dead_code)]

pub mod binary;

use std::time::Duration;

use otter_boot::image::{HardwareId, Version};
use otter_keys::image::{ImageSpec, sign_image};
use otter_keys::keyset::KeySet;
use otter_keys::wire::{BootOutcome, CheckIn, SlotReport};
use otter_server::auth::{Scope, token};
use otter_server::state::AppState;
use otter_server::{App, Config};
use sqlx::Connection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A database engine a test runs against.
#[derive(Clone, Debug)]
pub enum DbKind {
    /// A SQLite file in the test's data dir.
    Sqlite,
    /// A fresh database on the PostgreSQL server of this URL.
    Postgres(String),
}

/// SQLite always; PostgreSQL when `OTTER_TEST_DATABASE_URL` is set. Under
/// `OTTER_REQUIRE_ALL=1` a missing PostgreSQL URL is a failure, not a skip.
pub fn databases() -> Vec<DbKind> {
    let mut kinds = vec![DbKind::Sqlite];
    match std::env::var("OTTER_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => kinds.push(DbKind::Postgres(url)),
        _ if std::env::var("OTTER_REQUIRE_ALL").as_deref() == Ok("1") => {
            panic!("OTTER_REQUIRE_ALL=1 but OTTER_TEST_DATABASE_URL is not set")
        }
        _ => eprintln!("skipping PostgreSQL: OTTER_TEST_DATABASE_URL is not set"),
    }
    kinds
}

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The initial admin token.
    pub admin_token: String,
    /// The server's shared state (database, keys, config).
    pub state: AppState,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// The data dir (removed on drop).
    pub data_dir: tempfile::TempDir,
    /// Which database.
    pub kind: DbKind,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    pg_database: Option<(String, String)>,
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn start(kind: DbKind) -> Self {
        Self::start_with(kind, |_| {}).await
    }

    /// Starts a server after `adjust` edits the configuration.
    pub async fn start_with(kind: DbKind, adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(data_dir.path());
        let pg_database = match &kind {
            DbKind::Sqlite => None,
            DbKind::Postgres(admin_url) => {
                let (url, name) = create_pg_database(admin_url).await;
                config.database_url = url;
                Some((admin_url.clone(), name))
            }
        };
        adjust(&mut config);
        Self::start_config(kind, config, data_dir, pg_database).await
    }

    /// Starts a second server process-alike on the same data dir and database as `self`
    /// (for tests of several replicas).
    pub async fn replica(&self) -> App {
        App::open(self.state.config.clone()).await.unwrap()
    }

    async fn start_config(
        kind: DbKind,
        config: Config,
        data_dir: tempfile::TempDir,
        pg_database: Option<(String, String)>,
    ) -> Self {
        let app = App::open(config).await.unwrap();
        let admin_token = app.first_admin_token.as_ref().unwrap().token.clone();
        let state = app.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { app.serve(listener, shutdown).await.unwrap() }
        });
        Self {
            url,
            admin_token,
            state,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            data_dir,
            kind,
            shutdown,
            task,
            pg_database,
        }
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        if let Some((admin_url, name)) = &self.pg_database {
            let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// A new token with `scopes`.
    pub async fn token(&self, scopes: &[Scope]) -> String {
        token::create(&self.state.db, scopes, "test")
            .await
            .unwrap()
            .token
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The server's development key set.
    pub fn keyset(&self) -> KeySet {
        KeySet::open(&self.state.keys.dir).unwrap()
    }

    /// An image signed with the development firmware key.
    pub fn sign_image(
        &self,
        hardware_id: &str,
        version: &str,
        counter: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let key = self.keyset().signing_firmware_key().unwrap();
        let spec = ImageSpec {
            hardware_id: HardwareId::new(hardware_id).unwrap(),
            version: version.parse::<Version>().unwrap(),
            security_counter: counter,
        };
        sign_image(payload, &spec, &key).unwrap()
    }

    /// A rollout policy for `release_id` signed with the development key set's first
    /// rollout key, valid for a day (see [`sign_policy`]).
    pub async fn sign_policy(
        &self,
        rollout_id: &str,
        release_id: &str,
        ceiling: &str,
    ) -> otter_keys::wire::Signed<otter_keys::wire::RolloutPolicy> {
        let release = release_at(&self.client, &self.url, &self.admin_token, release_id).await;
        sign_policy(&self.keyset(), rollout_id, &release, ceiling)
    }

    /// Creates and starts a rollout of `release_id` to every device of its board (see
    /// [`roll_out_at`]); its id.
    pub async fn roll_out(&self, release_id: &str) -> String {
        roll_out_at(
            &self.client,
            &self.url,
            &self.admin_token,
            &self.keyset(),
            release_id,
            "1h",
        )
        .await
    }

    /// The same with the stage's soak time `soak`: with `0s` the rollout completes as soon
    /// as every admitted device is done (or, nobody admitted yet, at the ticker's next
    /// tick).
    pub async fn roll_out_soaked(&self, release_id: &str, soak: &str) -> String {
        roll_out_at(
            &self.client,
            &self.url,
            &self.admin_token,
            &self.keyset(),
            release_id,
            soak,
        )
        .await
    }

    /// POSTs `/api/v1/rollouts/{id}/{action}` and expects 200.
    pub async fn rollout_command(&self, token: &str, id: &str, action: &str) -> serde_json::Value {
        rollout_command_at(&self.client, &self.url, token, id, action).await
    }

    /// The id of the release of `hardware_id` and `version`.
    pub async fn release_id(&self, hardware_id: &str, version: &str) -> String {
        let (id,): (String,) =
            sqlx::query_as("SELECT id FROM releases WHERE hardware_id = $1 AND version = $2")
                .bind(hardware_id)
                .bind(version)
                .fetch_one(self.state.db.pool())
                .await
                .unwrap();
        id
    }

    /// POSTs a signed image to `/api/v1/releases` with `token`.
    pub async fn publish(&self, token: &str, image: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.at("/api/v1/releases"))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(image)
            .send()
            .await
            .unwrap()
    }
}

async fn create_pg_database(admin_url: &str) -> (String, String) {
    let name = otter_server::db::new_id("otter_test");
    let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(admin_url);
    (format!("{base}/{name}"), name)
}

/// Asserts a JSON error response with `status` and `code`, returning its message.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> String {
    let got = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

/// A check-in from a device that runs `version` (image hash `[7; 32]`) confirmed in slot A,
/// with nothing on trial and nothing to report.
pub fn checkin_message(device_id: &str, counter: u64, timestamp: u64, version: &str) -> CheckIn {
    CheckIn {
        device_id: device_id.to_owned(),
        counter,
        timestamp,
        current_version: version.parse().unwrap(),
        image_sha256: [7; 32],
        slots: SlotReport {
            running: otter_boot::Slot::A,
            confirmed: otter_boot::Slot::A,
            trial: None,
        },
        last_outcome: BootOutcome::None,
    }
}

/// A device registered through the API: its id and its signing key (kept in `dir`).
pub struct Registered {
    pub id: String,
    pub key: otter_keys::signer::FileKey,
    pub dir: tempfile::TempDir,
}

/// Registers a fresh device key for `board` with `serial` at `base` (expects 201).
pub async fn register_device(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    board: &str,
    serial: &str,
) -> Registered {
    use otter_keys::signer::Signer;
    let dir = tempfile::tempdir().unwrap();
    let key = otter_keys::signer::FileKey::generate_at(&dir.path().join("device.key")).unwrap();
    let response = client
        .post(format!("{base}/api/v1/devices"))
        .bearer_auth(token)
        .json(
            &serde_json::json!({"public_key": hex::encode(key.public_key()),
            "hardware_id": board, "serial": serial}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    Registered {
        id: body["id"].as_str().unwrap().to_owned(),
        key,
        dir,
    }
}

/// A device driven at the protocol level: signed check-ins and reports with a rising
/// counter, assignments verified with the director key.
pub struct ProtocolDevice {
    pub id: String,
    pub key: otter_keys::signer::FileKey,
    pub counter: u64,
    director: [u8; 32],
    _dir: tempfile::TempDir,
}

impl ProtocolDevice {
    /// Registers a device of `board` (a provisioning token is made for it).
    pub async fn register(s: &TestServer, board: &str, serial: &str) -> Self {
        use otter_keys::signer::Signer;
        let token = s.token(&[Scope::Provision]).await;
        let device = register_device(&s.client, &s.url, &token, board, serial).await;
        Self {
            id: device.id,
            key: device.key,
            counter: 0,
            director: s
                .keyset()
                .role_key(otter_keys::keyset::Role::Director)
                .unwrap()
                .public_key(),
            _dir: device.dir,
        }
    }

    /// Sends `message` (its counter set to the next one) signed with `other`, or with the
    /// device's own key; the response.
    pub async fn check_in_signed_by(
        &mut self,
        s: &TestServer,
        mut message: otter_keys::wire::CheckIn,
        other: Option<&otter_keys::signer::FileKey>,
    ) -> reqwest::Response {
        self.counter += 1;
        message.counter = self.counter;
        let signed = otter_keys::wire::Signed::sign(message, other.unwrap_or(&self.key)).unwrap();
        s.client
            .post(s.at(&format!("/api/v1/devices/{}/checkin", self.id)))
            .json(&signed)
            .send()
            .await
            .unwrap()
    }

    /// Checks in running `version` with image hash `image_sha256`; the assigned target, if
    /// any (expects 200 and a valid director signature).
    pub async fn check_in(
        &mut self,
        s: &TestServer,
        version: &str,
        image_sha256: [u8; 32],
    ) -> Option<otter_keys::wire::AssignedTarget> {
        use otter_keys::wire::{Assignment, Signed};
        let mut message = checkin_message(&self.id, 0, unix_now(), version);
        message.image_sha256 = image_sha256;
        let r = self.check_in_signed_by(s, message, None).await;
        assert_eq!(r.status(), 200);
        let answer: Signed<Assignment> = r.json().await.unwrap();
        let assignment = answer
            .verify(&self.director, &self.id, self.counter, unix_now())
            .unwrap();
        assignment.target.clone()
    }

    /// Checks in (running 1.0.0) and returns the assigned target, if any.
    pub async fn assigned(&mut self, s: &TestServer) -> Option<otter_keys::wire::AssignedTarget> {
        self.check_in(s, "1.0.0", [7; 32]).await
    }

    /// The version assigned now, if any.
    pub async fn assigned_version(&mut self, s: &TestServer) -> Option<String> {
        self.assigned(s).await.map(|t| t.version.to_string())
    }

    /// Sends `event` as a signed report (expects 204).
    pub async fn report(&mut self, s: &TestServer, event: otter_keys::wire::Event) {
        use otter_keys::wire::{Report, Signed};
        self.counter += 1;
        let report = Report {
            device_id: self.id.clone(),
            counter: self.counter,
            timestamp: unix_now(),
            event_seq: self.counter,
            event,
        };
        let signed = Signed::sign(report, &self.key).unwrap();
        let r = s
            .client
            .post(s.at(&format!("/api/v1/devices/{}/reports", self.id)))
            .json(&signed)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap()
}

/// `GET /api/v1/releases/{id}`.
pub async fn release_at(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    release_id: &str,
) -> serde_json::Value {
    let r = http
        .get(format!("{base}/api/v1/releases/{release_id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The id of the release of `hardware_id` and `version` at `base`.
pub async fn release_id_at(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    hardware_id: &str,
    version: &str,
) -> String {
    let list: serde_json::Value = http
        .get(format!("{base}/api/v1/releases?hardware_id={hardware_id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version);
    found.expect("no such release")["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A rollout policy for `release` (as the API shows it: its board and image hash) with
/// `ceiling`, signed with `keys`' first rollout key, valid for a day.
pub fn sign_policy(
    keys: &KeySet,
    rollout_id: &str,
    release: &serde_json::Value,
    ceiling: &str,
) -> otter_keys::wire::Signed<otter_keys::wire::RolloutPolicy> {
    let mut image_sha256 = [0u8; 32];
    hex::decode_to_slice(release["sha256"].as_str().unwrap(), &mut image_sha256).unwrap();
    let policy = otter_keys::wire::RolloutPolicy {
        rollout_id: rollout_id.to_owned(),
        hardware_id: release["hardware_id"].as_str().unwrap().to_owned(),
        image_sha256,
        ceiling: ceiling.parse().unwrap(),
        window: None,
        expires: unix_now() + 86_400,
    };
    let key = keys.rollout_keys().unwrap().remove(0);
    otter_keys::wire::Signed::sign(policy, &key).unwrap()
}

/// Creates and starts, at `base` with `token` (fleet or admin scope), a rollout of
/// `release_id` to every device of its board in one 100 % stage soaking `soak`, with a
/// 100 % policy signed by `keys`' rollout key: what "publish and every device gets it"
/// takes now that the director stages releases. Returns the rollout id. Another running
/// or paused rollout of the same board to the whole board must be ended first (409).
pub async fn roll_out_at(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    keys: &KeySet,
    release_id: &str,
    soak: &str,
) -> String {
    let id = otter_server::db::new_id("rol");
    let release = release_at(http, base, token, release_id).await;
    let policy = sign_policy(keys, &id, &release, "100%");
    let body = serde_json::json!({
        "release_id": release_id,
        "cohort": {"tags": []},
        "stages": [{"percent": "100%", "soak": soak}],
        "failure_threshold": {"max": "100%", "min_devices": 1},
        "device_timeout": "24h",
        "policy": policy,
        "reason": "test: roll out to the whole board",
    });
    let r = http
        .post(format!("{base}/api/v1/rollouts"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    rollout_command_at(http, base, token, &id, "start").await;
    id
}

/// POSTs `/api/v1/rollouts/{id}/{action}` at `base` and expects 200; the rollout.
pub async fn rollout_command_at(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    action: &str,
) -> serde_json::Value {
    let r = http
        .post(format!("{base}/api/v1/rollouts/{id}/{action}"))
        .bearer_auth(token)
        .json(&serde_json::json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{action}: {}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// Records a release row directly (image hash `sha`, 4096 bytes) and re-signs the TUF
/// targets so the director may assign it; its id.
pub async fn insert_release(s: &TestServer, hw: &str, version: &str, sha: &str) -> String {
    let v: otter_boot::image::Version = version.parse().unwrap();
    let id = otter_server::db::new_id("rel");
    sqlx::query(
        "INSERT INTO releases (id, hardware_id, version, major, minor, patch, security_counter, \
         key_id, sha256, length, target_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, 'k', $7, 4096, $8, 0)",
    )
    .bind(&id)
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
    s.state.tuf.targets_changed().await.unwrap();
    id
}
