//! How the TUF client ([`crate::tuf`]) fetches metadata: through the agent's HTTP rules
//! ([`crate::http`]), with an overall deadline and a size cap per file, a bounded number of
//! tries within the cycle (a `timestamp.json` cut mid-body is fetched again), and errors
//! that say what happened.
//! A 404 (or the 403 of an object store) is reported as "file not found", which ends the
//! root update chain.

use std::time::Duration;

use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use crate::http::{self, HttpConfig, HttpError};

/// tough's transport over the agent's HTTP client.
#[derive(Clone, Debug)]
pub struct MetadataTransport {
    client: reqwest::Client,
    config: HttpConfig,
    backoff: Duration,
}

impl MetadataTransport {
    /// A transport with `client` (built by [`http::client`]) and `config`'s limits.
    pub fn new(client: reqwest::Client, config: HttpConfig) -> Self {
        Self {
            client,
            config,
            backoff: Duration::from_millis(500),
        }
    }

    /// One try: the whole file under the deadline and the cap.
    async fn fetch_once(&self, url: &Url) -> Result<bytes::Bytes, HttpError> {
        let response = http::send(self.client.get(url.clone()), url, &self.config).await?;
        http::read_capped(response, url, self.config.max_metadata_size).await
    }
}

#[async_trait::async_trait]
impl Transport for MetadataTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            ));
        }
        let attempts = self.config.metadata_attempts.max(1);
        let mut backoff = self.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.fetch_once(&url).await {
                Ok(body) => {
                    let stream = futures_util::stream::iter([Ok(body)]);
                    return Ok(Box::pin(stream));
                }
                // Object stores and CDNs answer 403 for a file they do not have.
                Err(HttpError::Status { status, .. })
                    if status == reqwest::StatusCode::NOT_FOUND
                        || status == reqwest::StatusCode::FORBIDDEN =>
                {
                    return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
                }
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::warn!(%url, attempt, error = %e, "TUF metadata fetch failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(e) => {
                    let e = format!("{e} (try {attempt} of {attempts})");
                    return Err(TransportError::new_with_cause(
                        TransportErrorKind::Other,
                        url,
                        e,
                    ));
                }
            }
        }
    }
}
