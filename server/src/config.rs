//! Server configuration: command-line flags, then `OTTER_*` environment variables, then an
//! optional TOML file, then defaults — the first that sets a value wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::listen::ServeLimits;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Every setting as flag and environment variable; unset ones fall back to the TOML file,
/// then to the default named in the help text.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (snake_case keys, e.g. `data_dir = "/srv/otter"`).
    #[arg(long, env = "OTTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the database, blobs and development keys [default: ./otter-data].
    #[arg(long, env = "OTTER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "OTTER_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB` [default: sqlite in the data dir].
    #[arg(long, env = "OTTER_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Key directory made by `otter-keys init` (online keys only: targets, snapshot,
    /// timestamp, director) [default: development keys created in the data dir].
    #[arg(long, env = "OTTER_KEYS_DIR", value_name = "DIR")]
    pub keys_dir: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS directly (needs --tls-key).
    #[arg(long, env = "OTTER_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "OTTER_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Log format [default: human].
    #[arg(long, env = "OTTER_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Largest image a publish accepts, e.g. 256MiB [default: 256MiB].
    #[arg(long, env = "OTTER_MAX_IMAGE_SIZE", value_name = "SIZE")]
    pub max_image_size: Option<String>,
    /// How many earlier releases get a delta to each new one [default: 3].
    #[arg(long, env = "OTTER_DELTA_BASES", value_name = "N")]
    pub delta_bases: Option<usize>,
    /// Largest image the differ takes (it needs ~17 bytes of RAM per byte) [default: 64MiB].
    #[arg(long, env = "OTTER_DELTA_MAX_IMAGE_SIZE", value_name = "SIZE")]
    pub delta_max_image_size: Option<String>,
    /// Delta builds run at once [default: 1].
    #[arg(long, env = "OTTER_DELTA_CONCURRENCY", value_name = "N")]
    pub delta_concurrency: Option<usize>,
    /// Time limit of one diff; its process is killed past it [default: 10m].
    #[arg(long, env = "OTTER_DELTA_TIMEOUT", value_name = "DURATION")]
    pub delta_timeout: Option<String>,
    /// Address-space limit of one diff's process [default: 2GiB].
    #[arg(long, env = "OTTER_DELTA_MEMORY_LIMIT", value_name = "SIZE")]
    pub delta_memory_limit: Option<String>,
    /// Program run for each diff [default: this binary's hidden `delta-child`].
    #[arg(long, env = "OTTER_DELTA_DIFFER", value_name = "FILE", hide = true)]
    pub delta_differ: Option<PathBuf>,
    /// Lifetime of signed timestamp metadata, e.g. 1d [default: 1d].
    #[arg(long, env = "OTTER_TIMESTAMP_EXPIRY", value_name = "DURATION")]
    pub timestamp_expiry: Option<String>,
    /// Lifetime of signed snapshot metadata [default: 7d].
    #[arg(long, env = "OTTER_SNAPSHOT_EXPIRY", value_name = "DURATION")]
    pub snapshot_expiry: Option<String>,
    /// Lifetime of signed targets metadata [default: 30d].
    #[arg(long, env = "OTTER_TARGETS_EXPIRY", value_name = "DURATION")]
    pub targets_expiry: Option<String>,
    /// Lifetime of a director assignment sent to a device [default: 1h].
    #[arg(long, env = "OTTER_ASSIGNMENT_TTL", value_name = "DURATION")]
    pub assignment_ttl: Option<String>,
    /// Largest accepted difference between a device's clock and ours [default: 10m].
    #[arg(long, env = "OTTER_MAX_CLOCK_SKEW", value_name = "DURATION")]
    pub max_clock_skew: Option<String>,
    /// A device not heard from for this long is flagged silent; three of the agent's
    /// default check-in intervals [default: 3h].
    #[arg(long, env = "OTTER_SILENT_AFTER", value_name = "DURATION")]
    pub silent_after: Option<String>,
    /// How often running rollouts are evaluated for soak times and device timeouts
    /// [default: 10s].
    #[arg(long, env = "OTTER_ROLLOUT_TICK", value_name = "DURATION")]
    pub rollout_tick: Option<String>,
    /// Time from a connection's start, or the end of its previous response, to a complete
    /// request head; also how long an idle keep-alive connection stays open [default: 20s].
    #[arg(long, env = "OTTER_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    pub header_read_timeout: Option<String>,
    /// Time a request body may take before --body-min-rate applies; a slower body is
    /// answered 408 [default: 30s].
    #[arg(long, env = "OTTER_BODY_TIMEOUT", value_name = "DURATION")]
    pub body_timeout: Option<String>,
    /// Bytes per second a request body must average after --body-timeout [default: 1KiB].
    #[arg(long, env = "OTTER_BODY_MIN_RATE", value_name = "SIZE")]
    pub body_min_rate: Option<String>,
    /// Time a response may wait for the client to take a byte before its connection is
    /// closed [default: 30s].
    #[arg(long, env = "OTTER_WRITE_TIMEOUT", value_name = "DURATION")]
    pub write_timeout: Option<String>,
    /// Connections served at once (capped below the file descriptor limit) [default: 1024].
    #[arg(long, env = "OTTER_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Of --max-connections, how many one host (an IPv4 address or an IPv6 /64) may hold;
    /// raise it for many devices behind one NAT [default: 256].
    #[arg(long, env = "OTTER_MAX_CONNECTIONS_PER_HOST", value_name = "N")]
    pub max_connections_per_host: Option<usize>,
    /// Extra connections kept for /healthz and /metrics once --max-connections are open
    /// [default: 32].
    #[arg(long, env = "OTTER_RESERVE_CONNECTIONS", value_name = "N")]
    pub reserve_connections: Option<usize>,
    /// How long shutdown waits for in-flight requests before closing them [default: 30s].
    #[arg(long, env = "OTTER_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
}

