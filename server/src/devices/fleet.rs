//! The fleet's view: `GET /api/v1/devices` and `GET /api/v1/devices/{id}` (scope `fleet`).

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::store::{self, Device};
use crate::api::extract::{Path, Query};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// A device as the fleet sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    /// Device id.
    pub id: String,
    /// Serial number.
    pub serial: String,
    /// Board type.
    pub hardware_id: String,
    /// ed25519 public key, hex.
    pub public_key: String,
    /// Version running at the last check-in.
    pub current_version: Option<String>,
    /// Image SHA-256 at the last check-in.
    pub image_sha256: Option<String>,
    /// Slots and last boot outcome at the last check-in; null before the first one.
    #[schema(value_type = Option<Object>)]
    pub status: Option<serde_json::Value>,
    /// Unix time of the last accepted message.
    pub last_seen: Option<i64>,
    /// Unix time of registration.
    pub created_at: i64,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        Self {
            status: d
                .status
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            id: d.id,
            serial: d.serial,
            hardware_id: d.hardware_id,
            public_key: d.public_key,
            current_version: d.current_version,
            image_sha256: d.image_sha256,
            last_seen: d.last_seen,
            created_at: d.created_at,
        }
    }
}

/// One timeline entry.
#[derive(Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct TimelineEntry {
    /// The device's message counter (orders the timeline).
    pub counter: i64,
    /// Device clock at sending, Unix seconds.
    pub device_time: i64,
    /// Server clock at receipt, Unix seconds.
    pub received_at: i64,
    /// Event name.
    pub kind: String,
    /// The event as the device signed it.
    #[schema(value_type = Object)]
    #[sqlx(try_from = "String")]
    pub event: JsonText,
}

/// Stored JSON text served as JSON.
#[derive(Serialize)]
#[serde(transparent)]
pub struct JsonText(serde_json::Value);

impl TryFrom<String> for JsonText {
    type Error = serde_json::Error;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text).map(Self)
    }
}

/// A device with its timeline.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceDetail {
    /// The device.
    #[serde(flatten)]
    pub device: DeviceView,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// Newest events first (at most 200).
    pub timeline: Vec<TimelineEntry>,
}

/// Paging of the device list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Return devices with ids after this one.
    after: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Lists devices, ordered by id.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Vec<DeviceView>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Vec<DeviceView>>> {
    caller.require(Scope::Fleet)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 500".into(),
        ));
    }
    let devices = store::list(&state.db, params.after.as_deref(), limit).await?;
    Ok(axum::Json(
        devices.into_iter().map(DeviceView::from).collect(),
    ))
}

/// One device with its current state and report timeline.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, body = DeviceDetail), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeviceDetail>> {
    caller.require(Scope::Fleet)?;
    let device = store::load(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {id:?}")))?;
    let timeline = sqlx::query_as(
        "SELECT counter, device_time, received_at, kind, event FROM device_events \
         WHERE device_id = $1 ORDER BY counter DESC LIMIT 200",
    )
    .bind(&id)
    .fetch_all(state.db.pool())
    .await?;
    let tags = super::tags::of(&state.db, &id).await?.into_iter().collect();
    Ok(axum::Json(DeviceDetail {
        device: device.into(),
        tags,
        timeline,
    }))
}
