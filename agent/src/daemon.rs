//! `otter-agent run`: cycles at the configured interval plus random jitter, backs off
//! exponentially after failures (up to `max_backoff`), and stops cleanly on SIGINT/SIGTERM
//! in any step: the signal handlers are installed before the first cycle and stay for the
//! whole run, so a signal that arrives mid-cycle is never lost; the cycle is abandoned at
//! its next await point (a download keeps its partial file and resumes at the next start;
//! the blocking flash work of an install finishes first, so no slot is left half-marked).
//! A cycle that waits for its rollout's maintenance window is a normal outcome, not a
//! failure: the next cycle, an interval later, tries again.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::after_boot::AfterBootError;
use crate::agent::Agent;

impl Agent {
    /// Runs cycles until a termination signal.
    pub async fn run_forever(&self) -> Result<(), AfterBootError> {
        let stop = Shutdown::listen();
        match stop.race(self.after_boot()).await {
            Some(result) => {
                result?;
            }
            None => {
                stopping("the start-up check");
                return Ok(());
            }
        }
        let mut failures: u32 = 0;
        loop {
            let Some(result) = stop.race(self.check()).await else {
                {
                    stopping("an update cycle");
                    return Ok(());
                }
            };
            let wait = match result {
                Ok(outcome) => {
                    tracing::info!("{outcome}");
                    failures = 0;
                    self.config.interval + jitter(self.config.jitter)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff = backoff(failures, self.config.interval, self.config.max_backoff);
                    tracing::warn!(error = %e, retry_in = ?backoff, "cycle failed");
                    backoff
                }
            };
            if stop.race(tokio::time::sleep(wait)).await.is_none() {
                {
                    stopping("the wait between cycles");
                    return Ok(());
                }
            }
        }
    }
}

fn stopping(during: &str) {
    tracing::info!("stopping (signal received during {during})");
}

/// 30 s doubled per consecutive failure, capped at `max_backoff` and at the normal interval.
pub fn backoff(failures: u32, interval: Duration, max_backoff: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_secs(30)
        .saturating_mul(1 << exp)
        .min(interval.max(Duration::from_secs(30)))
        .min(max_backoff)
}

fn jitter(max: Duration) -> Duration {
    let mut raw = [0u8; 8];
    if getrandom::fill(&mut raw).is_err() {
        return Duration::ZERO;
    }
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(u64::from_le_bytes(raw) % millis.max(1))
}

/// SIGINT/SIGTERM, listened to from creation on.
struct Shutdown {
    stopped: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the handlers now (a signal before the first await is kept, not lost).
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, stopped) = watch::channel(false);
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        if let Err(e) = &term {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
        }
        tokio::spawn(async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
            let _ = tx.send(true);
        });
        Self { stopped }
    }

    /// Runs `f` unless a signal comes first (then `None`; `f` is dropped where it waits).
    async fn race<F: Future>(&self, f: F) -> Option<F::Output> {
        let mut stopped = self.stopped.clone();
        let signalled = async move {
            if stopped.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            () = signalled => None,
            out = f => Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        let day = Duration::from_secs(86_400);
        assert_eq!(backoff(1, hour, day), Duration::from_secs(30));
        assert_eq!(backoff(2, hour, day), Duration::from_secs(60));
        assert_eq!(backoff(4, hour, day), Duration::from_secs(240));
        assert_eq!(backoff(20, hour, day), hour);
        assert!(jitter(Duration::from_secs(10)) < Duration::from_secs(10));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn backoff_never_exceeds_the_configured_cap() {
        let hour = Duration::from_secs(3600);
        let cap = Duration::from_secs(90);
        assert_eq!(backoff(2, hour, cap), Duration::from_secs(60));
        assert_eq!(backoff(3, hour, cap), cap);
        assert_eq!(backoff(30, hour, cap), cap);
        let short = Duration::from_secs(5);
        assert_eq!(backoff(1, hour, short), short);
    }
}
