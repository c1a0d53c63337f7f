//! Releases (STUB: being built).

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Vendor routes under `/api/v1/releases`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
