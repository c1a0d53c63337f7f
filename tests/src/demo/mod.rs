//! `otter-demo`: the whole system in one command. A server with development keys, a fleet of
//! simulated devices each running the real agent on simulated flash, and two staged rollouts
//! watched live: 1.1.0 goes through three stages to every device; 1.2.0 fails its health
//! check, and the server pauses it by itself at the first stage while the devices outside
//! that stage never download it.
//!
//! In story order: [`server`] (the server in this process), [`vendor`] (firmware and its
//! signatures), [`api`] (the vendor and fleet API as a client), [`devices`] (the simulated
//! fleet), [`summary`] (what happened, read back from the API, and the promises checked).

pub mod api;
pub mod devices;
pub mod server;
pub mod summary;
pub mod vendor;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use otter_keys::rollout::BasisPoints;
use otter_server::auth::Scope;
use otter_server::rollouts::text as rollout_text;
use serde_json::{Value, json};

use api::{Api, text};
use devices::{Factory, SimDevice};
use server::Server;
pub use summary::Summary;
use vendor::{Vendor, firmware, next_release};

/// The demo's board.
pub const BOARD: &str = "demo-board";
/// The release whose self-test fails.
pub const BROKEN: &str = "1.2.0";
/// The rollout stages: cumulative share and soak.
const STAGES: [(&str, &str); 3] = [("25%", "2s"), ("50%", "2s"), ("100%", "2s")];
/// The firmware size.
const FIRMWARE_LEN: usize = 96 * 1024;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(String);

impl DemoError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many simulated devices.
    pub devices: usize,
    /// Where the server listens (a free port if this one is taken).
    pub listen: SocketAddr,
    /// Where the server's data and the devices' flash live (a temporary dir if `None`).
    pub dir: Option<PathBuf>,
    /// Stop after the summary instead of serving the dashboard until Ctrl-C.
    pub exit: bool,
    /// The longest any rollout may take before the demo gives up.
    pub patience: Duration,
}

/// Runs the story and returns its summary (whether its promises held is
/// [`Summary::broken_promises`]).
pub async fn run(options: &Options) -> Result<Summary, DemoError> {
    let temp = tempfile::tempdir().map_err(|e| DemoError::new(format!("temp dir: {e}")))?;
    let root = options
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    println!(
        "Otter demo: one server, {} simulated devices running the real agent, two staged rollouts.",
        options.devices
    );
    let server = Server::start(
        &root.join("server"),
        options.listen,
        Duration::from_millis(250),
    )
    .await?;
    println!(
        "[1/5] server on {} (data in {})",
        server.url,
        root.display()
    );

    let vendor = Vendor::open(&server.keys_dir)?;
    let publisher = Api::new(
        &server.url,
        &server.token(&[Scope::Publish], "demo vendor").await?,
    );
    let fleet_token = server.token(&[Scope::Fleet], "demo fleet manager").await?;
    let fleet = Api::new(&server.url, &fleet_token);
    let v1_payload = firmware(FIRMWARE_LEN, 1);
    let v2_payload = next_release(&v1_payload, 2);
    let v1 = vendor.image(BOARD, "1.0.0", &v1_payload)?;
    publisher.publish(v1.clone()).await?;
    let v2 = publisher
        .publish(vendor.image(BOARD, "1.1.0", &v2_payload)?)
        .await?;
    println!(
        "[2/5] published 1.0.0 and 1.1.0 of {BOARD} (signed with the vendor's firmware key; the server built {} delta)",
        v2["deltas"].as_array().map_or(0, Vec::len)
    );

    let devices = provision(&server, &root, &v1, options.devices).await?;
    println!(
        "[3/5] {} devices run 1.0.0; each confirms an update only if its health check passes:\n      \
         test \"$OTTER_TRIAL_VERSION\" != {BROKEN}   ({BROKEN} has a bug its self-test catches)",
        devices.len()
    );

    println!("[4/5] rolling 1.1.0 out in three stages ({})", stage_list());
    let healthy = start_rollout(&fleet, &vendor, &v2).await?;
    let count = devices.len() as u64;
    watch(&devices, &fleet, &healthy, options.patience, |r| {
        r.state == "completed" && r.healthy == count
    })
    .await?;

    let v3_payload = next_release(&v2_payload, 3);
    let v3 = publisher
        .publish(vendor.image(BOARD, BROKEN, &v3_payload)?)
        .await?;
    println!("[5/5] published {BROKEN}; rolling it out the same way");
    let failing = start_rollout(&fleet, &vendor, &v3).await?;
    watch(&devices, &fleet, &failing, options.patience, |r| {
        r.state != "running" && r.failed + r.rolled_back == r.admitted_total()
    })
    .await?;
    // A few more rounds: the rolled-back devices report, and nobody new may be admitted.
    for _ in 0..3 {
        round(&devices).await?;
    }

    let cutoffs = (STAGES.iter())
        .map(|(share, _)| share.parse::<BasisPoints>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DemoError::new(e.to_string()))?;
    let summary = Summary::read(&fleet, &healthy, &failing, &v3, &cutoffs).await?;
    println!("\n{summary}");
    println!(
        "Dashboard: {}/ui  (log in with the fleet token {fleet_token})",
        server.url
    );
    if !options.exit {
        println!("The devices keep checking in; press Ctrl-C to stop.");
        live_until_ctrl_c(&devices).await?;
    }
    server.stop().await;
    drop(temp);
    Ok(summary)
}

