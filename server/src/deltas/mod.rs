//! Delta builds (STUB: being built).

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Routes under `/api/v1/delta-jobs`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// Runs queued delta jobs until `shutdown`.
pub fn spawn_worker(_state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move { shutdown.cancelled().await })
}
