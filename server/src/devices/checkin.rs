//! `POST /api/v1/devices/{id}/checkin`: a signed check-in, answered by an assignment the
//! director key signs, bound to the device and its counter, valid for a short time.

use axum::extract::State;
use otter_keys::wire::{AssignedTarget, Assignment, CheckIn, Signed};
use serde_json::json;

use super::store::{self, CheckInState};
use super::{assign, verify};
use crate::anomalies;
use crate::api::extract::{Json, Path};
use crate::db::now;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::logsafe::untrusted;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Records the device's state and tells it what to run.
#[utoipa::path(post, path = "/api/v1/devices/{id}/checkin", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body(content = Object, description = "`Signed<CheckIn>`: `{message, signature}` signed by the device key"),
    responses((status = 200, description = "`Signed<Assignment>` signed by the director key", body = Object),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn checkin(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(signed): Json<Signed<CheckIn>>,
) -> ApiResult<axum::Json<Signed<Assignment>>> {
    let result = answer(&state, &id, &signed).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(ApiError::Internal(_)) => "error",
        Err(_) => "refused",
    };
    Metrics::count(&state.metrics.checkins, outcome);
    if let Err(e) = &result {
        tracing::warn!(device = %untrusted(&id), error = %untrusted(e), "check-in refused");
    }
    result.map(axum::Json)
}

async fn answer(
    state: &AppState,
    id: &str,
    signed: &Signed<CheckIn>,
) -> ApiResult<Signed<Assignment>> {
    let verified = match verify::device_message(state, id, signed).await {
        Ok(verified) => verified,
        Err(ApiError::Unauthorized(why)) => {
            anomalies::detect::bad_signature(&state.db, &state.metrics, id, &why).await;
            return Err(ApiError::Unauthorized(why));
        }
        Err(e) => return Err(e),
    };
    let message = verified.message;
    let image_sha256 = hex::encode(message.image_sha256);
    let status = json!({"slots": message.slots, "last_outcome": message.last_outcome}).to_string();
    let accepted = store::accept(
        state.db.pool(),
        id,
        verified.counter,
        Some(CheckInState {
            version: message.current_version.to_string(),
            image_sha256: image_sha256.clone(),
            status: &status,
        }),
    )
    .await?;
    if !accepted {
        return Err(ApiError::Conflict(
            "message refused: counter already used (replayed or reordered)".into(),
        ));
    }
    let device = &verified.device;
    if device.image_sha256.as_deref() != Some(image_sha256.as_str()) {
        let version = message.current_version.to_string();
        let who = (device.id.as_str(), device.hardware_id.as_str());
        anomalies::detect::running_image(&state.db, &state.metrics, who, &version, &image_sha256)
            .await;
    }
    let directed = assign::direct(&state.db, &verified.device, jiff::Timestamp::now()).await?;
    // The target carries its rollout's signed policy: the device installs only within it.
    let target = match &directed {
        Some(d) => Some(AssignedTarget {
            policy: Some(d.policy.clone()),
            ..assigned_target(&d.release)?
        }),
        None => None,
    };
    let ttl = state.config.assignment_ttl.as_secs();
    let expires = u64::try_from(now()).unwrap_or(0).saturating_add(ttl);
    let assignment = Assignment {
        device_id: id.to_owned(),
        counter: message.counter,
        expires,
        target,
    };
    Signed::sign(assignment, state.keys.director.as_ref()).map_err(ApiError::internal)
}

fn assigned_target(release: &assign::AssignedRelease) -> ApiResult<AssignedTarget> {
    let corrupt =
        |what: &str| ApiError::internal(format_args!("release {}: bad stored {what}", release.id));
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&release.sha256, &mut sha256).map_err(|_| corrupt("sha256"))?;
    Ok(AssignedTarget {
        name: release.target_name.clone(),
        version: release.version.parse().map_err(|_| corrupt("version"))?,
        sha256,
        length: u64::try_from(release.length).map_err(|_| corrupt("length"))?,
        policy: None,
    })
}
