//! What every handler and background task shares.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::keys::ServerKeys;
use crate::metrics::Metrics;
use crate::storage::BlobStore;
use crate::tuf::Repository;

/// Cheap to clone handle on the server's shared state.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The shared state itself.
#[derive(Debug)]
pub struct Shared {
    /// Resolved configuration.
    pub config: Config,
    /// Database.
    pub db: Db,
    /// Blob storage for images and patches.
    pub blobs: Arc<dyn BlobStore>,
    /// Online keys.
    pub keys: ServerKeys,
    /// The TUF repository writer.
    pub tuf: Repository,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Wakes the delta worker when a publish queues a job.
    pub delta_wakeup: tokio::sync::Notify,
}

impl AppState {
    /// Wraps the shared state.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
