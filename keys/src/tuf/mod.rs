//! The signed TUF root: written once by `otter-keys init`, changed only by a root rotation.
//!
//! Why it looks like this:
//! - **Offline root.** The root keys never leave the key directory; `root.json` names the
//!   keys of every role (root, targets, snapshot, timestamp) and how many must sign. The
//!   online roles are signed on the server; only the root ceremony here needs root keys.
//! - **Chain walk.** A device ships with some old `root.json`. Root version N+1 is signed by
//!   a threshold of version N's root keys *and* a threshold of its own, so a client that
//!   trusts N can verify N+1, then N+2, … (TUF spec 5.3). A rotation refuses to write a
//!   version the old root would not vouch for.
//! - **Every version kept.** `KEYDIR/<N>.root.json` is written for every N and never
//!   overwritten; `KEYDIR/root.json` is a copy of the newest. Publish all of them: a client
//!   fetches `N+1.root.json`, `N+2.root.json`, … from the repository.
//!
//! The files are standard TUF metadata (canonical-JSON signatures, key ids as SHA-256 of the
//! canonical key record), built with `tough`'s schema types and signed through our
//! [`Signer`](crate::signer::Signer) trait via [`SignerKeySource`], so `tough`, `tuftool`
//! and python-tuf read them.
//!
//! `tough` is async; the functions here are sync (the CLI is) and run it on a private
//! current-thread runtime — on a separate thread if the caller is inside a runtime already.

mod ceremony;
pub mod delegation;
mod key_source;
mod release;
mod store;

use std::path::PathBuf;

pub use ceremony::{
    RootChange, RootKeyInfo, SignedRootInfo, rotate_root, rotate_root_with, write_initial_root,
};
pub use key_source::{SignerKeySource, tuf_key, tuf_key_id};
pub use release::{
    SignedMetadataInfo, enable_offline_release, image_target, metadata_path, newest_metadata,
    read_targets, sign_release, write_delegating_targets,
};
pub use store::{ROOT_FILE, SPEC_VERSION, current_root, root_version_path};

use crate::keyset::KeySetError;
use crate::signer::KeyError;

/// Why a TUF root could not be written, rotated or read.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// A problem with the key directory.
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// A problem with a key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `tough` failed to build or sign metadata.
    #[error("TUF metadata: {0}")]
    Tough(#[source] Box<tough::error::Error>),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A root file (or key record) is not valid TUF root metadata.
    #[error("{what}: malformed TUF root ({why})")]
    Malformed {
        /// The file or object.
        what: String,
        /// What is wrong.
        why: String,
    },
    /// A targets-like metadata file that is not what it should be.
    #[error("{what}: {why}")]
    BadMetadata {
        /// The file or object.
        what: String,
        /// What is wrong.
        why: String,
    },
    /// The key directory has no signed root yet.
    #[error("{0}: no <N>.root.json here; run `otter-keys init` first")]
    NoRoot(PathBuf),
    /// Refused to overwrite a root version.
    #[error("{0}: already exists; root versions are never overwritten")]
    RootExists(PathBuf),
    /// Too few keys of the current root are available to vouch for the next version.
    #[error(
        "only {available} key(s) of root version {version} are available but its threshold is \
         {threshold}; clients would refuse the new root{}",
        if unavailable.is_empty() { String::new() } else { format!(" (cannot load: {})", unavailable.join(", ")) }
    )]
    NotEnoughOldRootKeys {
        /// The current root version.
        version: u64,
        /// Its root threshold.
        threshold: u64,
        /// Usable keys listed by it.
        available: usize,
        /// Current root key names whose files could not be loaded.
        unavailable: Vec<String>,
    },
    /// A name given to replace that is not a current root key.
    #[error("{name:?} is not a current root key (current: {})", current.join(", "))]
    UnknownRootKey {
        /// The name given.
        name: String,
        /// The current root key names.
        current: Vec<String>,
    },
    /// The same root key named twice.
    #[error("root key {0:?} named more than once")]
    DuplicateRootKey(String),
    /// A root key that the new root keeps cannot be loaded, so it cannot sign.
    #[error("root key {name:?} is kept but cannot be loaded ({source}); replace it instead")]
    KeptKeyUnavailable {
        /// The key name.
        name: String,
        /// Why it did not load.
        source: KeySetError,
    },
    /// A threshold the root keys cannot meet.
    #[error("root threshold {threshold} must be between 1 and the number of root keys ({keys})")]
    BadThreshold {
        /// Requested threshold.
        threshold: usize,
        /// Number of root keys.
        keys: usize,
    },
    /// The expiry is not in the future.
    #[error("expiry {0} is not in the future")]
    ExpiresInPast(jiff::Timestamp),
    /// The freshly signed root did not verify (a signer produced a bad signature).
    #[error("the signed root does not verify: {0}")]
    SelfCheck(String),
    /// Delegated metadata that does not verify or strays outside its paths.
    #[error(transparent)]
    Delegation(#[from] delegation::DelegationError),
    /// An image that cannot be released.
    #[error("image: {0}")]
    Image(String),
    /// Too few release keys open to meet the release threshold.
    #[error(
        "only {available} release key(s) are available but {threshold} must sign{}",
        if unavailable.is_empty() { String::new() } else { format!(" (cannot open: {})", unavailable.join("; ")) }
    )]
    NotEnoughReleaseKeys {
        /// The release threshold.
        threshold: usize,
        /// Keys that opened.
        available: usize,
        /// Keys that did not, with why.
        unavailable: Vec<String>,
    },
    /// Refused to overwrite a metadata version.
    #[error("{0}: already exists; metadata versions are never overwritten")]
    MetadataExists(PathBuf),
    /// The async runtime for `tough` could not be started.
    #[error("cannot run tough: {0}")]
    Runtime(std::io::Error),
}

impl From<tough::error::Error> for TufError {
    fn from(e: tough::error::Error) -> Self {
        Self::Tough(Box::new(e))
    }
}

/// Runs `fut` to completion on a fresh current-thread runtime (on a scoped thread when the
/// caller already runs inside a tokio runtime, where blocking on another would panic).
fn block_on<F>(fut: F) -> Result<F::Output, TufError>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let run = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TufError::Runtime)?;
        Ok(rt.block_on(fut))
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(run).join()).unwrap_or_else(|_| {
            Err(TufError::Runtime(std::io::Error::other(
                "the signing thread panicked",
            )))
        })
    } else {
        run()
    }
}
