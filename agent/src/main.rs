//! `otter-agent`: provision, check, run, status, confirm — and the simulated device's tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use otter_agent::config::Config;
use otter_agent::{AfterBoot, Agent, provision, sim};

/// Otter device agent: verified, resumable delta updates into the inactive A/B slot.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Without one, the simulated device in --state-dir is used.
    #[arg(long, env = "OTTER_AGENT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// State directory (overrides the file's `state_dir`).
    #[arg(long, env = "OTTER_AGENT_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
    /// Server base URL (overrides the file's `server` and the provisioned one).
    #[arg(long, env = "OTTER_SERVER", global = true)]
    server: Option<String>,
    /// Whether an update needs a signed rollout policy (overrides `[rollout]
    /// require_policy`; unset: required when the trust bundle lists rollout keys).
    #[arg(long, env = "OTTER_REQUIRE_POLICY", global = true, value_name = "BOOL")]
    require_policy: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the device key, register the device, store its id and trust bundle.
    Provision {
        /// Provisioning token (scope `provision`).
        #[arg(long, env = "OTTER_TOKEN")]
        token: String,
        /// Board type, as in the image headers.
        #[arg(long)]
        hardware_id: String,
        /// Serial number.
        #[arg(long)]
        serial: String,
        /// Trust bundle directory from `otter-keys trust-bundle`.
        #[arg(long)]
        trust: PathBuf,
    },
    /// One update cycle, then exit (0: up to date or updated; 1: failed).
    Check,
    /// Cycle forever at the configured interval (with jitter and backoff on errors).
    Run,
    /// The device's view: slots, versions, boot state, pending update.
    Status,
    /// Run the health checks now and confirm the running trial image if they pass.
    Confirm,
    /// Tools that stand in for the factory and the bootloader (the simulated device, or any
    /// file-flash device given with --config).
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// Write a signed image into slot A (what the factory programs).
    FactoryImage {
        /// The signed image.
        image: PathBuf,
    },
    /// Reset the device: otter-boot decides which slot boots (counts trials, rolls back).
    Reset,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("OTTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

fn config(cli: &Cli) -> Result<Config, AnyError> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => {
            let dir = cli
                .state_dir
                .clone()
                .ok_or("give --config FILE, or --state-dir DIR for the simulated device")?;
            Config::simulated(&dir)
        }
    };
    if let (Some(dir), Some(_)) = (&cli.state_dir, &cli.config) {
        config.state_dir = dir.clone();
    }
    if let Some(server) = &cli.server {
        config.server = Some(server.clone());
    }
    if cli.require_policy.is_some() {
        config.rollout.require_policy = cli.require_policy;
    }
    Ok(config)
}

async fn run(cli: Cli) -> Result<ExitCode, AnyError> {
    let config = config(&cli)?;
    // One agent per state dir, for the life of this process.
    let _lock = otter_agent::lock::lock(&config.state_dir)?;
    match cli.command {
        Command::Provision {
            token,
            hardware_id,
            serial,
            trust,
        } => {
            let server = config
                .server
                .clone()
                .ok_or("give --server URL (or `server` in the configuration)")?;
            let identity = provision::provision(
                &config.state_dir,
                &provision::Request {
                    server: &server,
                    token: &token,
                    hardware_id: &hardware_id,
                    serial: &serial,
                    trust: &trust,
                },
            )
            .await?;
            println!(
                "provisioned as {} at {}",
                identity.device_id, identity.server
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let agent = Agent::open(config)?;
            agent.after_boot().await?;
            match agent.check().await {
                Ok(outcome) => {
                    println!("{outcome}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("failed at {}: {}", e.stage, e.source);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Run => {
            let agent = Agent::open(config)?;
            agent.run_forever().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let agent = Agent::open(config)?;
            println!("{}", agent.status()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Confirm => {
            let agent = Agent::open(config)?;
            match agent.after_boot().await? {
                AfterBoot::Confirmed(v) => println!("confirmed {v}"),
                AfterBoot::Settled => println!("nothing to confirm: not running a trial image"),
                AfterBoot::Unhealthy(why) | AfterBoot::Rejected(why) => {
                    println!("not confirmed: {why}");
                    return Ok(ExitCode::FAILURE);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim { command } => {
            let agent = Agent::open(config)?;
            match command {
                SimCommand::FactoryImage { image } => {
                    sim::write_factory_image(agent.device(), &image)?;
                    println!("slot A programmed with {}", image.display());
                }
                SimCommand::Reset => {
                    let d = sim::reset(agent.device())?;
                    println!(
                        "booting slot {:?}: {}{}",
                        d.slot,
                        d.header.version,
                        if d.trial { " (on trial)" } else { "" }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
