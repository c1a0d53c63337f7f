//! `otter-server`: serve the repository and APIs, create tokens, publish an image.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use otter_server::auth::{Scope, token};
use otter_server::config::{Config, ConfigArgs, LogFormat};
use otter_server::{App, app};
use tokio_util::sync::CancellationToken;

mod client;
mod rollout_client;

/// Otter update server: TUF repository, releases with deltas, device check-in.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates ./otter-data with SQLite and development keys on first start).
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Manage API tokens directly on the database.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Upload a signed image to a running server; prints the release (with the deltas it
    /// built, unless --no-wait) as one JSON document.
    Publish {
        /// The signed image (from `otter-keys sign-image`).
        image: PathBuf,
        /// Server base URL.
        #[arg(long, env = "OTTER_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Bearer token with the `publish` scope (prefer the variable: flags show in `ps`).
        #[arg(long, env = "OTTER_TOKEN", hide_env_values = true)]
        token: String,
        /// Return right after the upload instead of waiting for the delta builds.
        #[arg(long)]
        no_wait: bool,
    },
    /// Publish release metadata the vendor signed offline (`otter-keys sign-release`), once
    /// its images are published: from then on devices see them.
    PublishRelease {
        /// The signed release metadata (`KEYDIR/<N>.release.json`).
        file: PathBuf,
        /// Server base URL.
        #[arg(long, env = "OTTER_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Bearer token with the `publish` scope (prefer the variable: flags show in `ps`).
        #[arg(long, env = "OTTER_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Stage a release with a rollout: create, list, show (--watch), start, pause, resume,
    /// advance, abort, and upload its signed policy. A thin client of a running server's
    /// API (scope `fleet`).
    Rollout {
        #[command(subcommand)]
        command: rollout_client::RolloutCommand,
    },
    /// Internal: one diff in its own process, under resource limits (see `deltas::child`).
    #[command(hide = true)]
    DeltaChild {
        /// Address-space limit, bytes.
        #[arg(long)]
        memory_limit: u64,
        /// CPU time limit, seconds.
        #[arg(long)]
        cpu_seconds: u64,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (the secret is shown only now).
    Create {
        /// Scope to grant (repeat for several).
        #[arg(long = "scope", required = true, value_enum)]
        scopes: Vec<Scope>,
        /// What the token is for.
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List every token (id, scopes, label, created, revoked); secrets are never shown.
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke a token by id: every request with it is refused from now on.
    Revoke {
        /// The token id (`tok_...`, the part before the dot).
        id: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Token {
            command:
                TokenCommand::Create {
                    scopes,
                    label,
                    config,
                },
        } => create_token(config, &scopes, &label).await,
        Command::Token {
            command: TokenCommand::List { config },
        } => list_tokens(config).await,
        Command::Token {
            command: TokenCommand::Revoke { id, config },
        } => revoke_token(config, &id).await,
        Command::Publish {
            image,
            server,
            token,
            no_wait,
        } => client::publish(&server, &token, &image, !no_wait).await,
        Command::PublishRelease {
            file,
            server,
            token,
        } => client::publish_release(&server, &token, &file).await,
        Command::Rollout { command } => rollout_client::run(command).await,
        Command::DeltaChild {
            memory_limit,
            cpu_seconds,
        } => {
            let limits = otter_server::deltas::child::ChildLimits {
                memory_bytes: memory_limit,
                cpu_seconds,
            };
            let status = otter_server::deltas::child::run(limits);
            return ExitCode::from(u8::try_from(status).unwrap_or(1));
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

async fn serve(args: ConfigArgs) -> Result<(), AnyError> {
    let mut config = Config::resolve(&args)?;
    init_logging(config.log_format);
    otter_server::listen::raise_fd_limit(&mut config.serve);
    if config.delta_differ.is_none() {
        // Diffs run in a child process of this binary, so no input can take the server down.
        config.delta_differ = Some(std::env::current_exe()?);
    }
    let listen = config.listen;
    let tls = config.tls.clone();
    let app = App::open(config).await?;
    if app.state.keys.development {
        tracing::warn!(
            dir = %app.state.keys.dir.display(),
            "USING DEVELOPMENT KEYS created by this server. Production keys come from \
             `otter-keys init`, with the root and firmware keys kept offline; pass the online \
             key directory with --keys-dir."
        );
    }
    if !app.state.keys.development {
        let offline = otter_server::keys::offline_private_keys(&app.state.keys.dir);
        if !offline.is_empty() {
            let names: Vec<String> = offline.iter().map(|p| p.display().to_string()).collect();
            tracing::warn!(
                keys = %names.join(", "),
                "OFFLINE PRIVATE KEYS IN --keys-dir: the root, firmware, rollout and release \
                 signing keys (and, with offline release signing, the targets key) must not be \
                 on the server (whoever takes it could sign roots, firmware, releases and wider \
                 rollouts). Give the server a copy of the key directory without them."
            );
        }
    }
    if let Some(token) = &app.first_admin_token {
        eprintln!(
            "\nInitial admin token (shown once, store it now):\n\n    {}\n\n\
             Create narrower tokens with `otter-server token create --scope publish` or \
             POST /api/v1/tokens.\n",
            token.token
        );
    }
    let shutdown = CancellationToken::new();
    stop_on_signal(shutdown.clone());
    match tls {
        Some((cert, key)) => {
            let listener = std::net::TcpListener::bind(listen)?;
            listener.set_nonblocking(true)?;
            tracing::info!("listening on https://{}", listener.local_addr()?);
            app.serve_tls(listener, cert, key, shutdown).await?;
        }
        None => {
            let listener = app::bind(listen).await?;
            tracing::info!("listening on http://{}", listener.local_addr()?);
            app.serve(listener, shutdown).await?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn create_token(args: ConfigArgs, scopes: &[Scope], label: &str) -> Result<(), AnyError> {
    let config = Config::resolve(&args)?;
    otter_server::storage::create_private_dirs(&config.data_dir)?;
    let db = otter_server::db::Db::open(&config.database_url).await?;
    let created = token::create(&db, scopes, label).await?;
    db.close().await;
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    eprintln!(
        "token {} with scopes {} (shown once):",
        created.id,
        names.join(",")
    );
    println!("{}", created.token);
    Ok(())
}

async fn open_db(args: &ConfigArgs) -> Result<otter_server::db::Db, AnyError> {
    let config = Config::resolve(args)?;
    otter_server::storage::create_private_dirs(&config.data_dir)?;
    Ok(otter_server::db::Db::open(&config.database_url).await?)
}

async fn list_tokens(args: ConfigArgs) -> Result<(), AnyError> {
    let db = open_db(&args).await?;
    let tokens = token::list(&db).await;
    db.close().await;
    println!("{}", serde_json::to_string_pretty(&tokens?)?);
    Ok(())
}

async fn revoke_token(args: ConfigArgs, id: &str) -> Result<(), AnyError> {
    let db = open_db(&args).await?;
    let found = token::revoke(&db, id).await;
    db.close().await;
    if !found? {
        return Err(format!("no token {id:?} (see `otter-server token list`)").into());
    }
    eprintln!("token {id} revoked");
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
///
/// The handlers are installed before this returns, so a signal sent as soon as "listening" is
/// printed stops the server cleanly instead of killing it with the default action.
fn stop_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        [
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ]
    };
    #[cfg(unix)]
    for failed in signals.iter().filter_map(|s| s.as_ref().err()) {
        tracing::error!(error = %failed, "cannot listen for a stop signal");
    }
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            let [term, int] = signals;
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown.cancel();
    });
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OTTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