/// The TOML file: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    keys_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_format: Option<LogFormat>,
    max_image_size: Option<String>,
    delta_bases: Option<usize>,
    delta_max_image_size: Option<String>,
    delta_concurrency: Option<usize>,
    delta_timeout: Option<String>,
    delta_memory_limit: Option<String>,
    delta_differ: Option<PathBuf>,
    timestamp_expiry: Option<String>,
    snapshot_expiry: Option<String>,
    targets_expiry: Option<String>,
    assignment_ttl: Option<String>,
    max_clock_skew: Option<String>,
    silent_after: Option<String>,
    rollout_tick: Option<String>,
    header_read_timeout: Option<String>,
    body_timeout: Option<String>,
    body_min_rate: Option<String>,
    write_timeout: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_host: Option<usize>,
    reserve_connections: Option<usize>,
    shutdown_timeout: Option<String>,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Data directory (database, blobs, staging, development keys).
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Database URL.
    pub database_url: String,
    /// Configured key directory; `None` means development keys in the data dir.
    pub keys_dir: Option<PathBuf>,
    /// Certificate and key for direct TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Log format.
    pub log_format: LogFormat,
    /// Publish size limit in bytes.
    pub max_image_size: u64,
    /// Number of earlier releases diffed against a new one.
    pub delta_bases: usize,
    /// Largest old or new image the differ accepts, in bytes.
    pub delta_max_image_size: u64,
    /// Concurrent delta builds.
    pub delta_concurrency: usize,
    /// Wall-clock (and CPU) limit of one diff process.
    pub delta_timeout: Duration,
    /// Address-space limit of one diff process, bytes.
    pub delta_memory_limit: u64,
    /// The program diffs run in (`delta-child` subcommand); `None` diffs in this process,
    /// unprotected (library use; `otter-server serve` always sets it to itself).
    pub delta_differ: Option<PathBuf>,
    /// Timestamp metadata lifetime.
    pub timestamp_expiry: Duration,
    /// Snapshot metadata lifetime.
    pub snapshot_expiry: Duration,
    /// Targets metadata lifetime.
    pub targets_expiry: Duration,
    /// Assignment lifetime.
    pub assignment_ttl: Duration,
    /// Device clock tolerance.
    pub max_clock_skew: Duration,
    /// Silence after which a device is flagged.
    pub silent_after: Duration,
    /// Period of the rollout ticker (tests may set it below a second directly).
    pub rollout_tick: Duration,
    /// Timeouts and connection limits of the listener.
    pub serve: ServeLimits,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML file is malformed or has unknown keys.
    #[error("{path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting has a bad value.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting name.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// The defaults with `data_dir` (what tests start from).
    pub fn with_data_dir(data_dir: &Path) -> Self {
        let args = ConfigArgs {
            data_dir: Some(data_dir.to_path_buf()),
            ..ConfigArgs::default()
        };
        // Resolving built-in defaults cannot fail; keep the signature infallible for tests.
        match Self::resolve(&args) {
            Ok(config) => config,
            Err(e) => unreachable!("built-in defaults are valid: {e}"),
        }
    }

    /// Resolves flags and environment (already merged by clap) over the TOML file over the
    /// defaults.
    pub fn resolve(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let serve = serve_limits(args, &file)?;
        let data_dir = pick(args.data_dir.clone(), file.data_dir)
            .unwrap_or_else(|| PathBuf::from("otter-data"));
        let database_url =
            pick(args.database_url.clone(), file.database_url).unwrap_or_else(|| {
                format!("sqlite://{}?mode=rwc", data_dir.join("otter.db").display())
            });
        let tls = match (
            pick(args.tls_cert.clone(), file.tls_cert),
            pick(args.tls_key.clone(), file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "tls_cert/tls_key",
                    message: "give both the certificate and the key, or neither".into(),
                });
            }
        };
        let positive = |setting: &'static str, n: usize| {
            if n == 0 {
                Err(ConfigError::Invalid {
                    setting,
                    message: "must be at least 1".into(),
                })
            } else {
                Ok(n)
            }
        };
        Ok(Self {
            listen: pick(args.listen, file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url,
            keys_dir: pick(args.keys_dir.clone(), file.keys_dir),
            tls,
            log_format: pick(args.log_format, file.log_format).unwrap_or_default(),
            max_image_size: size(
                "max_image_size",
                pick(args.max_image_size.clone(), file.max_image_size),
                "256MiB",
            )?,
            delta_bases: pick(args.delta_bases, file.delta_bases).unwrap_or(3),
            delta_max_image_size: size(
                "delta_max_image_size",
                pick(args.delta_max_image_size.clone(), file.delta_max_image_size),
                "64MiB",
            )?,
            delta_concurrency: positive(
                "delta_concurrency",
                pick(args.delta_concurrency, file.delta_concurrency).unwrap_or(1),
            )?,
            delta_timeout: duration(
                "delta_timeout",
                pick(args.delta_timeout.clone(), file.delta_timeout),
                "10m",
            )?,
            delta_memory_limit: size(
                "delta_memory_limit",
                pick(args.delta_memory_limit.clone(), file.delta_memory_limit),
                "2GiB",
            )?,
            delta_differ: pick(args.delta_differ.clone(), file.delta_differ),
            timestamp_expiry: duration(
                "timestamp_expiry",
                pick(args.timestamp_expiry.clone(), file.timestamp_expiry),
                "1d",
            )?,
            snapshot_expiry: duration(
                "snapshot_expiry",
                pick(args.snapshot_expiry.clone(), file.snapshot_expiry),
                "7d",
            )?,
            targets_expiry: duration(
                "targets_expiry",
                pick(args.targets_expiry.clone(), file.targets_expiry),
                "30d",
            )?,
            assignment_ttl: duration(
                "assignment_ttl",
                pick(args.assignment_ttl.clone(), file.assignment_ttl),
                "1h",
            )?,
            max_clock_skew: duration(
                "max_clock_skew",
                pick(args.max_clock_skew.clone(), file.max_clock_skew),
                "10m",
            )?,
            silent_after: duration(
                "silent_after",
                pick(args.silent_after.clone(), file.silent_after),
                "3h",
            )?,
            rollout_tick: duration(
                "rollout_tick",
                pick(args.rollout_tick.clone(), file.rollout_tick),
                "10s",
            )?,
            serve,
            data_dir,
        })
    }
}

