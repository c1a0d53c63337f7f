//! The background task that flags silent devices.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::detect;
use crate::db::now;
use crate::state::AppState;

/// How often the sweeper looks: a tenth of the silence, between 1 s and 5 minutes, so a
/// device is flagged at most 10 % late.
pub fn sweep_period(silent_after: Duration) -> Duration {
    (silent_after / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Starts the sweeper; it stops when `shutdown` is cancelled.
pub fn spawn_sweeper(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let silent_after = state.config.silent_after;
        let mut tick = tokio::time::interval(sweep_period(silent_after));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let swept = async {
                let mut conn = state.db.pool().acquire().await?;
                detect::sweep_silent(&mut conn, &state.metrics, silent_after, now()).await
            }
            .await;
            match swept {
                Ok(0) => {}
                Ok(n) => tracing::warn!(devices = n, "flagged silent devices"),
                Err(e) => tracing::error!(error = %e, "silent-device sweep failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_period_is_a_tenth_of_the_silence_within_bounds() {
        assert_eq!(
            sweep_period(Duration::from_secs(3 * 3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            sweep_period(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(sweep_period(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
