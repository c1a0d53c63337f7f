//! `POST /api/v1/devices/{id}/reports`: a signed event (downloading, installed, booted,
//! healthy, failed, rolled back) appended to the device's timeline.

use axum::extract::State;
use axum::http::StatusCode;
use otter_keys::wire::{Event, Report, Signed};

use super::{rejections, store, verify};
use crate::api::extract::{Json, Path};
use crate::db::now;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Stores one event of the device's update timeline.
#[utoipa::path(post, path = "/api/v1/devices/{id}/reports", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body(content = Object, description = "`Signed<Report>` signed by the device key"),
    responses((status = 204, description = "stored"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(signed): Json<Signed<Report>>,
) -> ApiResult<StatusCode> {
    let verified = verify::device_message(&state, &id, &signed).await?;
    let report = verified.message;
    let event = serde_json::to_string(&report.event).map_err(ApiError::internal)?;
    let mut tx = state.db.pool().begin().await?;
    if !store::accept(&mut *tx, &id, verified.counter, None).await? {
        return Err(ApiError::Conflict(
            "message refused: counter already used (replayed or reordered)".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO device_events (device_id, counter, device_time, received_at, kind, event) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(verified.counter)
    .bind(i64::try_from(report.timestamp).unwrap_or(i64::MAX))
    .bind(now())
    .bind(kind(&report.event))
    .bind(event)
    .execute(&mut *tx)
    .await?;
    // A rollback or failed trial: the director stops offering that release to this device.
    rejections::record(&mut tx, &verified.device, &report.event).await?;
    tx.commit().await?;
    tracing::info!(device = %id, kind = kind(&report.event), "device report");
    Ok(StatusCode::NO_CONTENT)
}

/// The event's name as stored and shown.
pub fn kind(event: &Event) -> &'static str {
    match event {
        Event::Downloading { .. } => "downloading",
        Event::Installed { .. } => "installed",
        Event::Booted { .. } => "booted",
        Event::Healthy { .. } => "healthy",
        Event::Failed { .. } => "failed",
        Event::RolledBack { .. } => "rolled_back",
    }
}
