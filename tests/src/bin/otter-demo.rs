//! `otter-demo`: a server, a fleet of simulated devices and two staged rollouts, watched live
//! (see `otter_e2e::demo`). Exits non-zero if anything the demo shows did not hold.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use otter_e2e::demo::{self, Options};

/// Otter end to end in one command: publish, stage a healthy rollout and a failing one.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// How many simulated devices.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(4..=500))]
    devices: u16,
    /// Where the server listens (a free port is taken when this one is busy).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Keep the server's data and the devices' flash here instead of a temporary dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Exit after the summary instead of serving the dashboard until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// The longest a rollout may take before the demo gives up.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    patience: Duration,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        devices: usize::from(args.devices),
        listen: args.listen,
        dir: args.dir,
        exit: args.exit,
        patience: args.patience,
    };
    match demo::run(&options).await {
        Ok(summary) => {
            let broken = summary.broken_promises();
            if broken.is_empty() {
                println!("Every promise held.");
                return ExitCode::SUCCESS;
            }
            for promise in broken {
                eprintln!("broken: {promise}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("otter-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
