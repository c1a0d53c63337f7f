//! The agent's whole view of TUF, behind one small interface: start from a trusted root in a
//! metadata directory, refresh, look up a target, fetch a target verified into a directory.
//!
//! `tough` does the verification (signatures, thresholds, versions, expiry, hashes). The
//! metadata directory is tough's datastore, so rollback and freeze protection hold across
//! restarts, and its `root.json` is always the newest root tough trusted, which the next
//! refresh starts from.

use std::path::{Path, PathBuf};

use otter_keys::targets::{TargetInfo, TargetInfoError};
use tough::{RepositoryLoader, TargetName};
use url::Url;

use crate::tuf_transport::MetadataTransport;

/// Why TUF metadata or a target could not be trusted.
#[derive(Debug, thiserror::Error)]
pub enum TufClientError {
    /// The metadata directory cannot be prepared.
    #[error("TUF metadata directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A URL cannot be formed.
    #[error("TUF repository URL: {0}")]
    Url(#[from] url::ParseError),
    /// tough refused the repository (bad signature, rollback, expired, unreachable...).
    #[error("TUF refresh failed: {}", crate::http::chain(.0.as_ref()))]
    Refresh(Box<tough::error::Error>),
    /// No such target in the signed targets metadata.
    #[error("target {0:?} is not in the signed TUF targets")]
    UnknownTarget(String),
    /// A target name tough refuses (path traversal and the like).
    #[error("target name {name:?}: {source}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        source: Box<tough::error::Error>,
    },
    /// The target has no SHA-256 or Otter custom fields we understand.
    #[error("target {name:?}: {why}")]
    Malformed {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
    /// Downloading a verified target failed.
    #[error("fetching target {name:?}: {source}")]
    Fetch {
        /// The name.
        name: String,
        /// The cause.
        source: Box<tough::error::Error>,
    },
}

/// A TUF repository the agent trusts from a root in `dir`.
#[derive(Debug, Clone)]
pub struct TufClient {
    dir: PathBuf,
    transport: MetadataTransport,
    metadata_url: Url,
    targets_url: Url,
}

/// A target as the signed targets metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetEntry {
    /// Target name, e.g. `firmware/acme-1/1.2.0.img`.
    pub name: String,
    /// Exact length in bytes.
    pub length: u64,
    /// SHA-256.
    pub sha256: [u8; 32],
    /// Otter's custom fields.
    pub info: TargetInfo,
}

/// Verified metadata from one refresh.
#[derive(Debug)]
pub struct Refreshed {
    repo: tough::Repository,
    targets_url: Url,
}

const ROOT: &str = "root.json";

impl TufClient {
    /// A client for the repository at `server` (`/tuf/metadata/`, `/tuf/targets/`), trusting
    /// `dir/root.json` if present, else `initial_root` (which is written there); metadata
    /// comes through `transport` (the agent's HTTP limits and retries).
    pub fn new(
        dir: &Path,
        initial_root: &[u8],
        server: &Url,
        transport: MetadataTransport,
    ) -> Result<Self, TufClientError> {
        let io = |source| TufClientError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let root = dir.join(ROOT);
        if !root.exists() {
            std::fs::write(&root, initial_root).map_err(io)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            transport,
            metadata_url: server.join("tuf/metadata/")?,
            targets_url: server.join("tuf/targets/")?,
        })
    }

    /// Loads and verifies the newest metadata, updating the trusted root and the datastore.
    pub async fn refresh(&self) -> Result<Refreshed, TufClientError> {
        let root_path = self.dir.join(ROOT);
        let root = std::fs::read(&root_path).map_err(|source| TufClientError::Io {
            path: root_path.clone(),
            source,
        })?;
        let repo =
            RepositoryLoader::new(&root, self.metadata_url.clone(), self.targets_url.clone())
                .datastore(self.dir.clone())
                .transport(self.transport.clone())
                .load()
                .await
                .map_err(|e| TufClientError::Refresh(Box::new(e)))?;
        Ok(Refreshed {
            repo,
            targets_url: self.targets_url.clone(),
        })
    }
}

impl Refreshed {
    /// The signed description of target `name`, resolved as TUF says: top-level targets
    /// first, then the delegated roles whose paths cover the name, in order, stopping at a
    /// terminating one. So under offline release signing an image comes only from the
    /// vendor's release role, and a delta only from the deltas role.
    pub fn target(&self, name: &str) -> Result<TargetEntry, TufClientError> {
        let key = target_name(name)?;
        let target = self
            .repo
            .targets()
            .signed
            .find_target(&key, false)
            .map_err(|_| TufClientError::UnknownTarget(name.to_owned()))?;
        entry(name, target)
    }

    /// Every target the signed metadata lists, each as [`Refreshed::target`] resolves its
    /// name: an entry that another role takes precedence over, or (once tough no longer
    /// refuses such a repository outright) one a delegated role lists outside its paths, is
    /// left out. Entries we cannot read are skipped.
    pub fn targets(&self) -> Vec<TargetEntry> {
        let top = &self.repo.targets().signed;
        self.repo
            .all_targets()
            .filter(|(name, target)| {
                top.find_target(name, false)
                    .is_ok_and(|resolved| std::ptr::eq(resolved, *target))
            })
            .filter_map(|(name, target)| entry(name.raw(), target).ok())
            .collect()
    }

    /// The URL of `entry`'s file: hash-prefixed, as consistent snapshots name it, so it
    /// never changes content (safe to resume with `Range`).
    pub fn target_url(&self, entry: &TargetEntry) -> Result<Url, TufClientError> {
        let (dir, file) = match entry.name.rsplit_once('/') {
            Some((dir, file)) => (format!("{dir}/"), file),
            None => (String::new(), entry.name.as_str()),
        };
        Ok(self
            .targets_url
            .join(&format!("{dir}{}.{file}", hex::encode(entry.sha256)))?)
    }

    /// Downloads target `name` through tough (length-capped, hash-verified) into `dir`, read
    /// whole under the metadata size cap (the cycle uses the resumable [`crate::download`]).
    pub async fn fetch_target(&self, name: &str, dir: &Path) -> Result<PathBuf, TufClientError> {
        let key = target_name(name)?;
        self.repo
            .save_target(&key, dir, tough::Prefix::None)
            .await
            .map_err(|e| TufClientError::Fetch {
                name: name.to_owned(),
                source: Box::new(e),
            })?;
        Ok(dir.join(key.resolved()))
    }
}

fn target_name(name: &str) -> Result<TargetName, TufClientError> {
    TargetName::new(name).map_err(|e| TufClientError::BadName {
        name: name.to_owned(),
        source: Box::new(e),
    })
}

fn entry(name: &str, target: &tough::schema::Target) -> Result<TargetEntry, TufClientError> {
    let malformed = |why: String| TufClientError::Malformed {
        name: name.to_owned(),
        why,
    };
    let sha256: [u8; 32] = target
        .hashes
        .sha256
        .as_ref()
        .try_into()
        .map_err(|_| malformed("no 32-byte sha256".into()))?;
    let info = TargetInfo::from_custom(&target.custom)
        .map_err(|e: TargetInfoError| malformed(e.to_string()))?;
    Ok(TargetEntry {
        name: name.to_owned(),
        length: target.length,
        sha256,
        info,
    })
}