fn serve_limits(args: &ConfigArgs, file: &FileConfig) -> Result<ServeLimits, ConfigError> {
    let text = |flag: &Option<String>, file: &Option<String>| flag.clone().or(file.clone());
    let max_connections = args
        .max_connections
        .or(file.max_connections)
        .unwrap_or(1024);
    let max_connections_per_host = args
        .max_connections_per_host
        .or(file.max_connections_per_host)
        .unwrap_or(256);
    for (setting, value) in [
        ("max_connections", max_connections),
        ("max_connections_per_host", max_connections_per_host),
    ] {
        if value == 0 {
            return Err(ConfigError::Invalid {
                setting,
                message: "must be at least 1".into(),
            });
        }
    }
    Ok(ServeLimits {
        header_read_timeout: duration(
            "header_read_timeout",
            text(&args.header_read_timeout, &file.header_read_timeout),
            "20s",
        )?,
        body_timeout: duration(
            "body_timeout",
            text(&args.body_timeout, &file.body_timeout),
            "30s",
        )?,
        body_min_rate: size(
            "body_min_rate",
            text(&args.body_min_rate, &file.body_min_rate),
            "1KiB",
        )?,
        write_timeout: duration(
            "write_timeout",
            text(&args.write_timeout, &file.write_timeout),
            "30s",
        )?,
        max_connections,
        max_connections_per_host,
        reserve_connections: args
            .reserve_connections
            .or(file.reserve_connections)
            .unwrap_or(32),
        shutdown_timeout: duration(
            "shutdown_timeout",
            text(&args.shutdown_timeout, &file.shutdown_timeout),
            "30s",
        )?,
    })
}

