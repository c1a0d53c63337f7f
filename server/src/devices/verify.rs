//! Checking a device-signed message: the device exists, the signature is its key's, the
//! message names this device, the counter rises and the clock is close to ours.

use otter_keys::wire::{DeviceMessage, Signed, WireError};

use super::store::{self, Device};
use crate::db::now;
use crate::error::ApiError;
use crate::state::AppState;

/// The device and its verified message, with the counter as stored (fits in i64).
pub struct Verified<'a, T> {
    /// The sender.
    pub device: Device,
    /// The message.
    pub message: &'a T,
    /// The message counter.
    pub counter: i64,
}

/// Verifies `signed` as sent by device `id`.
pub async fn device_message<'a, T: DeviceMessage>(
    state: &AppState,
    id: &str,
    signed: &'a Signed<T>,
) -> Result<Verified<'a, T>, ApiError> {
    let device = store::load(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {id:?}")))?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(&device.public_key, &mut key)
        .map_err(|_| ApiError::internal(format_args!("device {id} has a malformed stored key")))?;
    let last = device.counter.map(|c| c.unsigned_abs());
    let now = u64::try_from(now()).unwrap_or(0);
    let message = signed
        .verify(&key, id, last, now, state.config.max_clock_skew.as_secs())
        .map_err(refusal)?;
    check_counter_window(last, message.counter())?;
    let counter = i64::try_from(message.counter())
        .map_err(|_| ApiError::BadRequest("counter must be below 2^63".into()))?;
    Ok(Verified {
        device,
        message,
        counter,
    })
}

/// How far above the last counter seen (0 before the first message) a device's next counter
/// may be. Counters rise by one per message, so a real device stays far inside; a bigger jump
/// (a leaked key or a buggy agent sending 2^63-1) would otherwise be accepted once and make
/// every later message of the device a replay.
pub const COUNTER_WINDOW: u64 = 1 << 20;

/// Refuses a counter more than [`COUNTER_WINDOW`] above `last` (422).
fn check_counter_window(last: Option<u64>, counter: u64) -> Result<(), ApiError> {
    let limit = last.unwrap_or(0).saturating_add(COUNTER_WINDOW);
    if counter > limit {
        return Err(ApiError::Unprocessable(format!(
            "message refused: counter {counter} is more than {COUNTER_WINDOW} above the last \
             one seen ({}); expected at most {limit}",
            last.unwrap_or(0)
        )));
    }
    Ok(())
}

/// How a refused device message is answered: forged → 401, another device's → 403,
/// replayed → 409, otherwise unusable → 422.
pub fn refusal(e: WireError) -> ApiError {
    let text = format!("message refused: {e}");
    match e {
        WireError::BadSignature | WireError::MalformedSignature(_) | WireError::BadKey => {
            ApiError::Unauthorized(text)
        }
        WireError::WrongDevice { .. } => ApiError::Forbidden(text),
        WireError::StaleCounter { .. } => ApiError::Conflict(text),
        _ => ApiError::Unprocessable(text),
    }
}
