//! The background task that keeps metadata fresh: clients refuse expired metadata, and the
//! timestamp expires soonest (a day by default), so it is re-signed well before.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::AppState;

/// How often the refresher looks: an eighth of the shortest lifetime (so a role is re-signed
/// soon after half its lifetime passed), between 250 ms and an hour.
pub fn refresh_period(config: &Config) -> Duration {
    let shortest = config
        .timestamp_expiry
        .min(config.snapshot_expiry)
        .min(config.targets_expiry);
    (shortest / 8).clamp(Duration::from_millis(250), Duration::from_secs(3600))
}

/// How often the refresher also checks that the signed targets list every release and
/// delta (and signs them if not): the repair of a crash between a commit and its signing.
pub const RECONCILE_PERIOD: Duration = Duration::from_secs(5);

/// Re-signs timestamp (and snapshot, targets) before they expire, and targets whenever they
/// are behind the release and delta tables, until `shutdown`. Safe to run in every replica:
/// the write happens under the database writer lock and re-checks what is due there.
pub fn spawn_refresher(state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let period = refresh_period(&state.config).min(RECONCILE_PERIOD);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match state.tuf.refresh().await {
                Ok(written) if written.is_empty() => {}
                Ok(written) => tracing::info!(
                    targets = written.targets,
                    snapshot = written.snapshot,
                    timestamp = written.timestamp,
                    "re-signed TUF metadata before it expires"
                ),
                Err(e) => tracing::warn!(error = %e, "could not re-sign TUF metadata; will retry"),
            }
            match state.tuf.reconcile().await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::warn!("signed TUF targets were behind the releases; re-signed")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not bring TUF targets up to date; will retry")
                }
            }
        }
    })
}
