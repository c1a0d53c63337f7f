//! Releases a device turned down: a rollback, or a trial that failed its boot or health
//! check. The director skips them for that device (no endless install → fail → rollback
//! loop) until an operator asks for a retry with `POST /api/v1/devices/{id}/retry`.

use std::collections::HashSet;

use axum::extract::State;
use otter_keys::wire::Event;
use serde::Serialize;
use sqlx::AnyConnection;

use super::store::{self, Device};
use crate::api::extract::Path;
use crate::auth::{Caller, Scope};
use crate::db::{Db, now};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Trial stages whose failure condemns the image itself (not the network or the disk).
const TRIAL_STAGES: [&str; 2] = ["boot", "health"];

/// Records the release `event` rejects, if it rejects one (inside the report's transaction).
pub async fn record(
    conn: &mut AnyConnection,
    device: &Device,
    event: &Event,
) -> Result<(), sqlx::Error> {
    let (version, reason) = match event {
        Event::RolledBack { from } => (from.to_string(), format!("rolled back from {from}")),
        Event::Failed { stage, reason } if TRIAL_STAGES.contains(&stage.as_str()) => {
            let Some(version) = trial_version(conn, &device.id).await? else {
                return Ok(());
            };
            (version, format!("{stage} failed: {reason}"))
        }
        _ => return Ok(()),
    };
    sqlx::query(
        "INSERT INTO device_rejections (device_id, release_id, reason, created_at) \
         SELECT $1, id, $2, $3 FROM releases WHERE hardware_id = $4 AND version = $5 \
         ON CONFLICT (device_id, release_id) DO NOTHING",
    )
    .bind(&device.id)
    .bind(reason)
    .bind(now())
    .bind(&device.hardware_id)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The version of the device's latest trial: its last `installed` or `booted` report.
async fn trial_version(
    conn: &mut AnyConnection,
    device_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let last: Option<(String,)> = sqlx::query_as(
        "SELECT event FROM device_events WHERE device_id = $1 \
         AND kind IN ('installed', 'booted') ORDER BY counter DESC LIMIT 1",
    )
    .bind(device_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(
        match last.and_then(|(text,)| serde_json::from_str(&text).ok()) {
            Some(Event::Installed { version } | Event::Booted { version, .. }) => {
                Some(version.to_string())
            }
            _ => None,
        },
    )
}

/// The releases `device_id` turned down and no operator retried since.
pub async fn rejected(db: &Db, device_id: &str) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT release_id FROM device_rejections WHERE device_id = $1")
            .bind(device_id)
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

/// What a retry cleared.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Retried {
    /// Releases the device had turned down, now assignable to it again.
    pub cleared: Vec<String>,
}

/// Lets the director assign again the releases this device rolled back or failed on trial.
#[utoipa::path(post, path = "/api/v1/devices/{id}/retry", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, body = Retried), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Retried>> {
    caller.require(Scope::Fleet)?;
    store::load(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {id:?}")))?;
    let mut cleared: Vec<String> = rejected(&state.db, &id).await?.into_iter().collect();
    cleared.sort();
    sqlx::query("DELETE FROM device_rejections WHERE device_id = $1")
        .bind(&id)
        .execute(state.db.pool())
        .await?;
    tracing::info!(device = %id, by = %caller.token_id, cleared = cleared.len(), "operator retry of rejected releases");
    Ok(axum::Json(Retried { cleared }))
}
