//! Blobs as files `blobs/sha256/<2 hex>/<64 hex>` under the data dir.

use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{BlobReader, BlobStore, Sha256, StorageError};

/// The filesystem blob store.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store rooted at `root` (created if missing).
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root.join("sha256"))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, sha256: &Sha256) -> PathBuf {
        let hex = hex::encode(sha256);
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }
}

#[async_trait]
impl BlobStore for FsStore {
    async fn put_file(&self, sha256: &Sha256, file: &Path) -> Result<(), StorageError> {
        let dest = self.path(sha256);
        if tokio::fs::try_exists(&dest).await? {
            tokio::fs::remove_file(file).await?;
            return Ok(());
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // The staged file is complete and synced; a rename makes it visible atomically.
        tokio::fs::rename(file, &dest).await?;
        Ok(())
    }

    async fn len(&self, sha256: &Sha256) -> Result<Option<u64>, StorageError> {
        match tokio::fs::metadata(self.path(sha256)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_range(
        &self,
        sha256: &Sha256,
        range: Range<u64>,
    ) -> Result<BlobReader, StorageError> {
        let mut file = open(&self.path(sha256), sha256).await?;
        let len = file.metadata().await?.len();
        if range.start > range.end || range.end > len {
            return Err(StorageError::BadRange {
                start: range.start,
                end: range.end,
                len,
            });
        }
        file.seek(std::io::SeekFrom::Start(range.start)).await?;
        Ok(Box::pin(file.take(range.end - range.start)))
    }

    async fn read_all(&self, sha256: &Sha256) -> Result<Vec<u8>, StorageError> {
        let mut file = open(&self.path(sha256), sha256).await?;
        let mut out = Vec::new();
        file.read_to_end(&mut out).await?;
        Ok(out)
    }
}

async fn open(path: &Path, sha256: &Sha256) -> Result<tokio::fs::File, StorageError> {
    tokio::fs::File::open(path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StorageError::NotFound(hex::encode(sha256))
        } else {
            e.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[tokio::test]
    async fn put_then_read_ranges_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(&dir.path().join("blobs")).unwrap();
        let data = b"hello blob world".to_vec();
        let sha: Sha256 = sha2::Sha256::digest(&data).into();
        let staged = dir.path().join("staged");
        std::fs::write(&staged, &data).unwrap();
        store.put_file(&sha, &staged).await.unwrap();
        assert!(!staged.exists());
        assert_eq!(store.len(&sha).await.unwrap(), Some(16));
        assert_eq!(store.read_all(&sha).await.unwrap(), data);
        let mut part = Vec::new();
        store
            .read_range(&sha, 6..10)
            .await
            .unwrap()
            .read_to_end(&mut part)
            .await
            .unwrap();
        assert_eq!(part, b"blob");
        assert!(matches!(
            store.read_range(&sha, 10..17).await,
            Err(StorageError::BadRange { len: 16, .. })
        ));
        assert!(matches!(
            store.read_all(&[0; 32]).await,
            Err(StorageError::NotFound(_))
        ));
        assert_eq!(store.len(&[0; 32]).await.unwrap(), None);
    }
}
