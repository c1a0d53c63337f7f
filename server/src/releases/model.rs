//! A release as stored and as the API shows it.

use serde::Serialize;
use sqlx::FromRow;

use crate::db::Db;
use crate::deltas::views::{DeltaView, JobView};

/// A published release: the facts of its verified header and of its stored image.
#[derive(Clone, Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct Release {
    /// Release id (`rel_…`).
    pub id: String,
    /// Board the image is for (from the signed header).
    pub hardware_id: String,
    /// `major.minor.patch` (from the signed header).
    pub version: String,
    /// Anti-rollback counter (from the signed header).
    pub security_counter: i64,
    /// Id (hex) of the firmware key that signed it.
    pub key_id: String,
    /// SHA-256 (hex) of the whole signed image.
    pub sha256: String,
    /// Length of the whole signed image in bytes.
    pub length: i64,
    /// TUF target name of the full image.
    pub target_name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Version parts, for ordering.
    #[serde(skip)]
    pub major: i64,
    /// See `major`.
    #[serde(skip)]
    pub minor: i64,
    /// See `major`.
    #[serde(skip)]
    pub patch: i64,
}

/// A release with its deltas and (for a single release) its delta job.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseView {
    /// The release.
    #[serde(flatten)]
    pub release: Release,
    /// Published patches that produce this release, from its earlier releases.
    pub deltas: Vec<DeltaView>,
    /// The job building those patches, with its attempts (in single-release responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_job: Option<JobView>,
}

/// Columns of [`Release`], for `SELECT {RELEASE_COLUMNS} FROM releases`.
pub const RELEASE_COLUMNS: &str = "id, hardware_id, version, security_counter, key_id, sha256, \
     length, target_name, created_at, major, minor, patch";

/// One release, or `None`.
pub async fn find(db: &Db, id: &str) -> Result<Option<Release>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

/// The newest `limit` releases of `hardware_id` older than `than` (by version), newest
/// first: the bases of its deltas.
pub async fn predecessors(
    db: &Db,
    than: &Release,
    limit: i64,
) -> Result<Vec<Release>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE hardware_id = $1 \
         AND (major < $2 OR (major = $2 AND (minor < $3 OR (minor = $3 AND patch < $4)))) \
         ORDER BY major DESC, minor DESC, patch DESC LIMIT $5"
    ))
    .bind(&than.hardware_id)
    .bind(than.major)
    .bind(than.minor)
    .bind(than.patch)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}
