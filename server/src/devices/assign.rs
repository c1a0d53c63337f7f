//! Which image a device should run. Today: the newest release of its hardware id that the
//! signed TUF targets list and the device did not turn down. Staged
//! rollouts plug in here, in [`target_for`], and nowhere else.

use crate::db::Db;
use crate::devices::rejections;
use crate::devices::store::Device;
use crate::error::ApiError;
use crate::tuf::listed::signed_targets;

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

/// The release `device` should run, or `None` when there is none for its hardware: the
/// newest one that the signed TUF targets list (with the same hash and length), so a device
/// is never sent a release it cannot verify, and not one this device rolled back or failed
/// on trial (until an operator retries).
pub async fn target_for(db: &Db, device: &Device) -> Result<Option<AssignedRelease>, ApiError> {
    let listed = signed_targets(db).await?;
    let rejected = rejections::rejected(db, &device.id).await?;
    let releases: Vec<AssignedRelease> = sqlx::query_as(
        "SELECT id, target_name, version, sha256, length FROM releases WHERE hardware_id = $1 \
         ORDER BY major DESC, minor DESC, patch DESC",
    )
    .bind(&device.hardware_id)
    .fetch_all(db.pool())
    .await?;
    Ok(releases
        .into_iter()
        .filter(|r| !rejected.contains(&r.id))
        .find(|r| listed.lists(&r.target_name, &r.sha256, r.length)))
}
