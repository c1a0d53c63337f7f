//! Blobs as files `blobs/sha256/<2 hex>/<64 hex>` under the data dir, in directories only
//! this user can read (0700). A put is durable before it returns: the staged file was synced,
//! and after the rename the directory holding the new name is synced too (and its parent when
//! that directory is new), so a power loss cannot drop a blob that TUF metadata already lists.

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
        create_private_dir(root)?;
        create_private_dir(&root.join("sha256"))?;
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
        let Some(parent) = dest.parent().map(Path::to_path_buf) else {
            return Err(StorageError::Io(std::io::Error::other(
                "blob path without a parent",
            )));
        };
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if !parent.exists() {
                create_private_dir(&parent)?;
                if let Some(grandparent) = parent.parent() {
                    sync_dir(grandparent)?;
                }
            }
            // The staged file is complete and synced; a rename makes it visible atomically,
            // and syncing the directory makes the new name survive a power loss.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            std::fs::rename(&file, &dest)?;
            sync_dir(&parent)
        })
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
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

/// Creates `dir` (one level) with mode 0700, or tightens an existing one to 0700.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Flushes `dir`'s entries to disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    if let Ok(mut synced) = tests::SYNCED_DIRS.lock() {
        synced.push(dir.to_path_buf());
    }
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
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

    /// Every directory [`sync_dir`] synced (all tests of this process; filter by path).
    pub(super) static SYNCED_DIRS: std::sync::Mutex<Vec<PathBuf>> =
        std::sync::Mutex::new(Vec::new());

    #[tokio::test]
    async fn a_put_syncs_the_directories_of_the_new_name_and_keeps_them_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store = FsStore::open(&root).unwrap();
        let data = b"durable".to_vec();
        let sha: Sha256 = sha2::Sha256::digest(&data).into();
        let staged = dir.path().join("staged");
        std::fs::write(&staged, &data).unwrap();
        store.put_file(&sha, &staged).await.unwrap();
        let parent = store.path(&sha).parent().unwrap().to_path_buf();
        let synced: Vec<PathBuf> = SYNCED_DIRS
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with(dir.path()))
            .cloned()
            .collect();
        assert!(
            synced.contains(&parent),
            "the new name's directory: {synced:?}"
        );
        assert!(
            synced.contains(&root.join("sha256")),
            "the new directory's parent: {synced:?}"
        );
        for d in [&root, &root.join("sha256"), &parent] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }

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
