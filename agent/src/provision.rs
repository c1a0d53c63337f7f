//! `otter-agent provision`: creates the device key (0600), registers the device with a
//! provisioning token, and stores its id and the trust bundle in the state dir. Safe to
//! rerun after a failure: the key is reused until registration succeeds.

use std::path::Path;

use otter_boot::image::HardwareId;
use otter_keys::signer::{FileKey, Signer};
use otter_keys::trust_bundle::TrustBundle;
use serde_json::json;

use crate::agent::{OpenError, base_url};
use crate::state_dir::{Identity, StateDir, StateDirError};

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The state dir already holds a registered device.
    #[error("{0}: already provisioned (device {1}); use a fresh state dir")]
    AlreadyProvisioned(std::path::PathBuf, String),
    /// State dir problems.
    #[error(transparent)]
    State(#[from] StateDirError),
    /// The trust bundle is unusable.
    #[error("trust bundle: {0}")]
    Bundle(#[from] otter_keys::trust_bundle::BundleError),
    /// The bundle is for another board.
    #[error("the trust bundle is for hardware {bundle:?}, not {requested:?}")]
    WrongBundle {
        /// The bundle's board.
        bundle: String,
        /// The board asked for.
        requested: String,
    },
    /// A bad hardware id.
    #[error(
        "hardware id {0:?}: 1 to 32 characters of letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
    )]
    HardwareId(String),
    /// Copying the bundle failed.
    #[error("copying the trust bundle: {0}")]
    Copy(std::io::Error),
    /// The device key cannot be created.
    #[error("device key: {0}")]
    Key(#[from] otter_keys::signer::KeyError),
    /// Bad server URL.
    #[error(transparent)]
    Url(#[from] OpenError),
    /// The request failed.
    #[error("server unreachable: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused.
    #[error("registration refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: reqwest::StatusCode,
        /// The server's explanation.
        message: String,
    },
}

/// What to register.
pub struct Request<'a> {
    /// Server base URL.
    pub server: &'a str,
    /// Provisioning token.
    pub token: &'a str,
    /// Board type.
    pub hardware_id: &'a str,
    /// Serial number.
    pub serial: &'a str,
    /// Trust bundle directory (from `otter-keys trust-bundle`).
    pub trust: &'a Path,
}

/// Provisions the device whose state lives in `state_dir`.
pub async fn provision(
    state_dir: &Path,
    request: &Request<'_>,
) -> Result<Identity, ProvisionError> {
    let state = StateDir::open(state_dir)?;
    if let Ok(existing) = state.identity() {
        return Err(ProvisionError::AlreadyProvisioned(
            state_dir.to_path_buf(),
            existing.device_id,
        ));
    }
    HardwareId::new(request.hardware_id)
        .map_err(|_| ProvisionError::HardwareId(request.hardware_id.to_owned()))?;
    let bundle = TrustBundle::load(request.trust)?;
    if bundle.hardware_id.as_str() != request.hardware_id {
        return Err(ProvisionError::WrongBundle {
            bundle: bundle.hardware_id.as_str().to_owned(),
            requested: request.hardware_id.to_owned(),
        });
    }
    copy_dir(request.trust, &state.trust_dir()).map_err(ProvisionError::Copy)?;
    let key = if state.key_path().exists() {
        FileKey::load(&state.key_path())?
    } else {
        FileKey::generate_at(&state.key_path())?
    };
    let server = base_url(request.server)?;
    let url = server
        .join("api/v1/devices")
        .map_err(|source| OpenError::Url {
            url: request.server.to_owned(),
            source,
        })?;
    let http = crate::http::HttpConfig::default();
    let response = crate::http::client(&http)?
        .post(url.clone())
        .timeout(http.request_timeout)
        .bearer_auth(request.token)
        .json(&json!({
            "public_key": hex::encode(key.public_key()),
            "hardware_id": request.hardware_id,
            "serial": request.serial,
        }))
        .send()
        .await?;
    let status = response.status();
    let body: serde_json::Value = crate::http::read_capped(response, &url, http.max_response_size)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let device_id = match body["id"].as_str() {
        Some(id) if status.is_success() => id.to_owned(),
        _ => {
            return Err(ProvisionError::Refused {
                status,
                message: body["message"]
                    .as_str()
                    .unwrap_or("(no message)")
                    .to_owned(),
            });
        }
    };
    let identity = Identity {
        device_id,
        server: request.server.to_owned(),
        hardware_id: request.hardware_id.to_owned(),
        serial: request.serial.to_owned(),
    };
    state.save_identity(&identity)?;
    Ok(identity)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
