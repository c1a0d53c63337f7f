//! `otter-server rollout ...`: a thin client of the rollout API (scope `fleet`), taking
//! `--server` and `OTTER_TOKEN` like `publish`. `show --watch` prints a progress line per
//! stage every few seconds until the rollout completes, pauses or aborts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use otter_server::rollouts::text::{list_line, summary, timeline};
use serde_json::{Value, json};

type AnyError = Box<dyn std::error::Error>;

/// Where the server is and who asks.
#[derive(Args)]
pub struct Remote {
    /// Server base URL.
    #[arg(long, env = "OTTER_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token with the `fleet` scope (prefer the variable: flags show in `ps`).
    #[arg(long, env = "OTTER_TOKEN", hide_env_values = true)]
    token: String,
}

/// The rollout subcommands.
#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Create a draft rollout; prints it as JSON.
    Create(Create),
    /// List rollouts, newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a rollout: state, per-stage progress bars, failure rate, why it waits, timeline.
    Show {
        /// Rollout id.
        id: String,
        /// Print a progress line every --interval until it completes, pauses or aborts.
        #[arg(long)]
        watch: bool,
        /// How often --watch prints, humantime.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Print the API's JSON instead.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Upload a signed policy (from `otter-keys sign-rollout --rollout-id ID`).
    Policy {
        /// Rollout id.
        id: String,
        /// The signed policy file.
        file: PathBuf,
        /// Why, for the timeline.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a draft at stage 1.
    Start(Act),
    /// Pause: nobody new is admitted.
    Pause(Act),
    /// Resume a paused rollout.
    Resume(Act),
    /// Go to the next stage now (never past the signed ceiling).
    Advance(Act),
    /// Stop for good.
    Abort(Act),
}

/// An operator command on one rollout.
#[derive(Args)]
pub struct Act {
    /// Rollout id.
    id: String,
    /// Why, for the timeline.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// `rollout create`.
#[derive(Args)]
pub struct Create {
    /// The release id (`rel_…`).
    #[arg(long)]
    release: String,
    /// A stage, `PERCENT:SOAK` (e.g. `10%:1h`); repeat, in order.
    #[arg(long = "stage", required = true)]
    stages: Vec<String>,
    /// Cohort: devices with all these tags (repeat); none: every device of the board.
    #[arg(long = "tag", conflicts_with = "devices")]
    tags: Vec<String>,
    /// Cohort: exactly these devices (repeat), a canary list.
    #[arg(long = "device")]
    devices: Vec<String>,
    /// Pause once failed plus rolled back exceed this share of admitted devices.
    #[arg(long, default_value = "10%")]
    max_failures: String,
    /// ... once at least this many devices are admitted.
    #[arg(long, default_value_t = 10)]
    min_devices: u32,
    /// Devices admitted per minute at most.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// A device neither healthy nor failed this long after admission stops holding its
    /// stage back.
    #[arg(long, default_value = "24h")]
    device_timeout: String,
    /// The signed policy (`otter-keys sign-rollout`); the rollout takes its id. Without
    /// one, upload it later with `rollout policy`.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Why, for the timeline.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    fn new(remote: &Remote) -> Self {
        Self {
            base: remote.server.trim_end_matches('/').to_owned(),
            token: remote.token.clone(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, AnyError> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!(
                "server answered {status}: {}",
                body["message"].as_str().unwrap_or("(no message)")
            )
            .into())
        }
    }

    async fn get(&self, path: &str) -> Result<Value, AnyError> {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, AnyError> {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn put(&self, path: &str, body: &Value) -> Result<Value, AnyError> {
        self.send(self.client.put(format!("{}{path}", self.base)).json(body))
            .await
    }
}

fn read_json(path: &PathBuf) -> Result<Value, AnyError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Runs one rollout subcommand.
pub async fn run(command: RolloutCommand) -> Result<(), AnyError> {
    match command {
        RolloutCommand::Create(c) => create(c).await,
        RolloutCommand::List { limit, remote } => {
            let list = Api::new(&remote)
                .get(&format!("/api/v1/rollouts?limit={limit}"))
                .await?;
            for r in list.as_array().into_iter().flatten() {
                println!("{}", list_line(r));
            }
            Ok(())
        }
        RolloutCommand::Show {
            id,
            watch,
            interval,
            json,
            remote,
        } => {
            let api = Api::new(&remote);
            let path = format!("/api/v1/rollouts/{id}");
            let shown = api.get(&path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
                return Ok(());
            }
            print!("{}", summary(&shown));
            if !watch {
                print!("{}", timeline(&shown));
                return Ok(());
            }
            let mut shown = shown;
            while text(&shown["state"]) == "running" || text(&shown["state"]) == "draft" {
                tokio::time::sleep(interval).await;
                shown = api.get(&path).await?;
                print!("{}", summary(&shown));
            }
            println!("rollout {id} is {}", text(&shown["state"]));
            Ok(())
        }
        RolloutCommand::Policy {
            id,
            file,
            reason,
            remote,
        } => {
            let body = json!({"policy": read_json(&file)?, "reason": reason});
            let shown = Api::new(&remote)
                .put(&format!("/api/v1/rollouts/{id}/policy"), &body)
                .await?;
            print!("{}", summary(&shown));
            Ok(())
        }
        RolloutCommand::Start(a) => act("start", a).await,
        RolloutCommand::Pause(a) => act("pause", a).await,
        RolloutCommand::Resume(a) => act("resume", a).await,
        RolloutCommand::Advance(a) => act("advance", a).await,
        RolloutCommand::Abort(a) => act("abort", a).await,
    }
}

async fn act(action: &str, a: Act) -> Result<(), AnyError> {
    let shown = Api::new(&a.remote)
        .post(
            &format!("/api/v1/rollouts/{}/{action}", a.id),
            &json!({"reason": a.reason}),
        )
        .await?;
    print!("{}", summary(&shown));
    Ok(())
}

async fn create(c: Create) -> Result<(), AnyError> {
    let mut stages = Vec::new();
    for s in &c.stages {
        let (percent, soak) = s
            .split_once(':')
            .ok_or_else(|| format!("--stage {s:?}: expected PERCENT:SOAK, e.g. 10%:1h"))?;
        stages.push(json!({"percent": percent, "soak": soak}));
    }
    let cohort = if c.devices.is_empty() {
        json!({"tags": c.tags})
    } else {
        json!({"devices": c.devices})
    };
    let policy = match &c.policy {
        Some(path) => read_json(path)?,
        None => Value::Null,
    };
    let body = json!({
        "release_id": c.release,
        "cohort": cohort,
        "stages": stages,
        "failure_threshold": {"max": c.max_failures, "min_devices": c.min_devices},
        "rate_limit_per_minute": c.rate_limit,
        "device_timeout": c.device_timeout,
        "policy": policy,
        "reason": c.reason,
    });
    let created = Api::new(&c.remote).post("/api/v1/rollouts", &body).await?;
    println!("{}", serde_json::to_string_pretty(&created)?);
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}
