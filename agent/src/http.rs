//! The agent's HTTP rules in one place, so no request can hang or fill memory: a connect
//! timeout, an idle (read) timeout on every response, an overall deadline for metadata and
//! messages, a size cap on every non-target answer, and errors that say what happened (the
//! connection was cut after N bytes, the server answered 503, nothing arrived for 30 s).
//!
//! Target downloads use the same client (connect and idle timeouts) but no overall deadline:
//! they resume from where they stopped instead (see [`crate::download`]).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use url::Url;

/// HTTP limits (`[http]` in the configuration).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Longest wait for a TCP (and TLS) connection.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest silence while waiting for the answer or the next bytes of a body; a server
    /// that stalls or trickles slower than this is dropped.
    #[serde(default = "defaults::idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Overall deadline of one check-in, report or TUF metadata request, body included.
    #[serde(default = "defaults::request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest JSON answer (check-in, report) read into memory, in bytes.
    #[serde(default = "defaults::max_response_size")]
    pub max_response_size: u64,
    /// Largest TUF metadata file read into memory, in bytes.
    #[serde(default = "defaults::max_metadata_size")]
    pub max_metadata_size: u64,
    /// Tries per TUF metadata file within a cycle (a cut or failed fetch is retried).
    #[serde(default = "defaults::metadata_attempts")]
    pub metadata_attempts: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: defaults::connect_timeout(),
            idle_timeout: defaults::idle_timeout(),
            request_timeout: defaults::request_timeout(),
            max_response_size: defaults::max_response_size(),
            max_metadata_size: defaults::max_metadata_size(),
            metadata_attempts: defaults::metadata_attempts(),
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn connect_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(120)
    }
    pub fn max_response_size() -> u64 {
        1 << 20
    }
    pub fn max_metadata_size() -> u64 {
        16 << 20
    }
    pub fn metadata_attempts() -> u32 {
        3
    }
}

/// What went wrong with one request, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No connection, or the request could not be sent.
    #[error("could not reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: Url,
        /// The cause, with its chain.
        reason: String,
    },
    /// The server sent nothing for the idle timeout, or missed the overall deadline.
    #[error("no complete answer from {url} in time ({reason})")]
    Timeout {
        /// The URL.
        url: Url,
        /// The cause, with its chain.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("server answered {status} for {url}: {message}")]
    Status {
        /// The URL.
        url: Url,
        /// The status.
        status: reqwest::StatusCode,
        /// The server's explanation (or a placeholder).
        message: String,
    },
    /// The connection ended before the whole body arrived.
    #[error("connection cut after {received} bytes of the answer from {url}: {reason}")]
    Cut {
        /// The URL.
        url: Url,
        /// Body bytes received before the cut.
        received: u64,
        /// The cause, with its chain.
        reason: String,
    },
    /// The body is larger than the cap for this kind of answer.
    #[error("the answer from {url} is larger than the {limit}-byte limit; refused")]
    TooLarge {
        /// The URL.
        url: Url,
        /// The cap.
        limit: u64,
    },
    /// The body is not the JSON expected.
    #[error("the answer from {url} is not the expected JSON: {reason}")]
    Decode {
        /// The URL.
        url: Url,
        /// What is wrong.
        reason: String,
    },
}

impl HttpError {
    /// Whether trying again later may succeed (network trouble or a 5xx, not a refusal).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Cut { .. } => true,
            Self::Status { status, .. } => status.is_server_error(),
            Self::TooLarge { .. } | Self::Decode { .. } => false,
        }
    }

    /// The error of a failed `send`: unreachable or timed out.
    pub fn from_send(url: &Url, e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout {
                url: url.clone(),
                reason: chain(e),
            }
        } else {
            Self::Unreachable {
                url: url.clone(),
                reason: chain(e),
            }
        }
    }

    /// The error of a body that failed after `received` bytes: timed out or cut.
    pub fn from_body(url: &Url, received: u64, e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout {
                url: url.clone(),
                reason: format!("after {received} bytes: {}", chain(e)),
            }
        } else {
            Self::Cut {
                url: url.clone(),
                received,
                reason: chain(e),
            }
        }
    }
}

/// An error and all its sources, joined (reqwest's own text alone says only "error decoding
/// response body").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// The agent's HTTP client: connect and idle timeouts on every request.
pub fn client(config: &HttpConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.idle_timeout)
        .build()
}

/// Sends `request` (to `url`) with the overall deadline; an error status becomes
/// [`HttpError::Status`] with the server's message (read under the size cap).
pub async fn send(
    request: reqwest::RequestBuilder,
    url: &Url,
    config: &HttpConfig,
) -> Result<reqwest::Response, HttpError> {
    let response = request
        .timeout(config.request_timeout)
        .send()
        .await
        .map_err(|e| HttpError::from_send(url, &e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let message = match read_capped(response, url, config.max_response_size).await {
        Ok(body) => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(no message)".into()),
        Err(e) => format!("(no message: {e})"),
    };
    Err(HttpError::Status {
        url: url.clone(),
        status,
        message,
    })
}

/// Reads the whole body, refusing one above `limit` bytes as soon as it is known to be.
pub async fn read_capped(
    response: reqwest::Response,
    url: &Url,
    limit: u64,
) -> Result<Bytes, HttpError> {
    let too_large = || HttpError::TooLarge {
        url: url.clone(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| HttpError::from_body(url, body.len() as u64, &e))?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a JSON body of at most `limit` bytes.
pub async fn json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    url: &Url,
    limit: u64,
) -> Result<T, HttpError> {
    let body = read_capped(response, url, limit).await?;
    serde_json::from_slice(&body).map_err(|e| HttpError::Decode {
        url: url.clone(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_trouble_and_5xx_are_transient() {
        let url = Url::parse("http://x/").unwrap();
        let status = |s: u16| HttpError::Status {
            url: url.clone(),
            status: reqwest::StatusCode::from_u16(s).unwrap(),
            message: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(!status(409).is_transient());
        assert!(
            !HttpError::TooLarge {
                url: url.clone(),
                limit: 1
            }
            .is_transient()
        );
        assert!(
            HttpError::Cut {
                url,
                received: 3,
                reason: String::new()
            }
            .is_transient()
        );
    }
}
