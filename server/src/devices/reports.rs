//! `POST /api/v1/devices/{id}/reports`: a signed event (downloading, installed, booted,
//! healthy, failed, rolled back) appended to the device's timeline.
//!
//! The agent keeps each event in an outbox until it is acknowledged and retries it with a
//! fresh message counter, so the event's own number (`event_seq`) is what makes it unique:
//! an event already stored is answered as accepted (200, `duplicate: true`) and not stored
//! again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use otter_keys::wire::{Event, Report, Signed};
use serde::Serialize;

use super::{rejections, store, verify};
use crate::api::extract::{Json, Path};
use crate::db::now;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::logsafe::untrusted;
use crate::state::AppState;

/// The answer to a report the server already had.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReportAck {
    /// Always true: the event was stored before, by an earlier send.
    pub duplicate: bool,
    /// The event's number.
    pub event_seq: u64,
}

/// Stores one event of the device's update timeline, once per event number.
#[utoipa::path(post, path = "/api/v1/devices/{id}/reports", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body(content = Object, description = "`Signed<Report>` signed by the device key"),
    responses((status = 204, description = "stored"),
              (status = 200, body = ReportAck,
               description = "already stored by an earlier send of the same event_seq: accepted, not stored again"),
              (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(signed): Json<Signed<Report>>,
) -> ApiResult<Response> {
    let verified = verify::device_message(&state, &id, &signed).await?;
    let report = verified.message;
    let event_seq = i64::try_from(report.event_seq)
        .map_err(|_| ApiError::BadRequest("event_seq must be below 2^63".into()))?;
    let event = serde_json::to_string(&report.event).map_err(ApiError::internal)?;
    let mut tx = state.db.pool().begin().await?;
    if !store::accept(&mut *tx, &id, verified.counter, None).await? {
        return Err(ApiError::Conflict(
            "message refused: counter already used (replayed or reordered)".into(),
        ));
    }
    let stored = sqlx::query(
        "INSERT INTO device_events \
         (device_id, counter, event_seq, device_time, received_at, kind, event) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, event_seq) DO NOTHING",
    )
    .bind(&id)
    .bind(verified.counter)
    .bind(event_seq)
    .bind(i64::try_from(report.timestamp).unwrap_or(i64::MAX))
    .bind(now())
    .bind(kind(&report.event))
    .bind(event)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if stored > 0 {
        // A rollback or failed trial: the director stops offering that release to this
        // device. A re-sent event changes nothing, so an operator's retry stays in force.
        rejections::record(&mut tx, &verified.device, &report.event).await?;
    }
    tx.commit().await?;
    // The device's state in its rollout, and that rollout evaluated at once (auto-pause is
    // immediate). Also for a re-sent event: if this failed, the agent's retry applies it.
    crate::rollouts::reports::record(&state.db, &id, &report.event, jiff::Timestamp::now())
        .await
        .map_err(ApiError::internal)?;
    if stored == 0 {
        tracing::info!(device = %untrusted(&id), event_seq, kind = kind(&report.event), "device report already stored");
        let ack = ReportAck {
            duplicate: true,
            event_seq: report.event_seq,
        };
        return Ok((StatusCode::OK, axum::Json(ack)).into_response());
    }
    tracing::info!(device = %untrusted(&id), event_seq, kind = kind(&report.event), "device report");
    let device = (
        verified.device.id.as_str(),
        verified.device.hardware_id.as_str(),
    );
    crate::anomalies::detect::reported(&state.db, &state.metrics, device, &report.event).await;
    Ok(StatusCode::NO_CONTENT.into_response())
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
