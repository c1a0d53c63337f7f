//! The signed messages the agent sends (check-in, reports) and the director's answer. Every
//! message takes a fresh counter from the state dir, persisted before it is sent.

use otter_keys::signer::FileKey;
use otter_keys::wire::{Assignment, CheckIn, Event, Report, Signed, WireError};
use url::Url;

use crate::state_dir::{Identity, StateDir, StateDirError};

/// Why talking to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The counter or key could not be used.
    #[error(transparent)]
    State(#[from] StateDirError),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] WireError),
    /// The URL is malformed.
    #[error("server URL: {0}")]
    Url(#[from] url::ParseError),
    /// The request failed.
    #[error("server unreachable: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused the message.
    #[error("server refused the message ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: reqwest::StatusCode,
        /// The server's explanation.
        message: String,
    },
}

/// Sends signed messages as this device.
pub struct Messenger<'a> {
    /// HTTP client.
    pub client: &'a reqwest::Client,
    /// Server base URL.
    pub server: &'a Url,
    /// Who we are.
    pub identity: &'a Identity,
    /// Our key.
    pub key: &'a FileKey,
    /// Where the counter lives.
    pub state: &'a StateDir,
}

impl Messenger<'_> {
    /// Signs and sends a check-in built by `make(counter, timestamp)`; returns the counter
    /// used (the assignment must echo it) and the director's signed answer.
    pub async fn check_in(
        &self,
        make: impl FnOnce(u64, u64) -> CheckIn,
    ) -> Result<(u64, Signed<Assignment>), MessageError> {
        let counter = self.state.next_counter()?;
        let signed = Signed::sign(make(counter, unix_now()), self.key)?;
        let url = self.server.join(&format!(
            "api/v1/devices/{}/checkin",
            self.identity.device_id
        ))?;
        let response = self.client.post(url).json(&signed).send().await?;
        let response = ok_or_refused(response).await?;
        Ok((counter, response.json().await?))
    }

    /// Signs and sends one timeline event.
    pub async fn report(&self, event: Event) -> Result<(), MessageError> {
        let report = Report {
            device_id: self.identity.device_id.clone(),
            counter: self.state.next_counter()?,
            timestamp: unix_now(),
            event,
        };
        let signed = Signed::sign(report, self.key)?;
        let url = self.server.join(&format!(
            "api/v1/devices/{}/reports",
            self.identity.device_id
        ))?;
        ok_or_refused(self.client.post(url).json(&signed).send().await?).await?;
        Ok(())
    }
}

async fn ok_or_refused(response: reqwest::Response) -> Result<reqwest::Response, MessageError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    Err(MessageError::Refused {
        status,
        message: body["message"]
            .as_str()
            .unwrap_or("(no message)")
            .to_owned(),
    })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}
