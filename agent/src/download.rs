//! Resumable download of a TUF target: partial data stays in the state dir, a cut
//! connection resumes with `Range`, and the finished file must hash to the signed SHA-256.
//!
//! What the server sends is checked before it touches the partial file: a `206` must carry
//! a `Content-Range` starting exactly where the file ends (else nothing is appended), and
//! nothing past the signed length is ever written (endless data defence), though the bytes
//! before it are kept. There is no overall deadline (a large image on a slow link may take
//! long); instead an idle timeout (on the client) and a minimum speed end a stalled or
//! trickling transfer, and attempts that make progress do not use up the retries.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use url::Url;

use crate::http::HttpError;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The partial file cannot be written or read.
    #[error("download file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The finished file does not hash to the signed SHA-256.
    #[error("downloaded file does not match its signed sha256 (expected {expected}, got {got})")]
    HashMismatch {
        /// Expected hex.
        expected: String,
        /// Actual hex.
        got: String,
    },
    /// The server refused the request (a 4xx: trying again will not help).
    #[error("the server answered {status} for {url}")]
    Status {
        /// The URL.
        url: Url,
        /// The status.
        status: reqwest::StatusCode,
    },
    /// Too many attempts in a row ended without progress.
    #[error(
        "download stopped at {have} of {length} bytes after {attempts} attempts without \
         progress; last: {last}"
    )]
    Incomplete {
        /// Attempts made in a row without progress.
        attempts: u32,
        /// Bytes on disk.
        have: u64,
        /// The signed length.
        length: u64,
        /// Why the last attempt ended.
        last: Interruption,
    },
}

/// Why one attempt ended before the signed length (the next attempt resumes).
#[derive(Debug, thiserror::Error)]
pub enum Interruption {
    /// The request failed: unreachable, timed out, cut after N bytes, or a 5xx.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A `206` for another range than the one asked for.
    #[error(
        "asked for bytes {asked}- but the server answered Content-Range {got:?}; nothing appended"
    )]
    WrongRange {
        /// The offset asked for.
        asked: u64,
        /// The `Content-Range` received (empty if none).
        got: String,
    },
    /// The transfer went on below the minimum speed.
    #[error(
        "only {received} bytes arrived in {window:?}, below the minimum of {min_speed} bytes/s"
    )]
    TooSlow {
        /// Bytes in the last window.
        received: u64,
        /// The window.
        window: Duration,
        /// The minimum speed.
        min_speed: u64,
    },
    /// The body ended normally, short of the signed length.
    #[error("the answer ended after {received} bytes, short of the signed length")]
    Short {
        /// Bytes received in this attempt.
        received: u64,
    },
}

/// Retry policy and progress reporting.
pub struct Options<'a> {
    /// Attempts in a row without progress before giving up.
    pub attempts: u32,
    /// First backoff; doubled after each attempt without progress.
    pub backoff: Duration,
    /// Slowest acceptable transfer, in bytes per second over `min_speed_window`.
    pub min_speed: u64,
    /// The window the minimum speed is measured over.
    pub min_speed_window: Duration,
    /// Called with (bytes so far, total) as data arrives.
    pub progress: &'a mut dyn FnMut(u64, u64),
}

/// What a download did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes that came over the network in this call (less than the length after a resume).
    pub transferred: u64,
    /// Bytes that were already on disk from an earlier, interrupted call.
    pub resumed_from: u64,
}

/// Downloads `url` into `partial` (resuming what is there) until it holds exactly `length`
/// bytes hashing to `sha256`. On a hash mismatch the partial file is deleted.
pub async fn fetch(
    client: &reqwest::Client,
    url: &Url,
    partial: &Path,
    length: u64,
    sha256: &[u8; 32],
    options: Options<'_>,
) -> Result<Fetched, DownloadError> {
    let io = |source| DownloadError::Io {
        path: partial.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(partial)
        .map_err(io)?;
    let mut have = file.metadata().map_err(io)?.len();
    if have > length {
        file.set_len(0).map_err(io)?;
        have = 0;
    }
    let resumed_from = have;
    let mut transfer = Transfer {
        client,
        url,
        partial,
        file: &mut file,
        have,
        length,
        received: 0,
        min_speed: options.min_speed,
        window: options.min_speed_window,
        progress: options.progress,
    };
    let mut backoff = options.backoff;
    let mut fruitless = 0;
    while transfer.have < length {
        let before = transfer.have;
        let Err(stop) = transfer.attempt().await else {
            continue;
        };
        let interruption = match stop {
            Attempt::Fatal(e) => return Err(*e),
            Attempt::Interrupted(i) => *i,
        };
        let slow = matches!(interruption, Interruption::TooSlow { .. });
        if transfer.have > before && !slow {
            fruitless = 0;
            backoff = options.backoff;
        } else {
            fruitless += 1;
        }
        if fruitless >= options.attempts.max(1) {
            return Err(DownloadError::Incomplete {
                attempts: fruitless,
                have: transfer.have,
                length,
                last: interruption,
            });
        }
        tracing::warn!(%url, have = transfer.have, length, "download interrupted ({interruption}); resuming in {backoff:?}");
        tokio::time::sleep(backoff).await;
        if fruitless > 0 {
            backoff = backoff.saturating_mul(2);
        }
    }
    let transferred = transfer.received;
    file.sync_all().map_err(io)?;
    let got = hash_file(&mut file).map_err(io)?;
    if &got != sha256 {
        drop(file);
        let _ = std::fs::remove_file(partial);
        return Err(DownloadError::HashMismatch {
            expected: hex::encode(sha256),
            got: hex::encode(got),
        });
    }
    Ok(Fetched {
        transferred,
        resumed_from,
    })
}

enum Attempt {
    Fatal(Box<DownloadError>),
    Interrupted(Box<Interruption>),
}

impl From<Interruption> for Attempt {
    fn from(i: Interruption) -> Self {
        Self::Interrupted(Box::new(i))
    }
}

/// One download in progress: the partial file and what is known of it.
struct Transfer<'a, 'p> {
    client: &'a reqwest::Client,
    url: &'a Url,
    partial: &'a Path,
    file: &'a mut std::fs::File,
    have: u64,
    length: u64,
    received: u64,
    min_speed: u64,
    window: Duration,
    progress: &'a mut (dyn FnMut(u64, u64) + 'p),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Attempt + '_ {
    move |source| {
        Attempt::Fatal(Box::new(DownloadError::Io {
            path: path.to_path_buf(),
            source,
        }))
    }
}

