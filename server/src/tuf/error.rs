//! Why TUF metadata could not be signed, stored or served.

use std::path::PathBuf;

/// Why TUF metadata could not be signed, stored or served.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The key directory's roots could not be read.
    #[error("TUF roots in the key directory: {0}")]
    KeyDir(#[from] otter_keys::tuf::TufError),
    /// A root file in the key directory is not a valid next root version.
    #[error("{path}: {why}")]
    RootFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The key directory and the database hold different roots of the same version.
    #[error(
        "root version {version} in the database differs from {path}; root versions are never \
         overwritten (is this server using another key directory than its replicas?)"
    )]
    RootConflict {
        /// The version.
        version: u64,
        /// The key directory's file.
        path: PathBuf,
    },
    /// The stored roots do not form the chain 1, 2, …, N clients walk.
    #[error("the database lacks root version {0}; clients could not walk the root chain")]
    RootMissing(u64),
    /// The newest root does not let the server sign one of its online roles.
    #[error(
        "root version {root_version} does not let the server sign {role} metadata: {why}; sign \
         a root that lists the server's {role} key, or point the server at the matching key \
         directory"
    )]
    KeyNotInRoot {
        /// The role (`targets`, `snapshot`, `timestamp`).
        role: &'static str,
        /// The newest root version.
        root_version: u64,
        /// What is wrong.
        why: String,
    },
    /// The repository delegates releases, but not in a way this server can serve.
    #[error("offline release signing: {0}")]
    NotDelegated(String),
    /// Signing or checking a delegated role failed.
    #[error("{role} metadata: {why}")]
    Delegated {
        /// The role.
        role: &'static str,
        /// What went wrong.
        why: String,
    },
    /// The key directory's top-level targets conflicts with the stored one.
    #[error("{path}: {why}")]
    TargetsFile {
        /// The key directory's file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `tough` failed to sign a role.
    #[error("signing {role} metadata: {source}")]
    Sign {
        /// The role.
        role: &'static str,
        /// The cause.
        source: Box<tough::error::Error>,
    },
    /// Stored metadata is unusable (malformed, or its version cannot be incremented).
    #[error("stored {what}: {why}")]
    Stored {
        /// Which metadata.
        what: String,
        /// What is wrong.
        why: String,
    },
    /// A release or delta row cannot be described as a TUF target.
    #[error("target {name}: {why}")]
    BadTarget {
        /// The target name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A configured lifetime puts the expiry out of range.
    #[error("{role} expiry of {seconds} s is out of range")]
    Expiry {
        /// The role.
        role: &'static str,
        /// The configured lifetime.
        seconds: u64,
    },
}

impl From<TufError> for crate::error::ApiError {
    fn from(e: TufError) -> Self {
        Self::internal(format_args!("TUF metadata: {e}"))
    }
}
