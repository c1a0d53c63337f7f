//! Device tags, which a rollout's cohort may name: `POST /api/v1/devices/{id}/tags` adds
//! some, `DELETE` removes some (scope `fleet`). A device registering later and tagged later
//! joins running rollouts whose cohort it now matches.

use std::collections::BTreeSet;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::store;
use crate::api::extract::{Json, Path};
use crate::auth::{Caller, Scope};
use crate::db::Db;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;
/// Most tags in one request.
pub const MAX_TAGS_PER_REQUEST: usize = 32;

/// Tags to add or remove.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    /// 1 to 32 tags, each 1 to 64 letters, digits, `.`, `_`, `-` or `:`, starting and
    /// ending with a letter or digit.
    #[schema(min_items = 1, max_items = 32)]
    tags: Vec<String>,
}

/// A device's tags after the change.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceTags {
    /// The device.
    pub device_id: String,
    /// All its tags, sorted.
    pub tags: Vec<String>,
}

/// Why `tag` is not a valid tag, if it is not.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    let edges = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(format!("tag {tag:?}: 1 to {MAX_TAG_LEN} characters"));
    }
    if !tag.chars().all(ok_char) || !edges(tag.chars().next()) || !edges(tag.chars().last()) {
        return Err(format!(
            "tag {tag:?}: only letters, digits, '.', '_', '-' and ':', starting and ending \
             with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a request's tags (422 with the reason).
pub fn check_tags(tags: &[String]) -> Result<BTreeSet<String>, ApiError> {
    if tags.is_empty() || tags.len() > MAX_TAGS_PER_REQUEST {
        return Err(ApiError::Unprocessable(format!(
            "tags: give 1 to {MAX_TAGS_PER_REQUEST} tags"
        )));
    }
    for tag in tags {
        check_tag(tag).map_err(ApiError::Unprocessable)?;
    }
    Ok(tags.iter().cloned().collect())
}

/// The tags of device `id`.
pub async fn of(db: &Db, id: &str) -> Result<BTreeSet<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT tag FROM device_tags WHERE device_id = $1")
        .bind(id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

async fn known_device(state: &AppState, id: &str) -> ApiResult<()> {
    store::load(&state.db, id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("no device {id:?}")))
}

async fn answer(state: &AppState, id: String) -> ApiResult<axum::Json<DeviceTags>> {
    let tags = of(&state.db, &id).await?.into_iter().collect();
    Ok(axum::Json(DeviceTags {
        device_id: id,
        tags,
    }))
}

/// Adds tags to a device (those it has already are kept).
#[utoipa::path(post, path = "/api/v1/devices/{id}/tags", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "Device id")),
    request_body = TagsRequest,
    responses((status = 200, body = DeviceTags), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<TagsRequest>,
) -> ApiResult<axum::Json<DeviceTags>> {
    caller.require(Scope::Fleet)?;
    let tags = check_tags(&request.tags)?;
    known_device(&state, &id).await?;
    for tag in &tags {
        sqlx::query(
            "INSERT INTO device_tags (device_id, tag) VALUES ($1, $2) \
             ON CONFLICT (device_id, tag) DO NOTHING",
        )
        .bind(&id)
        .bind(tag)
        .execute(state.db.pool())
        .await?;
    }
    tracing::info!(device = %id, by = %caller.token_id, ?tags, "device tags added");
    answer(&state, id).await
}

/// Removes tags from a device (tags it does not have are ignored). A member of a rollout
/// stays in it: only admission looks at tags.
#[utoipa::path(delete, path = "/api/v1/devices/{id}/tags", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "Device id")),
    request_body = TagsRequest,
    responses((status = 200, body = DeviceTags), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<TagsRequest>,
) -> ApiResult<axum::Json<DeviceTags>> {
    caller.require(Scope::Fleet)?;
    let tags = check_tags(&request.tags)?;
    known_device(&state, &id).await?;
    for tag in &tags {
        sqlx::query("DELETE FROM device_tags WHERE device_id = $1 AND tag = $2")
            .bind(&id)
            .bind(tag)
            .execute(state.db.pool())
            .await?;
    }
    tracing::info!(device = %id, by = %caller.token_id, ?tags, "device tags removed");
    answer(&state, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_short_words() {
        for good in ["eu", "canary", "site:berlin-2", "a", "v1.2_b"] {
            check_tag(good).unwrap();
        }
        let long = "x".repeat(MAX_TAG_LEN + 1);
        for bad in ["", "-eu", "eu-", "with space", "ü", "a/b", long.as_str()] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }
}
