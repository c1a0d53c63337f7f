//! Operational routes: liveness and Prometheus metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

/// Health of the server and its database.
#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
    database: &'static str,
}

/// Liveness and database reachability (public).
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let ok = sqlx::query("SELECT 1")
        .execute(state.db.pool())
        .await
        .is_ok();
    let health = Health {
        status: if ok { "ok" } else { "degraded" },
        database: if ok { "ok" } else { "unreachable" },
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(health))
}

/// Prometheus metrics in the text exposition format (public, like most exporters; put it
/// behind the proxy's access rules if that matters in your network).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text format",
               content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok((
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    ))
}
