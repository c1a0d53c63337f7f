//! `POST /api/v1/releases`: stream the image to a staging file (hashing it, stopping at
//! the size limit), verify it as a device would, store it by SHA-256, then record the
//! release and its delta job in one transaction that also enforces "versions only go up".

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use otter_boot::image::Header;
use otter_keys::targets::image_target_name;

use super::model::{Release, ReleaseView};
use super::verify::verify_file;
use crate::auth::{Caller, Scope};
use crate::db::{Engine, is_unique_violation, new_id, now};
use crate::deltas::jobs;
use crate::deltas::views;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::storage::{StageError, Staged, StorageError, stage_stream, staging_dir};

/// Publishes a signed image as a release. Hardware id, version and security counter come
/// from the signed header; the version must be greater than every earlier release of that
/// hardware id. Deltas from earlier releases are built in the background (`delta_job`).
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The signed image (header, payload, signature)"),
    responses(
        (status = 201, body = ReleaseView, description = "Published; deltas follow"),
        (status = 400, body = ErrorBody, description = "Malformed or truncated image"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Version or security counter not newer"),
        (status = 413, body = ErrorBody, description = "Larger than the configured limit"),
        (status = 422, body = ErrorBody, description = "Signature or payload hash does not verify")))]
pub(super) async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<ReleaseView>)> {
    caller.require(Scope::Publish)?;
    let result = receive(&state, &headers, body).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.status_and_code().1,
    };
    Metrics::count(&state.metrics.publishes, outcome);
    let view = result?;
    tracing::info!(by = %caller.token_id, id = %view.release.id,
        hardware_id = %view.release.hardware_id, version = %view.release.version, "release published");
    Ok((StatusCode::CREATED, axum::Json(view)))
}

async fn receive(state: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<ReleaseView> {
    let limit = state.config.max_image_size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > limit
    {
        return Err(too_large(len, limit));
    }
    let staged = stage_stream(
        &staging_dir(&state.config.data_dir),
        body.into_data_stream(),
        limit,
    )
    .await
    .map_err(|e| match e {
        StageError::Storage(StorageError::TooLarge { limit }) => ApiError::TooLarge(format!(
            "the image is larger than the limit of {limit} bytes"
        )),
        StageError::Body(e) => ApiError::BadRequest(format!("reading the upload failed: {e}")),
        StageError::Storage(e) => ApiError::internal(e),
    })?;

    let path = staged.path.clone();
    let keys = state.keys.firmware.clone();
    let header = tokio::task::spawn_blocking(move || verify_file(&path, &keys))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| hint_form_upload(headers, e.into()))?;

    let sha256 = hex::encode(staged.sha256);
    let length = i64::try_from(staged.len).map_err(ApiError::internal)?;
    store(state, staged).await?;
    let (release, job_id) = record(state, &header, sha256, length).await?;
    crate::fault::point("after-release-commit");

    // The full image is offered at once; deltas follow in a later metadata version. Should
    // this process die first, start-up or the refresher signs it; until then the director
    // does not assign it.
    state.tuf.targets_changed().await?;
    state.delta_wakeup.notify_one();

    let delta_job = views::job(&state.db, &job_id).await?;
    Ok(ReleaseView {
        release,
        deltas: Vec::new(),
        delta_job,
    })
}

fn too_large(len: u64, limit: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "the image is {len} bytes, larger than the limit of {limit} bytes"
    ))
}

/// A form upload fails as a malformed image; say what to send instead.
fn hint_form_upload(headers: &HeaderMap, e: ApiError) -> ApiError {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/"));
    match e {
        ApiError::BadRequest(m) if form => ApiError::BadRequest(format!(
            "{m} (send the signed image itself as the body, `Content-Type: application/octet-stream`, not a form)"
        )),
        other => other,
    }
}

async fn store(state: &AppState, staged: Staged) -> ApiResult<()> {
    // Content-addressed: a blob left behind by a failed insert below is harmless.
    state
        .blobs
        .put_file(&staged.sha256, &staged.path)
        .await
        .map_err(ApiError::internal)
}

/// Inserts the release and its queued delta job, or neither. Concurrent publishes are
/// serialised (a table lock on PostgreSQL; SQLite has one writer anyway, taken by the first
/// statement, an insert) so the "newer than the newest" check cannot race.
async fn record(
    state: &AppState,
    header: &Header,
    sha256: String,
    length: i64,
) -> ApiResult<(Release, String)> {
    let version = header.version;
    let release = Release {
        id: new_id("rel"),
        hardware_id: header.hardware_id.as_str().to_owned(),
        version: version.to_string(),
        security_counter: i64::from(header.security_counter),
        key_id: header.key_id.to_string(),
        sha256,
        length,
        target_name: image_target_name(header.hardware_id.as_str(), version),
        created_at: now(),
        major: i64::from(version.major),
        minor: i64::from(version.minor),
        patch: i64::from(version.patch),
    };
    let mut tx = state.db.pool().begin().await?;
    if state.db.engine() == Engine::Postgres {
        // Blocks other publishers (and FK checks of delta inserts) until commit; plain
        // reads go on.
        sqlx::query("LOCK TABLE releases IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
    }
    let inserted = sqlx::query(
        "INSERT INTO releases (id, hardware_id, version, major, minor, patch, \
         security_counter, key_id, sha256, length, target_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&release.id)
    .bind(&release.hardware_id)
    .bind(&release.version)
    .bind(release.major)
    .bind(release.minor)
    .bind(release.patch)
    .bind(release.security_counter)
    .bind(&release.key_id)
    .bind(&release.sha256)
    .bind(release.length)
    .bind(&release.target_name)
    .bind(release.created_at)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "{} {} is already published",
                release.hardware_id, release.version
            )));
        }
        Err(e) => return Err(e.into()),
    }

    let newest: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT id, version, security_counter FROM releases WHERE hardware_id = $1 AND id <> $2 \
         ORDER BY major DESC, minor DESC, patch DESC LIMIT 1",
    )
    .bind(&release.hardware_id)
    .bind(&release.id)
    .fetch_optional(&mut *tx)
    .await?;
    let mut earlier = 0;
    if let Some((newest_id, newest_version, newest_counter)) = newest {
        let newest_parsed = newest_version
            .parse::<otter_boot::image::Version>()
            .map_err(|e| ApiError::internal(format!("stored version {newest_version:?}: {e}")))?;
        if newest_parsed >= version {
            return Err(ApiError::Conflict(format!(
                "version {version} is not greater than {newest_version} ({newest_id}), the newest release of {}",
                release.hardware_id
            )));
        }
        if newest_counter > release.security_counter {
            return Err(ApiError::Conflict(format!(
                "security counter {} is lower than {newest_counter} of {newest_version} ({newest_id}), the newest release of {}",
                release.security_counter, release.hardware_id
            )));
        }
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM releases WHERE hardware_id = $1 AND id <> $2")
                .bind(&release.hardware_id)
                .bind(&release.id)
                .fetch_one(&mut *tx)
                .await?;
        earlier = count;
    }
    let bases = i64::try_from(state.config.delta_bases)
        .unwrap_or(i64::MAX)
        .min(earlier);
    let job_id = jobs::insert_queued(&mut tx, &release.id, bases).await?;
    tx.commit().await?;
    Ok((release, job_id))
}
