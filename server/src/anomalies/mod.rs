//! Anomaly flags: what the server notices that a fleet manager should look at, because it may
//! be an attack or a bad release, and no single refusal says so on its own.
//!
//! In order: [`kind`] (what can be flagged), [`rules`] (the pure decisions: which failures
//! count, what a rollback storm is, when a device is silent), [`store`] (one open flag per
//! kind and subject, repeats counted, acknowledged flags kept), [`detect`] (the hooks the
//! check-in and report handlers and the sweeper call), `sweeper` (the background task
//! that flags silent devices), `routes` (`GET /api/v1/anomalies`,
//! `POST /api/v1/anomalies/{id}/acknowledge`).

pub mod detect;
pub mod kind;
mod routes;
pub mod rules;
pub mod store;
mod sweeper;

pub use kind::AnomalyKind;
pub use store::Flag;
pub use sweeper::{spawn_sweeper, sweep_period};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The anomaly routes (scope `fleet`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list))
        .routes(routes!(routes::acknowledge))
}
