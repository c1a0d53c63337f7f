//! The TUF repository: standard TUF 1.0 metadata with consistent snapshots, signed with
//! `tough`'s editor and served publicly, so the agent and any other TUF client (python-tuf,
//! tuftool) can update from it.
//!
//! - **Roles.** `root` comes from the offline ceremony of `otter-keys` (imported from the key
//!   directory at start); `snapshot` and `timestamp` are signed here with the server's
//!   online keys. Targets are listed one of two ways ([`sign::Lister`]):
//!   - *online*: the server's targets key signs top-level `targets` with every image and
//!     delta;
//!   - *offline release signing*: the vendor's top-level `targets` (imported from the key
//!     directory like the roots) delegates images to the offline `release` role, whose
//!     metadata the vendor uploads ([`upload`]), and deltas to the `deltas` role, which the
//!     server signs. The server then cannot list an image.
//! - **Targets.** Every release is `firmware/<hardware-id>/<version>.img`, every delta
//!   `deltas/<hardware-id>/<from>_<to>.patch`, each with Otter's custom fields
//!   ([`otter_keys::targets::TargetInfo`]).
//! - **One writer.** Every write runs in one transaction that first takes the `tuf_writer`
//!   row lock, so versions stay gap-free and consistent across server processes.
//! - **Fresh.** A background task ([`spawn_refresher`]) re-signs each online role once half
//!   its lifetime has passed.
//!
//! Files: `store` (database access), `build` (role contents), `sign` (signing), `writer`
//! (the locked write), `roots` (root import), `vendor` (the vendor's top-level targets and
//! release metadata), `upload` (the release upload route), `routes` and `paths` (serving),
//! `refresher`, [`listed`] (what signed targets list, for the director).

mod build;
mod error;
pub mod listed;
mod paths;
mod refresher;
mod roots;
mod routes;
mod sign;
mod store;
mod upload;
mod vendor;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use tough::schema::RoleType;

pub use error::TufError;
pub use refresher::{refresh_period, spawn_refresher};
pub use writer::Written;

use crate::config::Config;
use crate::db::Db;
use crate::keys::{ListingKey, ServerKeys};
use sign::{DeltasKey, Lister, RoleKey};
use writer::{Expiries, Trigger};

/// The single writer of TUF metadata (serialised through the database across processes).
#[derive(Debug)]
pub struct Repository {
    db: Db,
    keys_dir: PathBuf,
    lister: Lister,
    snapshot_key: RoleKey,
    timestamp_key: RoleKey,
    expiries: Expiries,
}

/// The public TUF routes and the vendor's release upload.
pub fn routes() -> OpenApiRouter<crate::state::AppState> {
    routes::routes().merge(upload::routes())
}

impl Repository {
    /// A writer over `db` signing with `keys` and the expiries of `config`.
    pub fn new(db: Db, keys: ServerKeys, config: &Config) -> Self {
        Self {
            db,
            keys_dir: keys.dir.clone(),
            lister: match &keys.listing {
                ListingKey::Targets(key) => {
                    Lister::Online(RoleKey::new(RoleType::Targets, Arc::clone(key)))
                }
                ListingKey::Deltas(key) => Lister::Delegated(DeltasKey(Arc::clone(key))),
            },
            snapshot_key: RoleKey::new(RoleType::Snapshot, keys.snapshot.clone()),
            timestamp_key: RoleKey::new(RoleType::Timestamp, keys.timestamp.clone()),
            expiries: Expiries {
                targets: config.targets_expiry,
                snapshot: config.snapshot_expiry,
                timestamp: config.timestamp_expiry,
            },
        }
    }

    /// Imports the key directory's root versions, checks that the newest root lists the
    /// server's online keys, and signs targets, snapshot and timestamp where there are none
    /// yet, they are due, or they no longer verify under the newest root.
    pub async fn init(&self) -> Result<(), TufError> {
        let written = self.write(Trigger::Init).await?;
        if !written.is_empty() {
            tracing::info!(
                targets = written.targets,
                snapshot = written.snapshot,
                timestamp = written.timestamp,
                "signed TUF metadata at start"
            );
        }
        Ok(())
    }

    /// Re-signs targets from the release and delta tables, then snapshot and timestamp
    /// (call after a release or delta was added or removed).
    pub async fn targets_changed(&self) -> Result<(), TufError> {
        self.write(Trigger::TargetsChanged).await.map(|_| ())
    }

    /// Re-signs whatever has passed half its lifetime (what the background task calls).
    pub async fn refresh(&self) -> Result<Written, TufError> {
        self.write(Trigger::Refresh).await
    }

    /// Re-signs targets if the release and delta tables list other targets than the newest
    /// signed targets (a crash between a commit and its signing); cheap when they agree.
    pub async fn reconcile(&self) -> Result<bool, TufError> {
        if !self.targets_behind().await? {
            return Ok(false);
        }
        self.targets_changed().await?;
        Ok(true)
    }
}
