//! The agent's TUF client behind the CLIENT-CLI protocol of the TUF conformance suite
//! (theupdateframework/tuf-conformance): `init`, `refresh` and `download`. Run the suite
//! with `tests/tuf-conformance.sh SUITE_CHECKOUT`.
//!
//! The agent keeps delegated roles under names of its own (hex, so a role can never name a
//! top-level file); the suite reads `<role>.json`, so this adapter copies them there.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use otter_agent::http::HttpConfig;
use otter_agent::tuf_client::{Refreshed, TufClient};
use otter_agent::tuf_transport::MetadataTransport;
use sha2::{Digest, Sha256};
use url::Url;

#[derive(Parser)]
#[command(name = "tuf-conformance-client")]
struct Cli {
    /// Where trusted metadata is kept.
    #[arg(long)]
    metadata_dir: PathBuf,
    /// The repository's metadata base URL.
    #[arg(long)]
    metadata_url: Option<String>,
    /// Targets to download, in order.
    #[arg(long = "target-name")]
    target_names: Vec<String>,
    /// The repository's targets base URL.
    #[arg(long)]
    target_base_url: Option<String>,
    /// Where downloaded targets go.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// More output.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust this root.
    Init {
        /// The initial root.json.
        trusted_root: PathBuf,
    },
    /// Refresh the metadata.
    Refresh,
    /// Refresh, then download the targets.
    Download,
}

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Init { trusted_root } => {
            std::fs::create_dir_all(&cli.metadata_dir)?;
            std::fs::copy(trusted_root, cli.metadata_dir.join("root.json"))?;
            Ok(())
        }
        Command::Refresh => {
            let client = client(&cli.metadata_dir, cli.metadata_url.as_deref(), None)?;
            let repo = client.refresh_top_level().await?;
            expose_delegated(&cli.metadata_dir, &repo)
        }
        Command::Download => {
            let base = cli.target_base_url.as_deref().ok_or("--target-base-url")?;
            let dir = cli.target_dir.as_deref().ok_or("--target-dir")?;
            let client = client(&cli.metadata_dir, cli.metadata_url.as_deref(), Some(base))?;
            let mut repo = client.refresh_top_level().await?;
            let result = download_all(&mut repo, &cli.target_names, dir).await;
            expose_delegated(&cli.metadata_dir, &repo)?;
            result
        }
    }
}

fn with_slash(url: &str) -> Result<Url, Error> {
    let url = if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    };
    Ok(Url::parse(&url)?)
}

fn client(dir: &Path, metadata: Option<&str>, targets: Option<&str>) -> Result<TufClient, Error> {
    let metadata = with_slash(metadata.ok_or("--metadata-url")?)?;
    let targets = match targets {
        Some(t) => with_slash(t)?,
        None => metadata.clone(),
    };
    let root = std::fs::read(dir.join("root.json"))?;
    let config = HttpConfig::default();
    let http = otter_agent::http::client(&config)?;
    let transport = MetadataTransport::new(http, config);
    Ok(TufClient::with_urls(
        dir,
        &root,
        (metadata, targets),
        transport,
    )?)
}

/// Copies each loaded delegated role to `<role>.json`, where the suite looks.
fn expose_delegated(dir: &Path, repo: &Refreshed) -> Result<(), Error> {
    for role in repo.delegated_roles() {
        let from = dir.join(otter_agent::tuf::delegated_file(role));
        // Quoted as python-tuf names the file: no byte of the name can make it a path.
        let quoted: String = (role.bytes())
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        if quoted.is_empty() {
            continue;
        }
        std::fs::copy(from, dir.join(format!("{quoted}.json")))?;
    }
    Ok(())
}

async fn download_all(repo: &mut Refreshed, names: &[String], dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    let http = reqwest::Client::new();
    for name in names {
        repo.load_for(name).await?;
        let (length, sha256) = repo.plain_target(name)?;
        // One file per target name, the same each time it is downloaded again.
        let file = dir.join(hex::encode(name.as_bytes()));
        if std::fs::read(&file).is_ok_and(|b| Sha256::digest(&b).as_slice() == sha256) {
            continue;
        }
        let url = repo.url_of(name, &sha256)?;
        let response = http.get(url.clone()).send().await?.error_for_status()?;
        let bytes = response.bytes().await?;
        if bytes.len() as u64 > length {
            return Err(format!("{url}: longer than the signed {length} bytes").into());
        }
        if Sha256::digest(&bytes).as_slice() != sha256 {
            return Err(format!("{url}: not the signed SHA-256").into());
        }
        std::fs::write(&file, &bytes)?;
    }
    Ok(())
}
