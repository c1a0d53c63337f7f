//! Running one claimed delta job: find the last K releases before the job's release, and for
//! each one build, check, size-test and publish a patch, recording one attempt per base.
//! Bases that a previous (crashed) run recorded already are not built again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt, stream};
use otter_boot::image::Version;
use otter_keys::targets::delta_target_name;
use tokio::sync::Semaphore;

use super::build::{
    BuildError, BuiltDelta, MAX_PATCH_PERCENT, build_delta, check, compressed_len, worth_publishing,
};
use super::isolate::{ChildError, Isolation, diff_in_child};
use super::jobs::{self, Attempt, Outcome};
use crate::db::{is_unique_violation, new_id, now};
use crate::metrics::Metrics;
use crate::releases::model::{self, Release};
use crate::state::AppState;
use crate::storage::{StorageError, stage_bytes, staging_dir};
use crate::tuf::TufError;

/// What a worker lends to the job it runs.
#[derive(Debug, Clone)]
pub(super) struct JobContext {
    /// Shared server state.
    pub state: AppState,
    /// This worker's name, as written in `delta_jobs.worker`.
    pub worker: String,
    /// Bounds the differs running at once in this process (`delta_concurrency`).
    pub permits: Arc<Semaphore>,
}

/// Why a job could not run to its end (a base that fails is an attempt, not this).
#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The job or its release row is gone.
    #[error("{0} not found")]
    Missing(String),
    /// The new image could not be read from storage.
    #[error("reading the new image: {0}")]
    Storage(#[from] StorageError),
    /// The full image could not be compressed for the size comparison.
    #[error("compressing the full image: {0}")]
    Compress(String),
    /// A stored row is not what the server writes.
    #[error("corrupt release row: {0}")]
    Corrupt(String),
    /// The differ process crashed, hit a resource limit or hung.
    #[error("{0}")]
    Differ(String),
    /// Deltas were published but the TUF metadata could not be re-signed.
    #[error("deltas stored, but TUF metadata not re-signed: {0}")]
    Tuf(#[from] TufError),
}

impl JobError {
    /// The job message shown through the API: database details go to the log only.
    pub(super) fn public_message(&self) -> String {
        match self {
            Self::Db(_) => "database error; see the server log".to_owned(),
            other => other.to_string(),
        }
    }
}

/// The new image in memory and its compressed length, shared by every base.
struct Target {
    release: Release,
    version: Version,
    image: Option<(Arc<Vec<u8>>, u64)>,
}

/// Runs job `id`; returns the summary for its message.
pub(super) async fn run(ctx: &JobContext, id: &str) -> Result<String, JobError> {
    let state = &ctx.state;
    let db = &state.db;
    let (release_id,): (String,) =
        sqlx::query_as("SELECT release_id FROM delta_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?
            .ok_or_else(|| JobError::Missing(format!("delta job {id}")))?;
    let release = model::find(db, &release_id)
        .await?
        .ok_or_else(|| JobError::Missing(format!("release {release_id}")))?;
    let wanted = i64::try_from(state.config.delta_bases).unwrap_or(i64::MAX);
    let bases = if wanted == 0 {
        Vec::new()
    } else {
        model::predecessors(db, &release, wanted).await?
    };
    jobs::set_total(db, id, &ctx.worker, bases.len() as i64).await?;
    if bases.is_empty() {
        // The publish signs its release itself, unless it crashed first.
        state.tuf.targets_changed().await?;
        return Ok(format!(
            "no earlier release of {} to build a delta from",
            release.hardware_id
        ));
    }
    let finished = jobs::finished_bases(db, id).await?;
    let todo: Vec<Release> = bases
        .into_iter()
        .filter(|b| !finished.contains(&b.id))
        .collect();

    let cap = state.config.delta_max_image_size;
    let image = if todo.is_empty() || exceeds(release.length, cap) {
        None
    } else {
        let bytes = Arc::new(state.blobs.read_all(&digest(&release.sha256)?).await?);
        let full = {
            let _permit = ctx
                .permits
                .acquire()
                .await
                .map_err(|e| JobError::Compress(e.to_string()))?;
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || compressed_len(&bytes))
                .await
                .map_err(|e| JobError::Compress(e.to_string()))?
                .map_err(|e| JobError::Compress(e.to_string()))?
        };
        Some((bytes, full))
    };
    let target = Target {
        version: parse_version(&release.version)?,
        release,
        image,
    };

    let concurrency = state.config.delta_concurrency.max(1);
    stream::iter(todo)
        .map(|base| {
            let target = &target;
            async move {
                let attempt = attempt(ctx, target, &base).await?;
                jobs::record_attempt(db, id, &attempt).await?;
                Metrics::count(&state.metrics.delta_builds, attempt.outcome.as_str());
                Ok::<_, JobError>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;

    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT outcome, COUNT(*) FROM delta_attempts WHERE job_id = $1 GROUP BY outcome ORDER BY outcome",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    // Also when nothing was built: it signs the release itself if the publish could not
    // (targets_changed is a no-op when the metadata already lists every target).
    state.tuf.targets_changed().await?;
    let parts: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
    Ok(format!("{total} bases: {}", parts.join(", ")))
}

/// Builds (or skips) the delta from `base` to the job's release.
async fn attempt(ctx: &JobContext, target: &Target, base: &Release) -> Result<Attempt, JobError> {
    let started = Instant::now();
    let cap = ctx.state.config.delta_max_image_size;
    let finish = |outcome, patch: Option<u64>, full: Option<u64>, reason: String| Attempt {
        from_release: base.id.clone(),
        outcome,
        patch_length: patch.and_then(|n| i64::try_from(n).ok()),
        full_compressed_length: full.and_then(|n| i64::try_from(n).ok()),
        millis: millis(started.elapsed()),
        reason,
    };
    let too_big = |what: &str, len: i64| {
        format!("the {what} image ({len} bytes) is larger than delta_max_image_size ({cap} bytes)")
    };
    if exceeds(base.length, cap) {
        return Ok(finish(
            Outcome::Skipped,
            None,
            None,
            too_big("base", base.length),
        ));
    }
    let Some((new, full)) = &target.image else {
        let reason = too_big("new", target.release.length);
        return Ok(finish(Outcome::Skipped, None, None, reason));
    };
    let full = *full;
    let old = match ctx.state.blobs.read_all(&digest(&base.sha256)?).await {
        Ok(old) => old,
        Err(e) => {
            let reason = format!("reading the base image: {e}");
            return Ok(finish(Outcome::Failed, None, Some(full), reason));
        }
    };
    let built = match differ(ctx, old, new.clone()).await? {
        Ok(built) => built,
        Err(reason) => return Ok(finish(Outcome::Failed, None, Some(full), reason)),
    };
    ctx.state
        .metrics
        .delta_seconds
        .observe(built.diff_time.as_secs_f64());
    let patch_len = built.patch.len() as u64;
    let percent = patch_len.saturating_mul(100) / full.max(1);
    if !worth_publishing(patch_len, full) {
        let reason = format!(
            "patch of {patch_len} bytes is {percent}% of the compressed full image ({full} bytes); \
             published only at {MAX_PATCH_PERCENT}% or less"
        );
        return Ok(finish(
            Outcome::Dropped,
            Some(patch_len),
            Some(full),
            reason,
        ));
    }
    let reason = match publish(ctx, target, base, &built).await? {
        Ok(true) => format!(
            "patch of {patch_len} bytes is {percent}% of the compressed full image ({full} bytes)"
        ),
        Ok(false) => format!("patch of {patch_len} bytes was published by an earlier run"),
        Err(e) => {
            let reason = format!("storing the patch: {e}");
            return Ok(finish(Outcome::Failed, Some(patch_len), Some(full), reason));
        }
    };
    Ok(finish(Outcome::Built, Some(patch_len), Some(full), reason))
}

/// Runs the differ under a concurrency permit: in a child process when the configuration
/// names one, else on a blocking thread. `Ok(Err(reason))` fails this base; `Err(_)` (the
/// child crashed, hit a limit or hung) fails the job run.
async fn differ(
    ctx: &JobContext,
    old: Vec<u8>,
    new: Arc<Vec<u8>>,
) -> Result<Result<BuiltDelta, String>, JobError> {
    let _permit = ctx
        .permits
        .acquire()
        .await
        .map_err(|e| JobError::Differ(format!("no differ slot: {e}")))?;
    let config = &ctx.state.config;
    let built = match &config.delta_differ {
        Some(exe) => {
            let iso = Isolation {
                exe: exe.clone(),
                timeout: config.delta_timeout,
                memory_bytes: config.delta_memory_limit,
            };
            let unchecked = match diff_in_child(&iso, &old, &new).await {
                Ok(unchecked) => unchecked,
                Err(ChildError::Refused(reason)) => return Ok(Err(reason)),
                Err(e @ ChildError::Crashed(_)) => return Err(JobError::Differ(e.to_string())),
            };
            tokio::task::spawn_blocking(move || check(&old, &new, unchecked)).await
        }
        None => tokio::task::spawn_blocking(move || build_delta(&old, &new)).await,
    };
    Ok(match built {
        Ok(Ok(built)) => Ok(built),
        Ok(Err(e @ BuildError::SelfCheck(_))) => {
            tracing::error!(error = %e, "bsdiff produced a patch that does not apply");
            Err(e.to_string())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the differ crashed: {e}")),
    })
}

/// Stores the patch and inserts its `deltas` row. `Ok(Ok(false))`: it existed already;
/// `Ok(Err(_))`: storage failed (an attempt failure); `Err(_)`: the database failed.
async fn publish(
    ctx: &JobContext,
    target: &Target,
    base: &Release,
    built: &BuiltDelta,
) -> Result<Result<bool, StorageError>, JobError> {
    let state = &ctx.state;
    let stored = async {
        let staged = stage_bytes(&staging_dir(&state.config.data_dir), &built.patch).await?;
        state.blobs.put_file(&staged.sha256, &staged.path).await
    };
    if let Err(e) = stored.await {
        return Ok(Err(e));
    }
    let from = parse_version(&base.version)?;
    let inserted = sqlx::query(
        "INSERT INTO deltas (id, from_release, to_release, target_name, sha256, length, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id("dlt"))
    .bind(&base.id)
    .bind(&target.release.id)
    .bind(delta_target_name(
        &target.release.hardware_id,
        from,
        target.version,
    ))
    .bind(hex::encode(built.sha256))
    .bind(i64::try_from(built.patch.len()).unwrap_or(i64::MAX))
    .bind(now())
    .execute(state.db.pool())
    .await;
    match inserted {
        Ok(_) => Ok(Ok(true)),
        Err(e) if is_unique_violation(&e) => Ok(Ok(false)),
        Err(e) => Err(e.into()),
    }
}

fn exceeds(length: i64, cap: u64) -> bool {
    u64::try_from(length).map_or(true, |len| len > cap)
}

fn digest(hex_text: &str) -> Result<[u8; 32], JobError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out)
        .map_err(|_| JobError::Corrupt(format!("sha256 {hex_text:?}")))?;
    Ok(out)
}

fn parse_version(text: &str) -> Result<Version, JobError> {
    text.parse()
        .map_err(|_| JobError::Corrupt(format!("version {text:?}")))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
