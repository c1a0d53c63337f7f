//! The HTTP surface: every module's routes, the OpenAPI document collected from them, JSON
//! errors for unknown routes and methods, body limits, request metrics and tracing.

mod doc_errors;
pub mod extract;
mod ops;
mod tokens;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::metrics::RequestLabels;
use crate::state::AppState;

/// Default body limit of every route that does not set its own (JSON bodies are small).
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Otter server API",
        description = "Vendor (publish), fleet, provisioning and device APIs of Otter, a secure \
                       over-the-air firmware update system. TUF metadata and targets are served \
                       publicly under /tuf/."
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The complete router with its state.
pub fn router(state: AppState) -> Router {
    let (routes, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::routes())
        .merge(tokens::routes())
        .merge(crate::tuf::routes())
        .merge(crate::releases::routes())
        .merge(crate::deltas::routes())
        .merge(crate::devices::routes())
        .merge(crate::anomalies::routes())
        .merge(crate::rollouts::routes::routes())
        .split_for_parts();
    utoipa::Modify::modify(&doc_errors::CommonErrors, &mut openapi);
    let openapi_json = openapi.to_pretty_json().unwrap_or_default();
    routes
        .merge(crate::ui::routes())
        .route(
            "/api/v1/openapi.json",
            get(move || async move {
                ([("content-type", "application/json")], openapi_json.clone())
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not accept that method".into())
        })
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.config.serve,
            crate::listen::body_rate::enforce,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// What a connection from the listener's reserve is served (see [`crate::listen`]): the
/// operational routes, and a JSON 503 for everything else.
pub fn reserve_router(state: AppState) -> Router {
    let (routes, _) = ops::routes().split_for_parts();
    routes
        .fallback(|| async {
            ApiError::Unavailable(
                "the server is at its connection limit; only /healthz and /metrics are \
                 answered now, retry later"
                    .into(),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Counts each request by method, route template and status.
async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = crate::metrics::method_label(request.method()).to_owned();
    // Only a route template this router knows; never the raw path.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response.into_response()
}
