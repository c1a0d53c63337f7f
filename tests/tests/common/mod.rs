//! A whole Otter installation in one test: an in-process server (SQLite) with development
//! keys, a trust bundle for the test board, signed firmware images, and simulated devices
//! (file flash, otter-boot state) driven by the real agent.
#![allow(dead_code)]

pub mod forge;
pub mod hostile;
pub mod proxy;
pub mod smuggle;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use otter_agent::Agent;
use otter_agent::config::Config as AgentConfig;
use otter_boot::image::{HardwareId, Version};
use otter_boot::layout::Slot;
use otter_boot::state::BootDecision;
use otter_keys::image::{ImageSpec, sign_image};
use otter_keys::keyset::KeySet;
use otter_keys::signer::Signer;
use otter_keys::trust_bundle::TrustBundle;
use otter_keys::wire::{RolloutPolicy, Signed};
use otter_server::auth::{Scope, token};
use otter_server::state::AppState;
use otter_server::{App, Config};

// Not every test that includes this module uses both.
#[allow(unused_imports)]
pub use otter_e2e::demo::vendor::{firmware, next_release};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The board every test device is.
pub const BOARD: &str = "e2e-board";

/// A running server plus what devices are provisioned with.
pub struct Fleet {
    /// Server base URL.
    pub url: String,
    /// Server state (database, keys, config).
    pub state: AppState,
    /// Admin token.
    pub admin: String,
    /// The trust bundle directory for [`BOARD`].
    pub trust: PathBuf,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// Starts a server in a fresh directory.
    pub async fn start() -> Self {
        Self::start_with(|_, _| {}).await
    }

