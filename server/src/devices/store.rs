//! Device rows, and the one statement that accepts a signed message: it raises the stored
//! counter only if the new one is higher, so a replay racing the original loses.

use crate::db::{Db, now};

/// A registered device.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Device {
    /// Server-assigned id (`dev_…`).
    pub id: String,
    /// Manufacturer serial number.
    pub serial: String,
    /// ed25519 public key, hex.
    pub public_key: String,
    /// Board type.
    pub hardware_id: String,
    /// Highest accepted message counter.
    pub counter: Option<i64>,
    /// Version reported by the last check-in.
    pub current_version: Option<String>,
    /// Image SHA-256 reported by the last check-in, hex.
    pub image_sha256: Option<String>,
    /// Slots and last boot outcome of the last check-in, JSON.
    pub status: Option<String>,
    /// Time of the last accepted message.
    pub last_seen: Option<i64>,
    /// Registration time.
    pub created_at: i64,
}

const COLUMNS: &str = "id, serial, public_key, hardware_id, counter, current_version, \
                       image_sha256, status, last_seen, created_at";

/// Loads one device.
pub async fn load(db: &Db, id: &str) -> Result<Option<Device>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM devices WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

/// A page of devices ordered by id, after `after` when given.
pub async fn list(db: &Db, after: Option<&str>, limit: i64) -> Result<Vec<Device>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM devices WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// What a check-in tells about the device's current state.
pub struct CheckInState<'a> {
    /// Running version.
    pub version: String,
    /// Running image hash, hex.
    pub image_sha256: String,
    /// Slots and boot outcome as JSON.
    pub status: &'a str,
}

/// Records an accepted message's counter (and, for a check-in, the device state). Returns
/// `false` if another message with this or a higher counter got there first.
pub async fn accept<'c, E>(
    executor: E,
    id: &str,
    counter: i64,
    state: Option<CheckInState<'_>>,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let result = match state {
        Some(state) => {
            sqlx::query(
                "UPDATE devices SET counter = $1, last_seen = $2, current_version = $3, \
                 image_sha256 = $4, status = $5 \
                 WHERE id = $6 AND (counter IS NULL OR counter < $1)",
            )
            .bind(counter)
            .bind(now())
            .bind(state.version)
            .bind(state.image_sha256)
            .bind(state.status)
            .bind(id)
            .execute(executor)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE devices SET counter = $1, last_seen = $2 \
                 WHERE id = $3 AND (counter IS NULL OR counter < $1)",
            )
            .bind(counter)
            .bind(now())
            .bind(id)
            .execute(executor)
            .await?
        }
    };
    Ok(result.rows_affected() == 1)
}
