//! The TUF repository (STUB: being built; interface fixed).

use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::db::Db;
use crate::keys::ServerKeys;
use crate::state::AppState;

/// Why metadata could not be signed or stored.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}

impl From<TufError> for crate::error::ApiError {
    fn from(e: TufError) -> Self {
        Self::internal(format_args!("TUF metadata: {e}"))
    }
}

/// The single writer of TUF metadata (serialised through the database across processes).
#[derive(Debug)]
pub struct Repository {
    _db: Db,
    _keys: ServerKeys,
}

impl Repository {
    /// A writer over `db` signing with `keys` and the expiries of `config`.
    pub fn new(db: Db, keys: ServerKeys, _config: &Config) -> Self {
        Self {
            _db: db,
            _keys: keys,
        }
    }

    /// Imports the key directory's root versions and signs the first targets, snapshot and
    /// timestamp if there are none yet.
    pub async fn init(&self) -> Result<(), TufError> {
        Ok(())
    }

    /// Re-signs targets from the release and delta tables, then snapshot and timestamp.
    pub async fn targets_changed(&self) -> Result<(), TufError> {
        Ok(())
    }
}

/// Public routes under `/tuf/metadata/` and `/tuf/targets/`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/tuf/metadata/{file}", get(|| async { "stub" }))
}

/// Re-signs timestamp (and snapshot, targets) before they expire, until `shutdown`.
pub fn spawn_refresher(_state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move { shutdown.cancelled().await })
}