impl Transfer<'_, '_> {
    /// One request: asks for the missing tail and appends what arrives, up to the length.
    async fn attempt(&mut self) -> Result<(), Attempt> {
        let url = self.url;
        let mut request = self.client.get(url.clone());
        if self.have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={}-", self.have));
        }
        let response = request
            .send()
            .await
            .map_err(|e| Interruption::Http(HttpError::from_send(url, &e)))?;
        let status = response.status();
        match status {
            reqwest::StatusCode::PARTIAL_CONTENT => self.check_range(&response)?,
            reqwest::StatusCode::OK => {
                // The server ignored the range: start over.
                self.file.set_len(0).map_err(io_error(self.partial))?;
                self.have = 0;
            }
            s if s.is_server_error() => {
                return Err(Interruption::Http(HttpError::Status {
                    url: url.clone(),
                    status,
                    message: "(body not read)".into(),
                })
                .into());
            }
            _ => {
                return Err(Attempt::Fatal(Box::new(DownloadError::Status {
                    url: url.clone(),
                    status,
                })));
            }
        }
        self.append_body(response).await
    }

    /// A `206` must be exactly the range asked for: from `have` to the signed end.
    fn check_range(&self, response: &reqwest::Response) -> Result<(), Attempt> {
        let got = response
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let parsed = parse_content_range(&got);
        let fits = parsed.is_some_and(|(start, end, total)| {
            start == self.have && end < self.length && total.is_none_or(|t| t == self.length)
        });
        if fits {
            Ok(())
        } else {
            Err(Interruption::WrongRange {
                asked: self.have,
                got,
            }
            .into())
        }
    }

    async fn append_body(&mut self, response: reqwest::Response) -> Result<(), Attempt> {
        self.file
            .seek(SeekFrom::Start(self.have))
            .map_err(io_error(self.partial))?;
        let mut this_attempt = 0u64;
        let mut window_start = Instant::now();
        let mut in_window = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Interruption::Http(HttpError::from_body(self.url, this_attempt, &e))
            })?;
            // Keep what is still needed; never write past the signed length.
            let room = usize::try_from(self.length - self.have).unwrap_or(usize::MAX);
            let keep = chunk.get(..chunk.len().min(room)).unwrap_or_default();
            self.file.write_all(keep).map_err(io_error(self.partial))?;
            let kept = keep.len() as u64;
            self.have += kept;
            self.received += kept;
            this_attempt += kept;
            in_window += kept;
            (self.progress)(self.have, self.length);
            if keep.len() < chunk.len() {
                tracing::warn!(url = %self.url, length = self.length, "the server sent more than the signed length; the excess was discarded");
            }
            if self.have == self.length {
                return Ok(());
            }
            if window_start.elapsed() >= self.window {
                let needed = self.min_speed.saturating_mul(self.window.as_secs().max(1));
                if in_window < needed {
                    return Err(Interruption::TooSlow {
                        received: in_window,
                        window: self.window,
                        min_speed: self.min_speed,
                    }
                    .into());
                }
                window_start = Instant::now();
                in_window = 0;
            }
        }
        Err(Interruption::Short {
            received: this_attempt,
        }
        .into())
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) as (start, end, total).
fn parse_content_range(text: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = text.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (start <= end).then_some((start, end, total))
}

fn hash_file(file: &mut std::fs::File) -> std::io::Result<[u8; 32]> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_strictly() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, 99, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes 9-3/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range(""), None);
    }
}
