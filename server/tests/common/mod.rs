//! In-process test servers on a random port, on SQLite and (when `OTTER_TEST_DATABASE_URL`
//! is set) on a fresh PostgreSQL database dropped at the end; [`binary`] runs the real
//! executable instead.
#![allow(dead_code)]

pub mod binary;
pub mod signed_device;

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
