//! The signed messages the agent sends (check-in, reports) and the director's answer. Every
//! message takes a fresh counter from the state dir, persisted before it is sent, and every
//! request keeps to the [`http`](crate::http) limits (deadline, size cap).

use otter_keys::signer::FileKey;
use otter_keys::wire::{Assignment, CheckIn, Event, Report, Signed, WireError};
use url::Url;

use crate::http::{self, HttpConfig, HttpError};
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
    /// The request failed or the server refused the message (the text says which).
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl MessageError {
    /// Whether sending again later may succeed (network trouble or a 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http(e) => e.is_transient(),
            Self::State(_) => true,
            Self::Sign(_) | Self::Url(_) => false,
        }
    }
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
    /// Deadlines and size caps.
    pub http: &'a HttpConfig,
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
        let request = self.client.post(url.clone()).json(&signed);
        let response = http::send(request, &url, self.http).await?;
        let answer = http::json(response, &url, self.http.max_response_size).await?;
        Ok((counter, answer))
    }

    /// Signs (with a fresh counter) and sends event number `event_seq` of the timeline. The
    /// server answers a sequence number it already has as accepted, so a retry is safe.
    pub async fn report(&self, event_seq: u64, event: Event) -> Result<(), MessageError> {
        let report = Report {
            device_id: self.identity.device_id.clone(),
            counter: self.state.next_counter()?,
            timestamp: unix_now(),
            event_seq,
            event,
        };
        let signed = Signed::sign(report, self.key)?;
        let url = self.server.join(&format!(
            "api/v1/devices/{}/reports",
            self.identity.device_id
        ))?;
        let request = self.client.post(url.clone()).json(&signed);
        let response = http::send(request, &url, self.http).await?;
        http::read_capped(response, &url, self.http.max_response_size).await?;
        Ok(())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}
