//! Resumable download of a TUF target: partial data stays in the state dir, a cut
//! connection resumes with `Range`, the size can never exceed the signed length (endless
//! data defence), and the finished file must hash to the signed SHA-256.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use url::Url;

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
    /// The server sent more than the signed length.
    #[error("the server sent more than the signed {length} bytes; refused")]
    TooLong {
        /// The signed length.
        length: u64,
    },
    /// The finished file does not hash to the signed SHA-256.
    #[error("downloaded file does not match its signed sha256 (expected {expected}, got {got})")]
    HashMismatch {
        /// Expected hex.
        expected: String,
        /// Actual hex.
        got: String,
    },
    /// The server refused the request.
    #[error("the server answered {status} for {url}")]
    Status {
        /// The URL.
        url: Url,
        /// The status.
        status: reqwest::StatusCode,
    },
    /// Every attempt ended before the signed length arrived.
    #[error("download incomplete after {attempts} attempts ({have} of {length} bytes)")]
    Incomplete {
        /// Attempts made.
        attempts: u32,
        /// Bytes on disk.
        have: u64,
        /// The signed length.
        length: u64,
    },
    /// The network failed on every attempt.
    #[error("network error after {attempts} attempts: {source}")]
    Network {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        source: reqwest::Error,
    },
}

/// Retry policy and progress reporting.
pub struct Options<'a> {
    /// Attempts before giving up (a resumed continuation counts as one).
    pub attempts: u32,
    /// First backoff; doubled after each failed attempt.
    pub backoff: Duration,
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
    let mut transferred = 0;
    let mut backoff = options.backoff;
    let mut attempt = 0;
    while have < length {
        attempt += 1;
        match continue_download(
            client,
            url,
            partial,
            &mut file,
            &mut have,
            length,
            options.progress,
        )
        .await
        {
            Ok(n) => {
                transferred += n;
                if have < length && attempt >= options.attempts {
                    return Err(DownloadError::Incomplete {
                        attempts: attempt,
                        have,
                        length,
                    });
                }
            }
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(source, n)) => {
                transferred += n;
                if attempt >= options.attempts {
                    return Err(DownloadError::Network {
                        attempts: attempt,
                        source,
                    });
                }
                tracing::warn!(%url, have, length, attempt, error = %source, "download interrupted; resuming");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
    }
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
    Fatal(DownloadError),
    Retry(reqwest::Error, u64),
}

/// One request: asks for the missing tail and appends what arrives. Returns bytes received.
async fn continue_download(
    client: &reqwest::Client,
    url: &Url,
    partial: &Path,
    file: &mut std::fs::File,
    have: &mut u64,
    length: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, Attempt> {
    let io = |source| {
        Attempt::Fatal(DownloadError::Io {
            path: partial.to_path_buf(),
            source,
        })
    };
    let mut request = client.get(url.clone());
    if *have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let response = request.send().await.map_err(|e| Attempt::Retry(e, 0))?;
    let status = response.status();
    match status {
        reqwest::StatusCode::PARTIAL_CONTENT => {}
        reqwest::StatusCode::OK => {
            // The server ignored the range: start over.
            file.set_len(0).map_err(io)?;
            *have = 0;
        }
        s if s.is_server_error() => {
            // Retry transient server failures like network ones.
            return match response.error_for_status() {
                Err(e) => Err(Attempt::Retry(e, 0)),
                Ok(_) => Err(Attempt::Fatal(DownloadError::Status {
                    url: url.clone(),
                    status,
                })),
            };
        }
        _ => {
            return Err(Attempt::Fatal(DownloadError::Status {
                url: url.clone(),
                status,
            }));
        }
    }
    file.seek(SeekFrom::Start(*have)).map_err(io)?;
    let mut received = 0;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Attempt::Retry(e, received))?;
        let new_len = *have + chunk.len() as u64;
        if new_len > length {
            return Err(Attempt::Fatal(DownloadError::TooLong { length }));
        }
        file.write_all(&chunk).map_err(io)?;
        *have = new_len;
        received += chunk.len() as u64;
        progress(*have, length);
    }
    Ok(received)
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
