//! `GET /api/v1/delta-jobs/{id}`: progress and results of a delta build.

use axum::extract::State;

use super::views::{self, JobView};
use crate::api::extract::Path;
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// A delta job: its state, progress and what happened with each base release.
#[utoipa::path(get, path = "/api/v1/delta-jobs/{id}", tag = "deltas", security(("bearer" = [])),
    params(("id" = String, Path, description = "Delta job id (`djob_…`)")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<JobView>> {
    caller
        .require(Scope::Publish)
        .or_else(|_| caller.require(Scope::Fleet))
        .map_err(|_| {
            ApiError::Forbidden("reading delta jobs needs the publish or fleet scope".into())
        })?;
    views::job(&state.db, &id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no delta job {id}")))
}
