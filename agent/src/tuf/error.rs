//! Why a refresh refused the repository. The wording follows the checks of the TUF
//! specification, so a report says which one failed.

use std::path::PathBuf;

/// Why TUF metadata could not be trusted.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The file could not be fetched (network, status, size cap).
    #[error("Failed to fetch {url}: {why}")]
    Fetch {
        /// Its URL.
        url: String,
        /// What happened.
        why: String,
    },
    /// A file every repository has is missing (404).
    #[error("{0} is missing from the repository")]
    Missing(String),
    /// Not metadata of the expected role.
    #[error("Failed to parse {role} metadata: {why}")]
    Parse {
        /// The role.
        role: String,
        /// What is wrong.
        why: String,
    },
    /// Not signed by a threshold of the role's keys.
    #[error("{role} metadata is not trusted: {why}")]
    Signatures {
        /// The role.
        role: String,
        /// Which check failed (tough's signature threshold check).
        why: String,
    },
    /// An older version than one already trusted (a rollback attack).
    #[error("Found version {new} of {role} metadata when we had previously fetched version {old}")]
    Rollback {
        /// The role.
        role: String,
        /// The version offered.
        new: u64,
        /// The version trusted.
        old: u64,
    },
    /// Another version than the one the role above names.
    #[error("{role} metadata is version {got}, but {expected} was expected")]
    Version {
        /// The role.
        role: String,
        /// The version in the file.
        got: u64,
        /// The version named above it.
        expected: u64,
    },
    /// The file's hash differs from what the role above says (mix and match).
    #[error("Hash mismatch for {file}: calculated {calculated}, expected {expected}")]
    Hash {
        /// The file.
        file: String,
        /// Its SHA-256.
        calculated: String,
        /// The SHA-256 named above it.
        expected: String,
    },
    /// The file is longer than the role above says.
    #[error("{file} is {got} bytes, larger than the {expected} bytes the role above names")]
    Length {
        /// The file.
        file: String,
        /// Its length.
        got: u64,
        /// The length named above it.
        expected: u64,
    },
    /// Expired (a freeze attack, or a repository nobody re-signs).
    #[error("{role} metadata expired at {at}")]
    Expired {
        /// The role.
        role: String,
        /// When it expired.
        at: jiff::Timestamp,
    },
    /// A role the snapshot does not list.
    #[error("the snapshot does not list {0}")]
    NotInSnapshot(String),
    /// A timestamp that names no snapshot.
    #[error("the timestamp does not name snapshot.json")]
    NoSnapshotInTimestamp,
    /// A delegated role that may not be loaded.
    #[error("delegated role {role:?}: {why}")]
    BadDelegation {
        /// The role.
        role: String,
        /// Why.
        why: String,
    },
    /// Too many root versions at once.
    #[error("more than {0} new root versions in one refresh")]
    TooManyRoots(u64),
    /// The metadata directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