    /// Starts a server in a fresh directory, its configuration changed by `tweak` (which
    /// also gets the directory, for key sets and the like).
    pub async fn start_with(tweak: impl FnOnce(&mut Config, &Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(&dir.path().join("server"));
        tweak(&mut config, dir.path());
        let app = App::open(config).await.unwrap();
        let admin = app.first_admin_token.as_ref().unwrap().token.clone();
        let state = app.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { app.serve(listener, shutdown).await.unwrap() }
        });
        let trust = dir.path().join("trust");
        let set = KeySet::open(&state.keys.dir).unwrap();
        TrustBundle::write(&set, HardwareId::new(BOARD).unwrap(), &trust).unwrap();
        Self {
            url,
            state,
            admin,
            trust,
            client: reqwest::Client::new(),
            shutdown,
            task,
            dir,
        }
    }

    /// Stops the server and starts it again on the same data, key directory and address,
    /// as an operator restarts it after changing its key directory.
    pub async fn restart(self) -> Self {
        let addr: std::net::SocketAddr = self.url.trim_start_matches("http://").parse().unwrap();
        self.shutdown.cancel();
        self.task.await.unwrap();
        let app = App::open(self.state.config.clone()).await.unwrap();
        let state = app.state.clone();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { app.serve(listener, shutdown).await.unwrap() }
        });
        Self {
            state,
            shutdown,
            task,
            ..self
        }
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }

    /// A token with `scopes`.
    pub async fn token(&self, scopes: &[Scope]) -> String {
        token::create(&self.state.db, scopes, "e2e")
            .await
            .unwrap()
            .token
    }

    /// An image for `board` signed with the vendor's (development) firmware key.
    pub fn image_for(&self, board: &str, version: &str, counter: u32, payload: &[u8]) -> Vec<u8> {
        let key = KeySet::open(&self.state.keys.dir)
            .unwrap()
            .signing_firmware_key()
            .unwrap();
        sign_with(&key, board, version, counter, payload)
    }

    /// An image for [`BOARD`].
    pub fn image(&self, version: &str, payload: &[u8]) -> Vec<u8> {
        self.image_for(BOARD, version, 1, payload)
    }

    /// Publishes `image`, waits for its delta job, returns the release JSON. Devices get
    /// it only once a rollout admits them ([`Fleet::roll_out`]).
    pub async fn publish_only(&self, image: Vec<u8>) -> Value {
        let publish = self.token(&[Scope::Publish]).await;
        let response = self
            .client
            .post(format!("{}/api/v1/releases", self.url))
            .bearer_auth(&publish)
            .header("content-type", "application/octet-stream")
            .body(image)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let release: Value = response.json().await.unwrap();
        let job = release["delta_job"]["id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status: Value = self
                .client
                .get(format!("{}/api/v1/delta-jobs/{job}", self.url))
                .bearer_auth(&publish)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match status["state"].as_str().unwrap() {
                "done" => break,
                "failed" => panic!("delta job failed: {status}"),
                _ => assert!(Instant::now() < deadline, "delta job stuck: {status}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        release
    }

    /// Publishes `image` and rolls it out to every device of its board at once (one 100 %
    /// stage, no soak), superseding the board's earlier rollout: what most tests want, and
    /// what publishing alone no longer does. Returns the release JSON.
    pub async fn publish(&self, image: Vec<u8>) -> Value {
        let release = self.publish_only(image).await;
        self.roll_out(&release, "100%").await;
        release
    }

    /// Creates and starts a rollout of `release` to every device of its board, one stage of
    /// `percent` with a policy of the same ceiling, signed with the development rollout key;
    /// the board's earlier active rollouts are aborted first. Returns the rollout id.
    pub async fn roll_out(&self, release: &Value, percent: &str) -> String {
        let spec = RolloutSpec {
            stages: vec![(percent.to_owned(), "0s".to_owned())],
            ceiling: percent.to_owned(),
            ..RolloutSpec::default()
        };
        self.supersede(release).await;
        let id = self.create_rollout(release, &spec).await;
        self.rollout_command(&id, "start").await;
        id
    }

    /// Aborts every active rollout of `release`'s board.
    pub async fn supersede(&self, release: &Value) {
        let fleet = self.token(&[Scope::Fleet]).await;
        let rollouts = self.api_get("/api/v1/rollouts", &fleet).await;
        for rollout in rollouts.as_array().unwrap() {
            let active = matches!(rollout["state"].as_str(), Some("running" | "paused"));
            if active && rollout["hardware_id"] == release["hardware_id"] {
                let id = rollout["id"].as_str().unwrap();
                self.rollout_command(id, "abort").await;
            }
        }
    }

    /// Creates a draft rollout of `release` as `spec` says, with its signed policy; returns
    /// its id.
    pub async fn create_rollout(&self, release: &Value, spec: &RolloutSpec) -> String {
        let fleet = self.token(&[Scope::Fleet]).await;
        let id = format!(
            "rol_{}",
            release["id"].as_str().unwrap().trim_start_matches("rel_")
        );
        let policy = self.rollout_policy(&id, release, &spec.ceiling, None, u64::MAX);
        let stages: Vec<Value> = (spec.stages.iter())
            .map(|(percent, soak)| json!({"percent": percent, "soak": soak}))
            .collect();
        let body = json!({
            "release_id": release["id"],
            "cohort": {"tags": []},
            "stages": stages,
            "failure_threshold": {"max": spec.max_failures, "min_devices": spec.min_devices},
            "device_timeout": "24h",
            "policy": policy,
        });
        let created = self.api_post("/api/v1/rollouts", &fleet, &body).await;
        assert_eq!(created["id"], id.as_str(), "{created}");
        id
    }

    /// `POST /api/v1/rollouts/{id}/{command}`; returns the rollout after it.
    pub async fn rollout_command(&self, id: &str, command: &str) -> Value {
        let fleet = self.token(&[Scope::Fleet]).await;
        let path = format!("/api/v1/rollouts/{id}/{command}");
        self.api_post(&path, &fleet, &json!({"reason": "e2e"}))
            .await
    }

    /// `GET /api/v1/rollouts/{id}`.
    pub async fn rollout(&self, id: &str) -> Value {
        let fleet = self.token(&[Scope::Fleet]).await;
        self.api_get(&format!("/api/v1/rollouts/{id}"), &fleet)
            .await
    }

    /// A rollout policy for `release` signed with the development rollout key.
    pub fn rollout_policy(
        &self,
        rollout_id: &str,
        release: &Value,
        ceiling: &str,
        window: Option<otter_keys::rollout::MaintenanceWindow>,
        expires: u64,
    ) -> Signed<RolloutPolicy> {
        let set = KeySet::open(&self.state.keys.dir).unwrap();
        let key = set.rollout_keys().unwrap().pop().unwrap();
        let mut image_sha256 = [0u8; 32];
        hex::decode_to_slice(release["sha256"].as_str().unwrap(), &mut image_sha256).unwrap();
        let policy = RolloutPolicy {
            rollout_id: rollout_id.to_owned(),
            hardware_id: release["hardware_id"].as_str().unwrap().to_owned(),
            image_sha256,
            ceiling: ceiling.parse().unwrap(),
            window,
            expires,
        };
        Signed::sign(policy, &key).unwrap()
    }

    /// GET `path` with `token`; asserts a 200 and returns the JSON.
    pub async fn api_get(&self, path: &str, token: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    /// POST `body` to `path` with `token`; asserts a 2xx and returns the JSON (null if none).
    pub async fn api_post(&self, path: &str, token: &str, body: &Value) -> Value {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A provisioned simulated device talking to `server` (the fleet's URL or a proxy's),
    /// with `factory` programmed into slot A and booted once.
    pub async fn device(&self, serial: &str, server: &str, factory: &[u8]) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::simulated(dir.path());
        config.download.backoff = Duration::from_millis(50);
        let provision = self.token(&[Scope::Provision]).await;
        otter_agent::provision::provision(
            dir.path(),
            &otter_agent::provision::Request {
                server,
                token: &provision,
                hardware_id: BOARD,
                serial,
                trust: &self.trust,
            },
        )
        .await
        .unwrap();
        let device = Device {
            config,
            reboots: Arc::new(AtomicUsize::new(0)),
            dir,
        };
        let factory_file = device.dir.path().join("factory.img");
        std::fs::write(&factory_file, factory).unwrap();
        otter_agent::sim::write_factory_image(device.agent().device(), &factory_file).unwrap();
        let boot = device.reset();
        assert_eq!((boot.slot, boot.trial), (Slot::A, false));
        device
    }

    /// The fleet view of a device.
    pub async fn device_view(&self, id: &str) -> Value {
        let fleet = self.token(&[Scope::Fleet]).await;
        self.client
            .get(format!("{}/api/v1/devices/{id}", self.url))
            .bearer_auth(&fleet)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Event kinds of a device's timeline, oldest first.
    pub async fn timeline(&self, id: &str) -> Vec<String> {
        let view = self.device_view(id).await;
        let mut kinds: Vec<String> = view["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.reverse();
        kinds
    }
}

/// Serves `app` on a free port of 127.0.0.1 until the returned token is cancelled (the
/// test's man-in-the-middle servers); returns its base URL.
pub async fn serve_router(app: axum::Router) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .unwrap()
        }
    });
    (url, shutdown)
}

/// Signs `payload` as an image with `key`.
pub fn sign_with(
    key: &dyn Signer,
    board: &str,
    version: &str,
    counter: u32,
    payload: &[u8],
) -> Vec<u8> {
    let spec = ImageSpec {
        hardware_id: HardwareId::new(board).unwrap(),
        version: version.parse::<Version>().unwrap(),
        security_counter: counter,
    };
    sign_image(payload, &spec, key).unwrap()
}

/// A simulated device: its state dir with the flash file, and a count of reboots asked.
pub struct Device {
    pub config: AgentConfig,
    pub reboots: Arc<AtomicUsize>,
    pub dir: tempfile::TempDir,
}

impl Device {
    /// A freshly started agent (as after a process start), with a counting reboot hook.
    pub fn agent(&self) -> Agent {
        let reboots = self.reboots.clone();
        Agent::open(self.config.clone())
            .unwrap()
            .with_reboot_hook(Arc::new(move || {
                reboots.fetch_add(1, Ordering::SeqCst);
                Ok(true)
            }))
    }

    /// A reset: the bootloader decides on the flash.
    pub fn reset(&self) -> BootDecision {
        otter_agent::sim::reset(self.agent().device()).unwrap()
    }

    /// The device id.
    pub fn id(&self) -> String {
        self.agent().identity().device_id.clone()
    }

    /// The raw bytes of a slot.
    pub fn slot_bytes(&self, slot: Slot) -> Vec<u8> {
        let flash = std::fs::read(self.dir.path().join("flash.img")).unwrap();
        let p = match slot {
            Slot::A => self.config.layout.slot_a,
            Slot::B => self.config.layout.slot_b,
        };
        flash[p.offset as usize..(p.offset + p.size) as usize].to_vec()
    }

    /// The state dir.
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The directory of the workspace's binaries, built as `cargo test --workspace` builds them
/// (so this is a no-op inside that run, with the same features and profile).
pub fn binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["test", "--workspace", "--no-run", "--quiet"])
        .status()
        .unwrap();
    assert!(status.success());
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// An agent configuration file for `device`'s simulated flash, with `extra` TOML appended.
pub fn agent_config_file(device: &Device, extra: &str) -> PathBuf {
    let c = &device.config;
    let flash = device.state_dir().join("flash.img");
    let p = |p: otter_agent::config::PartitionConfig| {
        format!("{{ offset = {}, size = {} }}", p.offset, p.size)
    };
    // The [rollout] table goes last, after whatever tables `extra` opens.
    let text = format!(
        "state_dir = {:?}\n{extra}\n[flash]\nbackend = \"file\"\npath = {:?}\n\
         [layout]\nslot_a = {}\nslot_b = {}\nstate = {}\n",
        device.state_dir(),
        flash,
        p(c.layout.slot_a),
        p(c.layout.slot_b),
        p(c.layout.state),
    );
    let path = device.state_dir().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A test rollout: stages (cumulative percentage, soak), failure threshold, signed ceiling.
#[derive(Clone, Debug)]
pub struct RolloutSpec {
    pub stages: Vec<(String, String)>,
    pub max_failures: String,
    pub min_devices: u32,
    pub ceiling: String,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            stages: vec![("100%".into(), "0s".into())],
            max_failures: "100%".into(),
            min_devices: 1,
            ceiling: "100%".into(),
        }
    }
}
