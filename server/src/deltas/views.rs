//! What the API shows about deltas and delta jobs, read from the database.

use serde::Serialize;
use sqlx::FromRow;

use crate::db::Db;

/// A published delta to a release.
#[derive(Clone, Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct DeltaView {
    /// Delta id (`dlt_…`).
    pub id: String,
    /// The release the patch applies to.
    pub from_release: String,
    /// Version of that release.
    pub from_version: String,
    /// The release the patch produces.
    pub to_release: String,
    /// TUF target name of the patch file.
    pub target_name: String,
    /// SHA-256 (hex) of the compressed patch file.
    pub sha256: String,
    /// Length of the compressed patch file in bytes.
    pub length: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// What one job did with one base release.
#[derive(Clone, Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct AttemptView {
    /// The base release.
    pub from_release: String,
    /// Its version.
    pub from_version: String,
    /// `built`, `dropped` (not clearly smaller than the full image), `skipped` (too large to
    /// diff) or `failed`.
    pub outcome: String,
    /// Compressed patch length, when a patch was built.
    pub patch_length: Option<i64>,
    /// Compressed full image length it was compared with.
    pub full_compressed_length: Option<i64>,
    /// Time the attempt took.
    pub millis: i64,
    /// Why, in words.
    pub reason: String,
}

/// A background delta build and its progress.
#[derive(Clone, Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct JobView {
    /// Job id (`djob_…`).
    pub id: String,
    /// The release whose deltas it builds.
    pub release_id: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// Base releases to diff from.
    pub bases_total: i64,
    /// Bases finished (whatever the outcome).
    pub bases_done: i64,
    /// Summary or last error.
    pub message: String,
    /// Times a worker took the job (a failed run re-queues it, up to a limit).
    pub runs: i64,
    /// The worker that holds or last held it.
    pub worker: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the heartbeat while running.
    pub updated_at: i64,
    /// One entry per base finished so far.
    #[sqlx(skip)]
    pub attempts: Vec<AttemptView>,
}

const DELTA_COLUMNS: &str = "d.id, d.from_release, f.version AS from_version, d.to_release, \
     d.target_name, d.sha256, d.length, d.created_at \
     FROM deltas d JOIN releases f ON f.id = d.from_release";

/// The deltas that produce `release_id`, newest base first.
pub async fn deltas_to(db: &Db, release_id: &str) -> Result<Vec<DeltaView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DELTA_COLUMNS} WHERE d.to_release = $1 \
         ORDER BY f.major DESC, f.minor DESC, f.patch DESC"
    ))
    .bind(release_id)
    .fetch_all(db.pool())
    .await
}

/// The deltas to the releases that `releases_query` selects, for listings: a
/// `SELECT id FROM releases ...` with an optional hardware id parameter and then a limit.
pub async fn deltas_to_any_of(
    db: &Db,
    releases_query: &str,
    hardware_id: Option<&str>,
    limit: i64,
) -> Result<Vec<DeltaView>, sqlx::Error> {
    let sql = format!(
        "SELECT {DELTA_COLUMNS} WHERE d.to_release IN ({releases_query}) \
         ORDER BY f.major DESC, f.minor DESC, f.patch DESC"
    );
    let query = sqlx::query_as(&sql);
    let query = match hardware_id {
        Some(hw) => query.bind(hw),
        None => query,
    };
    query.bind(limit).fetch_all(db.pool()).await
}

const JOB_COLUMNS: &str = "id, release_id, state, bases_total, bases_done, message, runs, worker, \
     created_at, updated_at FROM delta_jobs";

/// A job with its attempts, or `None`.
pub async fn job(db: &Db, id: &str) -> Result<Option<JobView>, sqlx::Error> {
    let job: Option<JobView> = sqlx::query_as(&format!("SELECT {JOB_COLUMNS} WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    with_attempts(db, job).await
}

/// The newest job of a release (a release has one unless an operator re-ran it).
pub async fn latest_job_of(db: &Db, release_id: &str) -> Result<Option<JobView>, sqlx::Error> {
    let job: Option<JobView> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} WHERE release_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(release_id)
    .fetch_optional(db.pool())
    .await?;
    with_attempts(db, job).await
}

async fn with_attempts(db: &Db, job: Option<JobView>) -> Result<Option<JobView>, sqlx::Error> {
    let Some(mut job) = job else {
        return Ok(None);
    };
    job.attempts = sqlx::query_as(
        "SELECT a.from_release, f.version AS from_version, a.outcome, a.patch_length, \
         a.full_compressed_length, a.millis, a.reason \
         FROM delta_attempts a JOIN releases f ON f.id = a.from_release \
         WHERE a.job_id = $1 ORDER BY f.major DESC, f.minor DESC, f.patch DESC",
    )
    .bind(&job.id)
    .fetch_all(db.pool())
    .await?;
    Ok(Some(job))
}
