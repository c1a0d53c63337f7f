//! Agent configuration: a TOML file (server, state dir, flash backend and layout, cycle
//! interval, health checks, download limits, rollout policy requirement), overridable by
//! flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use otter_boot::layout::{Layout, Partition};
use serde::Deserialize;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the device keeps its key, counter, trust bundle, TUF metadata and downloads.
    pub state_dir: PathBuf,
    /// Server base URL (set by `provision` if absent).
    #[serde(default)]
    pub server: Option<String>,
    /// The flash holding both slots and the boot state.
    pub flash: FlashConfig,
    /// Where slots and boot state live on it.
    pub layout: LayoutConfig,
    /// Time between cycles of `run`.
    #[serde(default = "defaults::interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Random extra delay added to each interval, so a fleet does not check in in lockstep.
    #[serde(default = "defaults::jitter", with = "humantime_serde")]
    pub jitter: Duration,
    /// Command that reboots the device after an install (argv).
    #[serde(default)]
    pub reboot_command: Vec<String>,
    /// Checks that must all pass before a trial image is confirmed.
    #[serde(default, rename = "health_check")]
    pub health_checks: Vec<HealthCheck>,
    /// Download limits.
    #[serde(default)]
    pub download: DownloadConfig,
    /// Longest wait between failed cycles of `run` (the backoff doubles from 30 s up to
    /// this, and never past `interval`).
    #[serde(default = "defaults::max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// HTTP timeouts, deadlines and size caps.
    #[serde(default)]
    pub http: crate::http::HttpConfig,
    /// Whether an assignment must carry a signed rollout policy.
    #[serde(default)]
    pub rollout: RolloutConfig,
    /// Simulated power loss on the flash (tests only; never read from a file).
    #[serde(skip)]
    pub power_cut: Option<crate::flash::PowerCut>,
}

/// The flash backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum FlashConfig {
    /// NOR flash simulated in a file (or a block device), 4-byte words, 4 KiB sectors.
    File {
        /// The file.
        path: PathBuf,
    },
}

/// One partition.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// Byte offset on the flash.
    pub offset: u32,
    /// Size in bytes (whole sectors).
    pub size: u32,
}

/// The A/B layout, as the bootloader was built with.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutConfig {
    /// Slot A.
    pub slot_a: PartitionConfig,
    /// Slot B.
    pub slot_b: PartitionConfig,
    /// Boot state.
    pub state: PartitionConfig,
}

impl LayoutConfig {
    /// otter-boot's layout (all three partitions on the one flash device).
    pub fn layout(&self) -> Result<Layout, otter_boot::layout::LayoutError> {
        let p = |c: PartitionConfig| Partition::new(0, c.offset, c.size);
        Layout::new(p(self.slot_a), p(self.slot_b), p(self.state))
    }

    /// Bytes the flash needs to hold every partition.
    pub fn flash_size(&self) -> u32 {
        [self.slot_a, self.slot_b, self.state]
            .iter()
            .map(|p| p.offset.saturating_add(p.size))
            .max()
            .unwrap_or(0)
    }
}

/// A health check: a command that must exit 0 within its timeout. It runs with
/// `OTTER_TRIAL_VERSION`, `OTTER_TRIAL_SLOT` and `OTTER_TRIAL_SHA256` set to the trial image
/// it judges (see [`crate::health::Trial`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// argv.
    pub command: Vec<String>,
    /// Longest the command may run.
    #[serde(default = "defaults::health_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// Download behaviour.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadConfig {
    /// Attempts per download before the cycle fails (resuming each time).
    #[serde(default = "defaults::attempts")]
    pub attempts: u32,
    /// First retry delay, doubled per attempt.
    #[serde(default = "defaults::backoff", with = "humantime_serde")]
    pub backoff: Duration,
    /// Largest target the agent downloads, in bytes (bigger ones are refused).
    #[serde(default = "defaults::max_target_size")]
    pub max_target_size: u64,
    /// Slowest acceptable download, in bytes per second over `min_speed_window` (a slower
    /// transfer is dropped and resumed).
    #[serde(default = "defaults::min_speed")]
    pub min_speed: u64,
    /// The window the minimum speed is measured over.
    #[serde(default = "defaults::min_speed_window", with = "humantime_serde")]
    pub min_speed_window: Duration,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self {
            attempts: defaults::attempts(),
            backoff: defaults::backoff(),
            max_target_size: defaults::max_target_size(),
            min_speed: defaults::min_speed(),
            min_speed_window: defaults::min_speed_window(),
        }
    }
}