fn stage_list() -> String {
    let stages: Vec<String> = (STAGES.iter())
        .map(|(share, soak)| format!("{share} soaking {soak}"))
        .collect();
    stages.join(", ")
}

/// Provisions `n` devices with `factory` in slot A, a few at a time.
async fn provision(
    server: &Server,
    root: &std::path::Path,
    factory: &[u8],
    n: usize,
) -> Result<Vec<SimDevice>, DemoError> {
    let token = server.token(&[Scope::Provision], "demo factory").await?;
    let trust = root.join("trust");
    let set = (otter_keys::keyset::KeySet::open(&server.keys_dir))
        .map_err(|e| DemoError::new(e.to_string()))?;
    let board =
        otter_boot::image::HardwareId::new(BOARD).map_err(|e| DemoError::new(format!("{e:?}")))?;
    (otter_keys::trust_bundle::TrustBundle::write(&set, board, &trust))
        .map_err(|e| DemoError::new(format!("trust bundle: {e}")))?;
    let image = root.join("factory-1.0.0.img");
    std::fs::write(&image, factory)
        .map_err(|e| DemoError::new(format!("{}: {e}", image.display())))?;
    let health = [otter_agent::config::HealthCheck {
        command: [
            "sh",
            "-c",
            &format!("test \"$OTTER_TRIAL_VERSION\" != {BROKEN}"),
        ]
        .map(str::to_owned)
        .to_vec(),
        timeout: Duration::from_secs(10),
    }];
    let factory = Factory {
        server: &server.url,
        token: &token,
        hardware_id: BOARD,
        trust: &trust,
        image: &image,
        health_checks: &health,
    };
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let serial = format!("SN-{i:04}");
        devices.push(
            SimDevice::provision(root.join("devices").join(&serial), &serial, &factory).await?,
        );
    }
    Ok(devices)
}

/// Creates the rollout of `release` (the server picks its id), signs and uploads its policy
/// (ceiling 100 %: the server may go all the way on its own), starts it; returns its id.
async fn start_rollout(fleet: &Api, vendor: &Vendor, release: &Value) -> Result<String, DemoError> {
    let stages: Vec<Value> = (STAGES.iter())
        .map(|(percent, soak)| json!({ "percent": percent, "soak": soak }))
        .collect();
    let body = json!({
        "release_id": release["id"],
        "cohort": { "tags": [] },
        "stages": stages,
        "failure_threshold": { "max": "20%", "min_devices": 1 },
        "device_timeout": "1h",
        "reason": "otter-demo",
    });
    let draft = fleet.post("/api/v1/rollouts", &body).await?;
    let id = text(&draft["id"])?.to_owned();
    let policy = vendor.policy(&id, release, "100%")?;
    let body = json!({ "policy": policy, "reason": "signed by the demo's rollout key" });
    fleet
        .put(&format!("/api/v1/rollouts/{id}/policy"), &body)
        .await?;
    fleet.command(&id, "start", "otter-demo").await?;
    Ok(id)
}

/// One round of every device's life, all at once.
async fn round(devices: &[SimDevice]) -> Result<(), DemoError> {
    let results = futures_util::future::join_all(devices.iter().map(SimDevice::live)).await;
    results.into_iter().collect()
}

/// Runs rounds and shows the rollout's progress until `done` says so of it.
async fn watch(
    devices: &[SimDevice],
    fleet: &Api,
    id: &str,
    patience: Duration,
    done: impl Fn(&summary::RolloutOutcome) -> bool,
) -> Result<(), DemoError> {
    let start = Instant::now();
    let mut shown = Shown::default();
    loop {
        round(devices).await?;
        let view = fleet.get(&format!("/api/v1/rollouts/{id}")).await?;
        shown.show(&rollout_text::summary(&view), start.elapsed());
        if done(&summary::RolloutOutcome::from_view(&view)?) {
            return Ok(());
        }
        if start.elapsed() > patience {
            return Err(DemoError::new(format!(
                "rollout {id} did not get there within {patience:?}:\n{}",
                rollout_text::summary(&view)
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The live view: redrawn in place on a terminal, printed on every change otherwise.
#[derive(Default)]
struct Shown {
    last: String,
    lines: usize,
}

impl Shown {
    fn show(&mut self, text: &str, elapsed: Duration) {
        if text == self.last {
            return;
        }
        let mut out = std::io::stdout().lock();
        if out.is_terminal() && self.lines > 0 {
            // Up over the last picture, and clear to the end of the screen.
            let _ = write!(out, "\x1b[{}A\x1b[J", self.lines);
        }
        let _ = write!(out, "  t+{:>5.1}s {text}", elapsed.as_secs_f64());
        let _ = out.flush();
        self.lines = text.lines().count();
        self.last = text.to_owned();
    }
}

/// Keeps the fleet checking in every few seconds until Ctrl-C.
async fn live_until_ctrl_c(devices: &[SimDevice]) -> Result<(), DemoError> {
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(5)) => round(devices).await?,
        }
    }
}
