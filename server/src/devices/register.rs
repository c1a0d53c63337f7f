//! `POST /api/v1/devices`: a factory (provisioning token) registers a device's public key.

use axum::extract::State;
use axum::http::StatusCode;
use ed25519_dalek::VerifyingKey;
use otter_boot::image::HardwareId;
use serde::Deserialize;

use super::fleet::DeviceView;
use super::store;
use crate::api::extract::Json;
use crate::auth::{Caller, Scope};
use crate::db::{is_unique_violation, new_id, now};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::logsafe::untrusted;
use crate::state::AppState;

/// A device to register.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The device's ed25519 public key, 64 hex digits (a valid, not small-order point).
    #[schema(pattern = "^[0-9A-Fa-f]{64}$")]
    public_key: String,
    /// Board type, as in the image header (e.g. `acme-thermo-v2`).
    #[schema(pattern = "^[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?$")]
    hardware_id: String,
    /// Manufacturer serial number (unique), 1 to 128 bytes once trimmed.
    #[schema(pattern = "\\S", max_length = 128)]
    serial: String,
}

/// Registers a device; its id is what it signs its messages with.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    request_body = Registration,
    responses((status = 201, body = DeviceView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<Registration>,
) -> ApiResult<(StatusCode, axum::Json<DeviceView>)> {
    caller.require(Scope::Provision)?;
    let key = parse_key(&request.public_key)?;
    HardwareId::new(&request.hardware_id).map_err(|_| {
        ApiError::Unprocessable(
            "hardware_id: 1 to 32 characters of letters, digits, '.', '_' or '-', starting and ending with a letter or digit".into(),
        )
    })?;
    let serial = request.serial.trim();
    if serial.is_empty() || serial.len() > 128 {
        return Err(ApiError::Unprocessable(
            "serial: 1 to 128 characters".into(),
        ));
    }
    let id = new_id("dev");
    let inserted = sqlx::query(
        "INSERT INTO devices (id, serial, public_key, hardware_id, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(serial)
    .bind(hex::encode(key))
    .bind(&request.hardware_id)
    .bind(now())
    .execute(state.db.pool())
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(
                "a device with this serial or public key is already registered".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(device = %id, serial, hardware_id = %untrusted(&request.hardware_id), by = %caller.token_id, "device registered");
    let device = store::load(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::internal("registered device vanished"))?;
    Ok((StatusCode::CREATED, axum::Json(DeviceView::from(device))))
}

fn parse_key(text: &str) -> Result<[u8; 32], ApiError> {
    let bad =
        || ApiError::Unprocessable("public_key: expected 64 hex digits of an ed25519 key".into());
    let mut raw = [0u8; 32];
    hex::decode_to_slice(text, &mut raw).map_err(|_| bad())?;
    let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad())?;
    if key.is_weak() {
        return Err(ApiError::Unprocessable(
            "public_key: a weak (small-order) key cannot authenticate a device".into(),
        ));
    }
    Ok(raw)
}
