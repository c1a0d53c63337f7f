//! Receiving an upload: the body streams into a temporary file in the staging dir while its
//! SHA-256 is computed, and stops with an error at the size limit, so memory stays flat and
//! an oversize upload never reaches the store.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::StorageError;

/// A fully received upload in the staging dir; removed on drop unless moved into the store.
/// It is `flock`ed while this process holds it, so [`clean_staging`] can tell it from a file
/// left by a process that died.
#[derive(Debug)]
pub struct Staged {
    /// The staged file.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Its length.
    pub len: u64,
    lock: Option<std::fs::File>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Best effort: after a successful `put_file` the file has been moved away already.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Streams `body` into a new file in `dir`, refusing more than `limit` bytes.
pub async fn stage_stream<S, E>(
    dir: &Path,
    mut body: S,
    limit: u64,
) -> Result<Staged, StageError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| StageError::Storage(e.into()))?;
    let path = dir.join(crate::db::new_id("upload"));
    let mut staged = Staged {
        path,
        sha256: [0; 32],
        len: 0,
        lock: None,
    };
    let mut file = tokio::fs::File::create(&staged.path)
        .await
        .map_err(|e| StageError::Storage(e.into()))?;
    lock(&file).map_err(|e| StageError::Storage(e.into()))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(StageError::Body)?;
        staged.len += chunk.len() as u64;
        if staged.len > limit {
            return Err(StageError::Storage(StorageError::TooLarge { limit }));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| StageError::Storage(e.into()))?;
    }
    file.sync_all()
        .await
        .map_err(|e| StageError::Storage(e.into()))?;
    staged.sha256 = hasher.finalize().into();
    staged.lock = Some(file.into_std().await);
    Ok(staged)
}

/// The staging dir under `data_dir`: on the same filesystem as the blob store, so putting a
/// staged file is a rename.
pub fn staging_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("staging")
}

/// Writes `bytes` (a patch the server built) into a new staged file in `dir`.
pub async fn stage_bytes(dir: &Path, bytes: &[u8]) -> Result<Staged, StorageError> {
    tokio::fs::create_dir_all(dir).await?;
    let mut staged = Staged {
        path: dir.join(crate::db::new_id("built")),
        sha256: Sha256::digest(bytes).into(),
        len: bytes.len() as u64,
        lock: None,
    };
    let mut file = tokio::fs::File::create(&staged.path).await?;
    lock(&file)?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    staged.lock = Some(file.into_std().await);
    Ok(staged)
}

fn lock(file: &tokio::fs::File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
    Ok(())
}

/// Removes the files in `dir` that no live process holds: partial uploads and patches of a
/// server that was killed. Run at start-up; returns how many were removed.
pub fn clean_staging(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let free =
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok();
        if free && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Why staging an upload failed: the client's body, or our storage.
#[derive(Debug, thiserror::Error)]
pub enum StageError<E> {
    /// Reading the request body failed (client went away, body limit).
    #[error("reading the upload: {0}")]
    Body(E),
    /// Writing failed or the limit was exceeded.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
