//! An opened, provisioned agent: configuration, state dir, identity, key, trust bundle,
//! flash, HTTP client and the reboot hook. The update cycle and the after-boot check are
//! methods of it (in `cycle` and `after_boot`).

use std::sync::Arc;

use otter_keys::signer::FileKey;
use url::Url;

use crate::config::Config;
use crate::device::{Device, DeviceError};
use crate::messages::Messenger;
use crate::state_dir::{Identity, StateDir, StateDirError};
use crate::tuf_client::{TufClient, TufClientError};
use crate::tuf_transport::MetadataTransport;

/// How the agent reboots the device after an install: `Ok(true)` if a reboot is under way,
/// `Ok(false)` if none is configured (the device boots the update at its next reset).
pub type RebootHook = Arc<dyn Fn() -> Result<bool, String> + Send + Sync>;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The state dir is unusable or not provisioned.
    #[error(transparent)]
    State(#[from] StateDirError),
    /// The flash is unusable.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The TUF metadata dir is unusable.
    #[error(transparent)]
    Tuf(#[from] TufClientError),
    /// The server URL is malformed.
    #[error("server URL {url:?}: {source}")]
    Url {
        /// The URL.
        url: String,
        /// The cause.
        source: url::ParseError,
    },
    /// The HTTP client cannot be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A provisioned device's agent.
pub struct Agent {
    pub(crate) config: Config,
    pub(crate) state: StateDir,
    pub(crate) identity: Identity,
    pub(crate) key: FileKey,
    pub(crate) server: Url,
    pub(crate) device: Device,
    pub(crate) tuf: TufClient,
    pub(crate) client: reqwest::Client,
    pub(crate) reboot: RebootHook,
}

impl Agent {
    /// Opens the agent described by `config` (provisioned before).
    pub fn open(config: Config) -> Result<Self, OpenError> {
        let state = StateDir::open(&config.state_dir)?;
        let identity = state.identity()?;
        let key = state.key()?;
        let bundle = state.trust()?;
        let server_text = config
            .server
            .clone()
            .unwrap_or_else(|| identity.server.clone());
        let server = base_url(&server_text)?;
        let client = crate::http::client(&config.http)?;
        let transport = MetadataTransport::new(client.clone(), config.http.clone());
        let tuf = TufClient::new(&state.tuf_dir(), &bundle.root_json, &server, transport)?;
        let device = Device::open(&config, bundle)?;
        let reboot = command_hook(config.reboot_command.clone());
        Ok(Self {
            client,
            config,
            state,
            identity,
            key,
            server,
            device,
            tuf,
            reboot,
        })
    }

    /// Replaces the reboot command (tests and the simulated device use a hook).
    pub fn with_reboot_hook(mut self, hook: RebootHook) -> Self {
        self.reboot = hook;
        self
    }

    /// The device's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The device's flash and boot state.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn messenger(&self) -> Messenger<'_> {
        Messenger {
            client: &self.client,
            server: &self.server,
            identity: &self.identity,
            key: &self.key,
            state: &self.state,
            http: &self.config.http,
        }
    }
}

/// `text` as a base URL ending in `/`, so joins keep its path.
pub fn base_url(text: &str) -> Result<Url, OpenError> {
    let with_slash = if text.ends_with('/') {
        text.to_owned()
    } else {
        format!("{text}/")
    };
    Url::parse(&with_slash).map_err(|source| OpenError::Url {
        url: text.to_owned(),
        source,
    })
}

fn command_hook(argv: Vec<String>) -> RebootHook {
    Arc::new(move || {
        let Some((program, args)) = argv.split_first() else {
            return Ok(false);
        };
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .map_err(|e| format!("{program}: {e}"))?;
        if status.success() {
            Ok(true)
        } else {
            Err(format!("{} exited with {status}", argv.join(" ")))
        }
    })
}
