//! The `delta_jobs` life cycle in the database, shared by every server process: a publish
//! queues a job, one worker claims it atomically, heartbeats while it runs, records one
//! attempt per base and finishes it. A running job whose heartbeat stopped (its process
//! died) goes back to the queue.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::AnyConnection;

use crate::db::{Db, is_unique_violation, new_id, now};

/// How often a worker refreshes `updated_at` of the job it runs.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Runs a job gets: after this many failed ones (a crashed or hung differ, a dead worker,
/// an error) it is failed with the reason instead of being queued again.
pub const MAX_RUNS: i64 = 3;

/// A running job without a heartbeat for this long is re-queued. Many heartbeats long, so a
/// busy database or a slow differ thread never causes a take-over of a live job.
pub const STALE_AFTER: Duration = Duration::from_secs(180);

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker that heartbeats it.
    Running,
    /// Every base has an attempt.
    Done,
    /// The job could not run (its release is gone, storage failed...); see the message.
    Failed,
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// What became of one base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A patch was built and published.
    Built,
    /// A patch was built but is not clearly smaller than the full image.
    Dropped,
    /// Not attempted (an image is larger than the differ may take).
    Skipped,
    /// Building failed.
    Failed,
}

impl Outcome {
    /// The stored name (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Built => "built",
            Self::Dropped => "dropped",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// One row of `delta_attempts`.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The base release.
    pub from_release: String,
    /// What happened.
    pub outcome: Outcome,
    /// Compressed patch length, if one was built.
    pub patch_length: Option<i64>,
    /// Compressed full image length, if computed.
    pub full_compressed_length: Option<i64>,
    /// Time taken.
    pub millis: i64,
    /// Why, in words.
    pub reason: String,
}

/// Queues a job for `release_id` (inside the publish transaction); returns its id.
pub async fn insert_queued(
    conn: &mut AnyConnection,
    release_id: &str,
    bases_total: i64,
) -> Result<String, sqlx::Error> {
    let id = new_id("djob");
    let at = now();
    sqlx::query(
        "INSERT INTO delta_jobs (id, release_id, state, bases_total, bases_done, message, \
         worker, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, NULL, $6, $6)",
    )
    .bind(&id)
    .bind(release_id)
    .bind(JobState::Queued.as_str())
    .bind(bases_total)
    .bind("waiting for a worker")
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Puts running jobs whose heartbeat is older than `stale_after` back in the queue (or
/// fails those that had their last run); returns how many.
pub async fn requeue_stale(db: &Db, stale_after: Duration) -> Result<u64, sqlx::Error> {
    let cutoff = now().saturating_sub(i64::try_from(stale_after.as_secs()).unwrap_or(i64::MAX));
    requeue_running(db, Holder::HeartbeatBefore(cutoff), "stopped heartbeating").await
}

/// Puts the running jobs of `worker`, a worker known to be dead, back in the queue (or
/// fails those that had their last run); returns how many.
pub async fn requeue_of_dead_worker(db: &Db, worker: &str) -> Result<u64, sqlx::Error> {
    requeue_running(db, Holder::Worker(worker), "died").await
}

/// Which running jobs a re-queue is about.
enum Holder<'a> {
    HeartbeatBefore(i64),
    Worker(&'a str),
}

/// A run cut short by its worker's death counts as a failed run.
async fn requeue_running(db: &Db, holder: Holder<'_>, why: &str) -> Result<u64, sqlx::Error> {
    let which = match holder {
        Holder::HeartbeatBefore(_) => "updated_at < $4",
        Holder::Worker(_) => "worker = $4",
    };
    let ends = [
        (
            JobState::Failed,
            format!(
                "failed: its worker {why} during run {MAX_RUNS} of {MAX_RUNS}, the last allowed"
            ),
            "runs >= $5",
            "worker",
        ),
        (
            JobState::Queued,
            format!(
                "re-queued: its worker {why} (that counts as a failed run; {MAX_RUNS} allowed)"
            ),
            "runs < $5",
            "NULL",
        ),
    ];
    let mut total = 0;
    for (state, message, runs, holder_after) in ends {
        let sql = format!(
            "UPDATE delta_jobs SET state = $1, message = $2, updated_at = $3, \
             worker = {holder_after} WHERE {which} AND {runs} AND state = $6"
        );
        let query = sqlx::query(&sql)
            .bind(state.as_str())
            .bind(message)
            .bind(now());
        let query = match holder {
            Holder::HeartbeatBefore(cutoff) => query.bind(cutoff),
            Holder::Worker(worker) => query.bind(worker.to_owned()),
        };
        let done = query
            .bind(MAX_RUNS)
            .bind(JobState::Running.as_str())
            .execute(db.pool())
            .await?;
        total += done.rows_affected();
    }
    Ok(total)
}

/// Ends a failed run of a job held by `worker`: back to the queue, or failed with `reason`
/// when it was the last allowed run. Returns the state it left the job in.
pub async fn fail_run(
    db: &Db,
    id: &str,
    worker: &str,
    reason: &str,
) -> Result<JobState, sqlx::Error> {
    let runs: Option<(i64,)> =
        sqlx::query_as("SELECT runs FROM delta_jobs WHERE id = $1 AND worker = $2")
            .bind(id)
            .bind(worker)
            .fetch_optional(db.pool())
            .await?;
    let runs = runs.map_or(MAX_RUNS, |(r,)| r);
    if runs >= MAX_RUNS {
        let message = format!("failed {runs} times, the last allowed; last error: {reason}");
        finish(db, id, worker, JobState::Failed, &message).await?;
        return Ok(JobState::Failed);
    }
    sqlx::query(
        "UPDATE delta_jobs SET state = $1, worker = NULL, updated_at = $2, message = $3 \
         WHERE id = $4 AND worker = $5 AND state = $6",
    )
    .bind(JobState::Queued.as_str())
    .bind(now())
    .bind(format!(
        "run {runs} of {MAX_RUNS} failed, retrying: {reason}"
    ))
    .bind(id)
    .bind(worker)
    .bind(JobState::Running.as_str())
    .execute(db.pool())
    .await?;
    Ok(JobState::Queued)
}

/// Claims the oldest queued job for `worker`, if any. Safe against other workers: only
/// the one whose update changes the row gets it.
pub async fn claim_next(db: &Db, worker: &str) -> Result<Option<String>, sqlx::Error> {
    loop {
        let next: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM delta_jobs WHERE state = $1 ORDER BY created_at, id LIMIT 1",
        )
        .bind(JobState::Queued.as_str())
        .fetch_optional(db.pool())
        .await?;
        let Some((id,)) = next else {
            return Ok(None);
        };
        let claimed = sqlx::query(
            "UPDATE delta_jobs SET state = $1, worker = $2, updated_at = $3, message = $4, \
             runs = runs + 1 WHERE id = $5 AND state = $6",
        )
        .bind(JobState::Running.as_str())
        .bind(worker)
        .bind(now())
        .bind("running")
        .bind(&id)
        .bind(JobState::Queued.as_str())
        .execute(db.pool())
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(Some(id));
        }
        // Another worker won this one; look again.
    }
}

