//! `otter-agent run`: cycles at the configured interval plus random jitter, backs off
//! exponentially after failures, and stops cleanly on SIGINT/SIGTERM.

use std::time::Duration;

use crate::after_boot::AfterBootError;
use crate::agent::Agent;

impl Agent {
    /// Runs cycles until a termination signal.
    pub async fn run_forever(&self) -> Result<(), AfterBootError> {
        self.after_boot().await?;
        let mut failures: u32 = 0;
        loop {
            let wait = match self.check().await {
                Ok(outcome) => {
                    tracing::info!("{outcome}");
                    failures = 0;
                    self.config.interval + jitter(self.config.jitter)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff = backoff(failures, self.config.interval);
                    tracing::warn!(error = %e, retry_in = ?backoff, "cycle failed");
                    backoff
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown_signal() => {
                    tracing::info!("stopping");
                    return Ok(());
                }
            }
        }
    }
}

/// 30 s doubled per consecutive failure, capped at the normal interval.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_secs(30)
        .saturating_mul(1 << exp)
        .min(interval.max(Duration::from_secs(30)))
}

fn jitter(max: Duration) -> Duration {
    let mut raw = [0u8; 8];
    if getrandom::fill(&mut raw).is_err() {
        return Duration::ZERO;
    }
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(u64::from_le_bytes(raw) % millis.max(1))
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff(1, hour), Duration::from_secs(30));
        assert_eq!(backoff(2, hour), Duration::from_secs(60));
        assert_eq!(backoff(4, hour), Duration::from_secs(240));
        assert_eq!(backoff(20, hour), hour);
        assert!(jitter(Duration::from_secs(10)) < Duration::from_secs(10));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
