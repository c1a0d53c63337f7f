//! Releases: the vendor publishes signed images; the server verifies them against the
//! firmware keys, stores them by SHA-256, offers them in TUF at once and queues a delta job
//! ([`crate::deltas`]) that builds patches from earlier releases.
//!
//! Files: [`publish`] (upload, checks, the insert), [`verify`] (image verification over a
//! staged file), [`query`] (list and get), [`model`] (the row and its API view).

pub mod model;
mod publish;
mod query;
pub mod verify;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Vendor routes under `/api/v1/releases`.
pub fn routes() -> OpenApiRouter<AppState> {
    // The upload streams to disk and enforces `max_image_size` itself, so the global JSON
    // body limit is lifted here (the other routes take no body).
    OpenApiRouter::new()
        .routes(routes!(publish::publish, query::list))
        .routes(routes!(query::get_release))
        .layer(DefaultBodyLimit::disable())
}
