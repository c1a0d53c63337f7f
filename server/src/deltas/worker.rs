//! The delta worker every server process runs: it wakes on a local publish or every
//! [`POLL_INTERVAL`] (for jobs queued by another replica), re-queues jobs of dead workers
//! (at once when their lease shows them dead, else when their heartbeat is stale),
//! and runs queued jobs one at a time, heartbeating each. At shutdown a job in progress goes
//! back to the queue for another process.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::job::{self, JobContext};
use super::jobs::{self, HEARTBEAT_INTERVAL, JobState, STALE_AFTER};
use super::lease::{self, Lease, lease_dir};
use crate::db::new_id;
use crate::state::AppState;

/// How often an idle worker looks for jobs it was not woken for.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Starts the worker of this process.
pub(super) fn spawn(state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    let worker = new_id("wrk");
    let lease = match Lease::take(&lease_dir(&state.config.data_dir), &worker) {
        Ok(lease) => Some(lease),
        Err(e) => {
            tracing::warn!(error = %e, "delta worker: no lease file; a restart will not see at once that this worker died");
            None
        }
    };
    let ctx = JobContext {
        permits: Arc::new(Semaphore::new(state.config.delta_concurrency.max(1))),
        worker,
        state,
    };
    tokio::spawn(async move {
        run(ctx, shutdown).await;
        drop(lease);
    })
}

async fn run(ctx: JobContext, shutdown: CancellationToken) {
    tracing::debug!(worker = %ctx.worker, "delta worker started");
    loop {
        if let Err(e) = drain(&ctx, &shutdown).await {
            tracing::warn!(worker = %ctx.worker, error = %e, "delta worker: database error; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = ctx.state.delta_wakeup.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
    tracing::debug!(worker = %ctx.worker, "delta worker stopped");
}

/// Runs queued jobs until none is left (or shutdown).
async fn drain(ctx: &JobContext, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
    let requeued = jobs::requeue_stale(&ctx.state.db, STALE_AFTER).await?;
    if requeued > 0 {
        tracing::warn!(
            count = requeued,
            "re-queued delta jobs of workers that stopped heartbeating"
        );
    }
    reclaim_dead(ctx).await?;
    while !shutdown.is_cancelled() {
        let Some(id) = jobs::claim_next(&ctx.state.db, &ctx.worker).await? else {
            break;
        };
        run_claimed(ctx, &id, shutdown).await?;
    }
    Ok(())
}

/// Re-queues at once the jobs of workers whose process is provably gone (their lease file
/// in the data dir is no longer locked), e.g. this server before a `kill -9`.
async fn reclaim_dead(ctx: &JobContext) -> Result<(), sqlx::Error> {
    let dir = lease_dir(&ctx.state.config.data_dir);
    let dead = match lease::dead_workers(&dir) {
        Ok(dead) => dead,
        Err(e) => {
            tracing::warn!(error = %e, "delta worker: cannot read the worker leases");
            return Ok(());
        }
    };
    for worker in dead.iter().filter(|w| **w != ctx.worker) {
        let count = jobs::requeue_of_dead_worker(&ctx.state.db, worker).await?;
        if count > 0 {
            tracing::warn!(count, dead_worker = %worker, "re-queued delta jobs of a worker whose process died");
        }
        if let Err(e) = lease::forget(&dir, worker) {
            tracing::warn!(error = %e, dead_worker = %worker, "cannot remove a dead worker's lease");
        }
    }
    Ok(())
}

/// Runs one claimed job with a heartbeat, and records how it ended.
async fn run_claimed(
    ctx: &JobContext,
    id: &str,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let db = &ctx.state.db;
    tracing::info!(job = %id, worker = %ctx.worker, "delta job started");
    let lost = CancellationToken::new();
    let beat = tokio::spawn({
        let (db, id, worker, lost) = (db.clone(), id.to_owned(), ctx.worker.clone(), lost.clone());
        async move {
            loop {
                tokio::time::sleep(HEARTBEAT_INTERVAL).await;
                match jobs::heartbeat(&db, &id, &worker).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(job = %id, error = %e, "delta job heartbeat failed"),
                }
            }
        }
    });
    let result = tokio::select! {
        result = job::run(ctx, id) => Some(result),
        () = shutdown.cancelled() => None,
        () = lost.cancelled() => {
            beat.abort();
            tracing::warn!(job = %id, "delta job was taken over by another worker; abandoning it");
            return Ok(());
        }
    };
    beat.abort();
    match result {
        None => {
            tracing::info!(job = %id, "shutting down: delta job handed back to the queue");
            jobs::release(db, id, &ctx.worker).await
        }
        Some(Ok(summary)) => {
            tracing::info!(job = %id, %summary, "delta job done");
            jobs::finish(db, id, &ctx.worker, JobState::Done, &summary).await
        }
        Some(Err(e)) => {
            let now = jobs::fail_run(db, id, &ctx.worker, &e.public_message()).await?;
            tracing::error!(job = %id, error = %e, state = now.as_str(), "delta job run failed");
            Ok(())
        }
    }
}