fn pick<T>(flag_or_env: Option<T>, file: Option<T>) -> Option<T> {
    flag_or_env.or(file)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Toml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn duration(
    setting: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    let parsed = humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
        setting,
        message: format!("{text:?}: {e} (examples: 90s, 10m, 1h, 7d)"),
    })?;
    if parsed < Duration::from_secs(1) {
        return Err(ConfigError::Invalid {
            setting,
            message: format!("{text:?}: must be at least one second"),
        });
    }
    Ok(parsed)
}

fn size(setting: &'static str, value: Option<String>, default: &str) -> Result<u64, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    parse_size(text).ok_or_else(|| ConfigError::Invalid {
        setting,
        message: format!("{text:?}: expected a byte count such as 1048576, 512KiB, 64MiB or 1GiB"),
    })
}

/// Parses `1234`, `512KiB`, `64MiB`, `1GiB` (also `KB`/`MB`/`GB` as powers of 1000).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor).filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("256MiB"), Some(256 << 20));
        assert_eq!(parse_size("2 GiB"), Some(2 << 30));
        assert_eq!(parse_size("5MB"), Some(5_000_000));
        for bad in ["", "0", "-1", "12XB", "MiB", "99999999999999999999GiB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn defaults_match_the_help_text() {
        let c = Config::with_data_dir(Path::new("d"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://d/otter.db?mode=rwc");
        assert_eq!(c.max_image_size, 256 << 20);
        assert_eq!(c.delta_bases, 3);
        assert_eq!(c.timestamp_expiry, Duration::from_secs(86_400));
        assert!(c.keys_dir.is_none() && c.tls.is_none());
        assert_eq!(c.serve, ServeLimits::default());
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otter.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\ndelta_bases = 5\ntimestamp_expiry = \"2h\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(file.clone()),
            delta_bases: Some(7),
            ..ConfigArgs::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.delta_bases, 7, "flag wins over file");
        assert_eq!(
            c.listen.to_string(),
            "0.0.0.0:9000",
            "file wins over default"
        );
        assert_eq!(c.timestamp_expiry, Duration::from_secs(7200));

        std::fs::write(&file, "listen_on = \"x\"\n").unwrap();
        let err = Config::resolve(&args).unwrap_err().to_string();
        assert!(err.contains("listen_on"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let args = ConfigArgs {
            timestamp_expiry: Some("soon".into()),
            ..ConfigArgs::default()
        };
        let err = Config::resolve(&args).unwrap_err().to_string();
        assert!(err.starts_with("timestamp_expiry"), "{err}");
        let args = ConfigArgs {
            max_connections_per_host: Some(0),
            ..ConfigArgs::default()
        };
        let err = Config::resolve(&args).unwrap_err().to_string();
        assert!(err.starts_with("max_connections_per_host"), "{err}");
        let args = ConfigArgs {
            tls_cert: Some("c.pem".into()),
            ..ConfigArgs::default()
        };
        assert!(Config::resolve(&args).is_err());
    }
}
