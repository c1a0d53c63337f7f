//! `PUT /api/v1/tuf/release`: the vendor uploads a release version signed offline with
//! `otter-keys sign-release`; the server checks it and publishes it unchanged.

use axum::extract::{DefaultBodyLimit, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::vendor::ReleaseRefused;
use crate::api::extract::Text;
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Largest release metadata accepted: it grows by a few hundred bytes per image.
const RELEASE_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The vendor's release upload route.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_release))
        .layer(DefaultBodyLimit::max(RELEASE_BODY_LIMIT))
}

/// What was published.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseMetadataView {
    /// The release metadata version now served.
    pub version: u64,
    /// The snapshot version that lists it.
    pub snapshot: Option<u64>,
}

/// Publishes release metadata signed offline by the vendor's release keys (offline release
/// signing): it must verify under the delegation in the vendor's top-level targets, be newer
/// than the served version, and list only published images exactly as published. The body
/// is served unchanged as `N.release.json`.
#[utoipa::path(put, path = "/api/v1/tuf/release", tag = "releases", security(("bearer" = [])),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "The signed release metadata (`KEYDIR/<N>.release.json`): TUF targets \
                       metadata, `{\"signed\": {...}, \"signatures\": [...]}`"),
    responses(
        (status = 200, body = ReleaseMetadataView, description = "Published"),
        (status = 400, body = ErrorBody, description = "Not TUF metadata, or not UTF-8"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not newer, or releases are not delegated"),
        (status = 413, body = ErrorBody, description = "Larger than 4 MiB"),
        (status = 422, body = ErrorBody,
            description = "Not signed by the release keys, outside its paths, expired, or \
                           lists an image that is not published")))]
async fn upload_release(
    State(state): State<AppState>,
    caller: Caller,
    Text(body): Text,
) -> ApiResult<axum::Json<ReleaseMetadataView>> {
    caller.require(Scope::Publish)?;
    let (version, written) = state.tuf.accept_release(&body).await.map_err(|e| match e {
        ReleaseRefused::Malformed(_) => ApiError::BadRequest(e.to_string()),
        ReleaseRefused::NotDelegated | ReleaseRefused::NotNewer { .. } => {
            ApiError::Conflict(e.to_string())
        }
        ReleaseRefused::Unverified(_)
        | ReleaseRefused::Expired(_)
        | ReleaseRefused::Unpublished(_) => ApiError::Unprocessable(e.to_string()),
        ReleaseRefused::Tuf(e) => e.into(),
    })?;
    tracing::info!(by = %caller.token_id, version, "release metadata published");
    Ok(axum::Json(ReleaseMetadataView {
        version,
        snapshot: written.snapshot,
    }))
}
