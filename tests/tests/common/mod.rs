//! A whole Otter installation in one test: an in-process server (SQLite) with development
//! keys, a trust bundle for the test board, signed firmware images, and simulated devices
//! (file flash, otter-boot state) driven by the real agent.
#![allow(dead_code)]

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
use otter_server::auth::{Scope, token};
use otter_server::state::AppState;
use otter_server::{App, Config};
use serde_json::Value;
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

    /// Publishes `image`, waits for its delta job, returns the release JSON.
    pub async fn publish(&self, image: Vec<u8>) -> Value {
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

    /// A provisioned simulated device talking to `server` (the fleet's URL or a proxy's),
    /// with `factory` programmed into slot A and booted once.
    pub async fn device(&self, serial: &str, server: &str, factory: &[u8]) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::simulated(dir.path());
        config.download.backoff = Duration::from_millis(50);
        // until the director sends rollout policies (issue 11)
        config.rollout.require_policy = Some(false);
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

/// Deterministic firmware-like bytes: code-ish words from a small generator.
pub fn firmware(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if i % 16 < 4 {
                // Repeating instruction-like prefixes compress and diff like code does.
                (i / 16 % 7) as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            }
        })
        .collect()
}

/// `base` with a few scattered edits and an inserted block: the next release.
pub fn next_release(base: &[u8], seed: u64) -> Vec<u8> {
    let mut out = base.to_vec();
    let step = out.len() / 5;
    for i in 1..5 {
        let at = i * step;
        out[at..at + 64].copy_from_slice(&firmware(64, seed + i as u64));
    }
    let insert_at = out.len() / 3;
    let block = firmware(1024, seed + 99);
    out.splice(insert_at..insert_at, block);
    out
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

/// The `[rollout]` table of [`agent_config_file`], matching [`Fleet::device`]'s setting.
// until the director sends rollout policies (issue 11)
const ROLLOUT_UNTIL_POLICIES: &str = "[rollout]\nrequire_policy = false\n";

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
         [layout]\nslot_a = {}\nslot_b = {}\nstate = {}\n{ROLLOUT_UNTIL_POLICIES}",
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
