//! Deltas: after a publish, a background job builds bsdiff patches (zstd, bounded window)
//! from the last K releases of the same hardware id to the new one, keeps those clearly
//! smaller than the compressed full image, and re-signs the TUF targets once at the end.
//!
//! Files: [`differ`] (bsdiff over a non-recursive suffix sort), [`build`] (diff, compress,
//! self-check), [`child`] and [`isolate`] (each diff in its own limited process), [`jobs`] (the job life cycle in the
//! database), `job` (running one job), `worker` (the per-process loop), [`views`] (what the
//! API shows), `routes` (the job status route).

pub mod build;
pub mod child;
pub mod differ;
pub mod isolate;
mod job;
pub mod jobs;
pub mod lease;
mod routes;
pub mod views;
mod worker;

pub use worker::POLL_INTERVAL;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes under `/api/v1/delta-jobs`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(routes::get_job))
}

/// Runs queued delta jobs until `shutdown`; a job in progress then returns to the queue.
pub fn spawn_worker(state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    worker::spawn(state, shutdown)
}