/// The rollout policy requirement (`[rollout]`).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Whether an update is refused when its assignment carries no signed rollout policy.
    /// Unset means: required exactly when the trust bundle lists rollout keys (a bundle made
    /// before the role existed can check no policy). `false` lets an assignment without a
    /// policy install, with a warning, until the server sends policies; a policy that is sent
    /// is checked all the same. `true` with a bundle without rollout keys refuses every
    /// update.
    pub require_policy: Option<bool>,
}

mod defaults {
    use std::time::Duration;

    pub fn interval() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn jitter() -> Duration {
        Duration::from_secs(300)
    }
    pub fn health_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn attempts() -> u32 {
        5
    }
    pub fn backoff() -> Duration {
        Duration::from_secs(1)
    }
    pub fn max_target_size() -> u64 {
        64 << 20
    }
    pub fn min_speed() -> u64 {
        256
    }
    pub fn min_speed_window() -> Duration {
        Duration::from_secs(60)
    }
    pub fn max_backoff() -> Duration {
        Duration::from_secs(600)
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.download.attempts == 0 {
            return Err("download.attempts must be at least 1".into());
        }
        Ok(config)
    }

    /// The simulated device's configuration: a 4 MiB file flash in `state_dir` with two
    /// 1984 KiB slots and a 16 KiB boot-state partition.
    pub fn simulated(state_dir: &Path) -> Self {
        let slot = 1984 * 1024;
        Self {
            state_dir: state_dir.to_path_buf(),
            server: None,
            flash: FlashConfig::File {
                path: state_dir.join("flash.img"),
            },
            layout: LayoutConfig {
                slot_a: PartitionConfig {
                    offset: 0,
                    size: slot,
                },
                slot_b: PartitionConfig {
                    offset: slot,
                    size: slot,
                },
                state: PartitionConfig {
                    offset: 2 * slot,
                    size: 16 * 1024,
                },
            },
            interval: defaults::interval(),
            jitter: defaults::jitter(),
            reboot_command: Vec::new(),
            health_checks: Vec::new(),
            download: DownloadConfig::default(),
            max_backoff: defaults::max_backoff(),
            http: crate::http::HttpConfig::default(),
            rollout: RolloutConfig::default(),
            power_cut: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_defaults_fill_the_rest() {
        let config = Config::parse(
            r#"
            state_dir = "/var/lib/otter"
            server = "https://updates.example.com"
            interval = "30m"
            reboot_command = ["systemctl", "reboot"]
            [flash]
            backend = "file"
            path = "/dev/mtdblock3"
            [layout]
            slot_a = { offset = 0, size = 65536 }
            slot_b = { offset = 65536, size = 65536 }
            state = { offset = 131072, size = 8192 }
            [[health_check]]
            command = ["systemctl", "is-active", "app"]
            timeout = "10s"
            [download]
            max_target_size = 1048576
            [rollout]
            require_policy = false
            "#,
        )
        .unwrap();
        assert_eq!(config.rollout.require_policy, Some(false));
        assert_eq!(config.interval, Duration::from_secs(1800));
        assert_eq!(config.jitter, Duration::from_secs(300));
        assert_eq!(config.health_checks[0].timeout, Duration::from_secs(10));
        assert_eq!(config.download.attempts, 5);
        assert_eq!(config.layout.flash_size(), 139_264);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = Config::parse("state_dir = \"x\"\nflsh = 1\n").unwrap_err();
        assert!(err.contains("flsh"), "{err}");
        let err = Config::parse("state_dir = \"x\"\n[rollout]\nrequire = true\n").unwrap_err();
        assert!(err.contains("unknown field `require`"), "{err}");
        let base = Config::simulated(Path::new("/s"));
        assert_eq!(base.rollout.require_policy, None);
        assert_eq!(base.layout.flash_size(), 2 * 1984 * 1024 + 16 * 1024);
    }
}
