//! `GET /api/v1/anomalies` and `POST /api/v1/anomalies/{id}/acknowledge` (scope `fleet`).

use axum::extract::State;
use serde::Deserialize;

use super::kind::AnomalyKind;
use super::store::{self, Acknowledged, Filter, Flag};
use crate::api::extract::{Json, Path, Query};
use crate::auth::{Caller, Scope};
use crate::db::now;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Which flags to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only flags not yet acknowledged (default true).
    open: Option<bool>,
    /// Only this kind.
    kind: Option<AnomalyKind>,
    /// Only flags about this device or release id.
    subject: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Lists anomaly flags, most recently noticed first.
#[utoipa::path(get, path = "/api/v1/anomalies", tag = "anomalies", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Vec<Flag>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Vec<Flag>>> {
    caller.require(Scope::Fleet)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 500".into(),
        ));
    }
    let filter = Filter {
        open_only: params.open.unwrap_or(true),
        kind: params.kind,
        subject: params.subject,
        limit,
    };
    Ok(axum::Json(store::list(&state.db, &filter).await?))
}

/// What a fleet manager says when acknowledging a flag.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeBody {
    /// What was found or done (at most 1000 bytes).
    #[schema(max_length = 1000)]
    note: Option<String>,
}

/// The most a note may hold.
const MAX_NOTE: usize = 1000;

/// Acknowledges a flag: it is closed, kept with who and when, and a new occurrence of the
/// same anomaly opens a new flag.
#[utoipa::path(post, path = "/api/v1/anomalies/{id}/acknowledge", tag = "anomalies",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Flag id")),
    request_body = AcknowledgeBody,
    responses((status = 200, body = Flag), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<AcknowledgeBody>,
) -> ApiResult<axum::Json<Flag>> {
    caller.require(Scope::Fleet)?;
    let note = body.note.unwrap_or_default();
    if note.len() > MAX_NOTE {
        return Err(ApiError::Unprocessable(format!(
            "note is {} bytes, at most {MAX_NOTE}",
            note.len()
        )));
    }
    match store::acknowledge(&state.db, &id, &caller.label, &note, now()).await? {
        Acknowledged::Now(flag) => Ok(axum::Json(flag)),
        Acknowledged::Already(flag) => Err(ApiError::Conflict(format!(
            "flag {id} was already acknowledged by {} at {}",
            flag.acknowledged_by.unwrap_or_default(),
            flag.acknowledged_at.unwrap_or_default()
        ))),
        Acknowledged::Missing => Err(ApiError::NotFound(format!("no anomaly flag {id:?}"))),
    }
}
