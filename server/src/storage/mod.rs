//! Content-addressed blob storage for images and patches. The filesystem store is the
//! default; the [`BlobStore`] trait is the seam where an object store can be added.

mod file_flash;
mod fs;
mod staging;

pub use file_flash::{FileFlash, FileFlashError};
pub use fs::FsStore;
pub use staging::{StageError, Staged, clean_staging, stage_bytes, stage_stream, staging_dir};

/// Creates the data dir and its staging dir readable by this user only (0700), tightening
/// them if they exist: they hold the database, staged uploads and possibly keys.
pub fn create_private_dirs(data_dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    fs::create_private_dir(data_dir)?;
    fs::create_private_dir(&staging_dir(data_dir))
}

use std::ops::Range;
use std::path::Path;
use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::AsyncRead;

/// A SHA-256 digest naming a blob.
pub type Sha256 = [u8; 32];

/// A byte stream read from a blob.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No blob with this digest.
    #[error("blob {0} not found")]
    NotFound(String),
    /// The range lies outside the blob.
    #[error("range {start}..{end} outside blob of {len} bytes")]
    BadRange {
        /// Requested start.
        start: u64,
        /// Requested end (exclusive).
        end: u64,
        /// Blob length.
        len: u64,
    },
    /// The body was larger than allowed.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// I/O failed.
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
}

/// Where blobs live. Blobs are immutable and named by their SHA-256.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Moves a fully written local file whose SHA-256 is `sha256` into the store. Putting a
    /// blob that exists already is a no-op.
    async fn put_file(&self, sha256: &Sha256, file: &Path) -> Result<(), StorageError>;
    /// Length of a blob, or `None` if absent.
    async fn len(&self, sha256: &Sha256) -> Result<Option<u64>, StorageError>;
    /// Reads `range` of a blob.
    async fn read_range(
        &self,
        sha256: &Sha256,
        range: Range<u64>,
    ) -> Result<BlobReader, StorageError>;
    /// Reads a whole blob into memory (for the differ, which needs it anyway).
    async fn read_all(&self, sha256: &Sha256) -> Result<Vec<u8>, StorageError>;
}
