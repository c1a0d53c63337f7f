//! The agent's whole view of TUF, behind one small interface: start from a trusted root in a
//! metadata directory, refresh, look up a target.
//!
//! [`crate::tuf`] does the work: the TUF 1.0 client workflow over `tough`'s types and
//! signature checks. The metadata directory keeps every trusted file as received, so
//! rollback and freeze protection hold across restarts, and its `root.json` is always the
//! newest trusted root, which the next refresh starts from.

use std::path::{Path, PathBuf};

use otter_keys::targets::{TargetInfo, TargetInfoError};
use tough::TargetName;
use url::Url;

use crate::tuf::resolve::{self, NotFound};
use crate::tuf::{RefreshError, Trusted};
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
    /// The repository was refused (bad signature, rollback, expired, unreachable...).
    #[error("TUF refresh failed: {0}")]
    Refresh(#[from] RefreshError),
    /// No such target in the signed targets metadata.
    #[error("target {0:?} is not in the signed TUF targets")]
    UnknownTarget(String),
    /// The search for a target reached a delegated role that could not be loaded.
    #[error("target {name:?}: the search stopped at delegated role {role:?} ({why})")]
    Unavailable {
        /// The target.
        name: String,
        /// The role.
        role: String,
        /// Why it could not be loaded.
        why: String,
    },
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
    trusted: Trusted,
    client: TufClient,
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
        let metadata = server.join("tuf/metadata/")?;
        let targets = server.join("tuf/targets/")?;
        Self::with_urls(dir, initial_root, (metadata, targets), transport)
    }

    /// A client for any TUF repository: metadata under `metadata_url`, target files under
    /// `targets_url` (each ending in `/`), as a mirror, a CDN or a static export lays them
    /// out.
    pub fn with_urls(
        dir: &Path,
        initial_root: &[u8],
        (metadata_url, targets_url): (Url, Url),
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
            metadata_url,
            targets_url,
        })
    }

    /// Loads and verifies the newest metadata, updating the trusted files: the top-level
    /// roles and every delegated role (the agent looks through all deltas).
    pub async fn refresh(&self) -> Result<Refreshed, TufClientError> {
        let mut refreshed = self.refresh_top_level().await?;
        crate::tuf::update::load_all(&mut refreshed.trusted, &self.source()).await;
        Ok(refreshed)
    }

    /// Loads and verifies the top-level roles only; [`Refreshed::load_for`] then loads the
    /// delegated roles a lookup reaches, as TUF §5.6.7 walks them.
    pub async fn refresh_top_level(&self) -> Result<Refreshed, TufClientError> {
        let trusted =
            crate::tuf::update::refresh(&self.dir, &self.transport, &self.metadata_url).await?;
        Ok(Refreshed {
            trusted,
            client: self.clone(),
        })
    }

    fn source(&self) -> crate::tuf::update::Source<'_> {
        crate::tuf::update::Source {
            dir: &self.dir,
            transport: &self.transport,
            base: &self.metadata_url,
        }
    }
}

impl Refreshed {
    /// Loads the delegated roles the search for `name` reaches, and only those.
    pub async fn load_for(&mut self, name: &str) -> Result<(), TufClientError> {
        let key = target_name(name)?;
        let source = self.client.source();
        crate::tuf::update::load_for(&mut self.trusted, &source, &key).await;
        Ok(())
    }

    /// The signed description of target `name`, resolved as TUF says: top-level targets
    /// first, then the delegated roles whose paths cover the name, in order, stopping at a
    /// terminating one. So under offline release signing an image comes only from the
    /// vendor's release role, and a delta only from the deltas role.
    pub fn target(&self, name: &str) -> Result<TargetEntry, TufClientError> {
        let key = target_name(name)?;
        match resolve::find(&self.trusted, &key) {
            Ok(target) => entry(name, target),
            Err(NotFound::Absent) => Err(TufClientError::UnknownTarget(name.to_owned())),
            Err(NotFound::Unavailable { role, why }) => Err(TufClientError::Unavailable {
                name: name.to_owned(),
                role,
                why,
            }),
        }
    }

