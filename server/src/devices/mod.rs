//! Devices (being built).

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Device and fleet routes under `/api/v1/devices`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