/// Refreshes the heartbeat; `false` when the job is no longer this worker's.
pub async fn heartbeat(db: &Db, id: &str, worker: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE delta_jobs SET updated_at = $1 WHERE id = $2 AND worker = $3 AND state = $4",
    )
    .bind(now())
    .bind(id)
    .bind(worker)
    .bind(JobState::Running.as_str())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the number of bases the worker found.
pub async fn set_total(db: &Db, id: &str, worker: &str, total: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE delta_jobs SET bases_total = $1, updated_at = $2 WHERE id = $3 AND worker = $4",
    )
    .bind(total)
    .bind(now())
    .bind(id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The bases a job has finished already (a re-queued job resumes after them).
pub async fn finished_bases(db: &Db, id: &str) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT from_release FROM delta_attempts WHERE job_id = $1")
            .bind(id)
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

/// Records one attempt and the job's progress. Recording the same base twice (a job taken
/// over after its first worker recorded it) keeps the first record.
pub async fn record_attempt(db: &Db, id: &str, attempt: &Attempt) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO delta_attempts (job_id, from_release, outcome, patch_length, \
         full_compressed_length, millis, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&attempt.from_release)
    .bind(attempt.outcome.as_str())
    .bind(attempt.patch_length)
    .bind(attempt.full_compressed_length)
    .bind(attempt.millis)
    .bind(&attempt.reason)
    .execute(db.pool())
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e),
    }
    sqlx::query(
        "UPDATE delta_jobs SET bases_done = \
         (SELECT COUNT(*) FROM delta_attempts WHERE job_id = $1), updated_at = $2 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Ends a job held by `worker` with `state` and a summary.
pub async fn finish(
    db: &Db,
    id: &str,
    worker: &str,
    state: JobState,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE delta_jobs SET state = $1, message = $2, updated_at = $3 \
         WHERE id = $4 AND worker = $5",
    )
    .bind(state.as_str())
    .bind(message)
    .bind(now())
    .bind(id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Hands a job back to the queue (this process is shutting down mid-job).
pub async fn release(db: &Db, id: &str, worker: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE delta_jobs SET state = $1, worker = NULL, updated_at = $2, \
         message = 're-queued: its worker shut down' WHERE id = $3 AND worker = $4 AND state = $5",
    )
    .bind(JobState::Queued.as_str())
    .bind(now())
    .bind(id)
    .bind(worker)
    .bind(JobState::Running.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}
