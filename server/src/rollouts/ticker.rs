//! The background task that moves running rollouts along with time: each `rollout_tick` it
//! evaluates every running rollout (soak times passed, devices timed out) and saves what
//! the engine decided with a compare-and-swap, so several server processes may all run it.

use jiff::Timestamp;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::store::{self, StoreError};
use crate::db::Db;
use crate::state::AppState;

/// Evaluates every running rollout at `now`; how many changed.
pub async fn tick(db: &Db, now: Timestamp) -> Result<usize, StoreError> {
    let mut changed = 0;
    for id in store::running_ids(db).await? {
        match store::evaluate(db, &id, now).await {
            Ok(Some(e)) if !e.timeline.is_empty() => changed += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(rollout = %id, error = %e, "could not evaluate rollout; will retry")
            }
        }
    }
    Ok(changed)
}

/// Starts the ticker; it stops when `shutdown` is cancelled.
pub fn spawn(state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(state.config.rollout_tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            if let Err(e) = tick(&state.db, Timestamp::now()).await {
                tracing::warn!(error = %e, "could not list running rollouts; will retry");
            }
        }
    })
}
