//! Which image a device should run. Today: the newest release of its hardware id. Staged
//! rollouts plug in here, in [`target_for`], and nowhere else.

use crate::db::Db;
use crate::devices::store::Device;

/// A release chosen for a device.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AssignedRelease {
    /// Release id.
    pub id: String,
    /// TUF target name of the full image.
    pub target_name: String,
    /// Version text.
    pub version: String,
    /// Image SHA-256, hex.
    pub sha256: String,
    /// Image length.
    pub length: i64,
}

/// The release `device` should run, or `None` when there is none for its hardware.
pub async fn target_for(db: &Db, device: &Device) -> Result<Option<AssignedRelease>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, target_name, version, sha256, length FROM releases WHERE hardware_id = $1 \
         ORDER BY major DESC, minor DESC, patch DESC LIMIT 1",
    )
    .bind(&device.hardware_id)
    .fetch_optional(db.pool())
    .await
}