    /// Every target the signed metadata lists, each as [`Refreshed::target`] resolves its
    /// name: an entry a delegated role lists outside its paths, or one that another role
    /// takes precedence over, is left out, and the rest still counts. Entries we cannot
    /// read are skipped.
    pub fn targets(&self) -> Vec<TargetEntry> {
        resolve::all(&self.trusted)
            .into_iter()
            .filter_map(|(name, target)| entry(name.raw(), target).ok())
            .collect()
    }

    /// Length and SHA-256 of any target `name` resolves to, whatever its custom fields
    /// (for tools that serve other repositories than Otter's).
    pub fn plain_target(&self, name: &str) -> Result<(u64, [u8; 32]), TufClientError> {
        let key = target_name(name)?;
        let target = match resolve::find(&self.trusted, &key) {
            Ok(target) => target,
            Err(NotFound::Absent) => return Err(TufClientError::UnknownTarget(name.to_owned())),
            Err(NotFound::Unavailable { role, why }) => {
                return Err(TufClientError::Unavailable {
                    name: name.to_owned(),
                    role,
                    why,
                });
            }
        };
        let sha256 =
            target
                .hashes
                .sha256
                .as_ref()
                .try_into()
                .map_err(|_| TufClientError::Malformed {
                    name: name.to_owned(),
                    why: "no 32-byte sha256".into(),
                })?;
        Ok((target.length, sha256))
    }

    /// The delegated roles this refresh loaded, by name.
    pub fn delegated_roles(&self) -> impl Iterator<Item = &str> {
        (self.trusted.delegated.iter())
            .filter(|(_, d)| d.metadata.is_ok())
            .map(|(name, _)| name.as_str())
    }

    /// The URL of target `name` with `sha256`: hash-prefixed when the root says consistent
    /// snapshots (Otter's always do), else the plain name.
    pub fn url_of(&self, name: &str, sha256: &[u8; 32]) -> Result<Url, TufClientError> {
        if !self.trusted.root.signed.consistent_snapshot {
            return Ok(self.client.targets_url.join(name)?);
        }
        Ok(target_url_in(&self.client.targets_url, name, sha256)?)
    }

    /// The URL of `entry`'s file: hash-prefixed, as consistent snapshots name it, so it
    /// never changes content (safe to resume with `Range`).
    pub fn target_url(&self, entry: &TargetEntry) -> Result<Url, TufClientError> {
        Ok(target_url_in(
            &self.client.targets_url,
            &entry.name,
            &entry.sha256,
        )?)
    }
}

/// `base/dir/HASH.file`: the consistent-snapshot name of target `name` (the hash before the
/// file name, as the TUF specification and python-tuf have it).
fn target_url_in(base: &Url, name: &str, sha256: &[u8; 32]) -> Result<Url, url::ParseError> {
    let (dir, file) = match name.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), name),
    };
    base.join(&format!("{dir}{}.{file}", hex::encode(sha256)))
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

#[cfg(test)]
mod tests {
    #[test]
    fn target_urls_put_the_hash_before_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::http::HttpConfig::default();
        let transport = crate::tuf_transport::MetadataTransport::new(
            crate::http::client(&config).unwrap(),
            config,
        );
        let server = url::Url::parse("http://repo.test/").unwrap();
        let client = super::TufClient::new(dir.path(), b"{}", &server, transport).unwrap();
        let url =
            |name: &str| super::target_url_in(&client.targets_url, name, &[0xab; 32]).unwrap();
        let hash = "ab".repeat(32);
        // The TUF spec's consistent-snapshot name: `dir/HASH.file`, not `HASH.dir/file`.
        assert_eq!(
            url("firmware/acme/1.0.0.img").as_str(),
            format!("http://repo.test/tuf/targets/firmware/acme/{hash}.1.0.0.img")
        );
        assert_eq!(
            url("top.bin").as_str(),
            format!("http://repo.test/tuf/targets/{hash}.top.bin")
        );
    }
}
