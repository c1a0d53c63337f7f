//! Reading releases: the list (newest first, optionally of one hardware id) and one release
//! with its deltas and the status of its delta job.

use std::collections::HashMap;

use axum::extract::State;
use serde::Deserialize;

use super::model::{self, RELEASE_COLUMNS, Release, ReleaseView};
use crate::api::extract::{Path, Query};
use crate::auth::{Caller, Scope};
use crate::deltas::views::{self, DeltaView};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Releases listed when no `limit` is given.
const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` accepted.
const MAX_LIMIT: i64 = 1000;

/// Filters of the release list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only releases for this board.
    hardware_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)] // MAX_LIMIT
    limit: Option<i64>,
}

/// Vendor and fleet tokens may read releases.
fn require_reader(caller: &Caller) -> Result<(), ApiError> {
    caller
        .require(Scope::Publish)
        .or_else(|_| caller.require(Scope::Fleet))
        .map_err(|_| {
            ApiError::Forbidden("reading releases needs the publish or fleet scope".into())
        })
}

/// Releases, newest first, each with its published deltas.
#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<ReleaseView>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<ReleaseView>>> {
    require_reader(&caller)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let hardware_id = query.hardware_id.as_deref();
    // One selection for the releases and for their deltas, so both agree.
    let selection = format!(
        "FROM releases {} ORDER BY created_at DESC, major DESC, minor DESC, patch DESC, id \
         LIMIT {}",
        if hardware_id.is_some() {
            "WHERE hardware_id = $1"
        } else {
            ""
        },
        if hardware_id.is_some() { "$2" } else { "$1" },
    );
    let sql = format!("SELECT {RELEASE_COLUMNS} {selection}");
    let releases: Vec<Release> = match hardware_id {
        Some(hw) => sqlx::query_as(&sql).bind(hw),
        None => sqlx::query_as(&sql),
    }
    .bind(limit)
    .fetch_all(state.db.pool())
    .await?;
    let selected = format!("SELECT id {selection}");
    let mut deltas: HashMap<String, Vec<DeltaView>> = HashMap::new();
    for delta in views::deltas_to_any_of(&state.db, &selected, hardware_id, limit).await? {
        deltas
            .entry(delta.to_release.clone())
            .or_default()
            .push(delta);
    }
    let out = releases
        .into_iter()
        .map(|release| ReleaseView {
            deltas: deltas.remove(&release.id).unwrap_or_default(),
            release,
            delta_job: None,
        })
        .collect();
    Ok(axum::Json(out))
}

/// One release with its deltas (and their sizes) and its delta job's status and attempts.
#[utoipa::path(get, path = "/api/v1/releases/{id}", tag = "releases", security(("bearer" = [])),
    params(("id" = String, Path, description = "Release id (`rel_…`)")),
    responses((status = 200, body = ReleaseView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_release(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ReleaseView>> {
    require_reader(&caller)?;
    let release = model::find(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no release {id}")))?;
    let deltas = views::deltas_to(&state.db, &release.id).await?;
    let delta_job = views::latest_job_of(&state.db, &release.id).await?;
    Ok(axum::Json(ReleaseView {
        release,
        deltas,
        delta_job,
    }))
}
