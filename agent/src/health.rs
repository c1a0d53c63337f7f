//! Health checks gate the confirmation of a trial image: every configured command must exit
//! 0 within its timeout. One failure and the image stays unconfirmed, so the bootloader rolls
//! back at the next reset.

use tokio::process::Command;

use crate::config::HealthCheck;

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// An empty command line in the configuration.
    #[error("health check #{0} has an empty command")]
    Empty(usize),
    /// The command could not be started.
    #[error("health check {command:?} could not start: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// It exited non-zero.
    #[error("health check {command:?} failed ({status})")]
    Failed {
        /// The command.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// It ran too long and was killed.
    #[error("health check {command:?} timed out after {seconds} s")]
    TimedOut {
        /// The command.
        command: String,
        /// The timeout.
        seconds: u64,
    },
}

/// Runs every check in order; the first failure is the answer.
pub async fn run_all(checks: &[HealthCheck]) -> Result<(), HealthError> {
    for (i, check) in checks.iter().enumerate() {
        let (program, args) = check.command.split_first().ok_or(HealthError::Empty(i))?;
        let command = check.command.join(" ");
        let mut child = Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HealthError::Spawn {
                command: command.clone(),
                source,
            })?;
        let status = match tokio::time::timeout(check.timeout, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => return Err(HealthError::Spawn { command, source }),
            Err(_) => {
                let _ = child.kill().await;
                return Err(HealthError::TimedOut {
                    command,
                    seconds: check.timeout.as_secs(),
                });
            }
        };
        if !status.success() {
            return Err(HealthError::Failed { command, status });
        }
        tracing::info!(%command, "health check passed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn check(cmd: &[&str], secs: u64) -> HealthCheck {
        HealthCheck {
            command: cmd.iter().map(|s| (*s).to_owned()).collect(),
            timeout: Duration::from_secs(secs),
        }
    }

    #[tokio::test]
    async fn all_must_pass_in_time() {
        run_all(&[check(&["true"], 5), check(&["sh", "-c", "exit 0"], 5)])
            .await
            .unwrap();
        assert!(matches!(
            run_all(&[check(&["true"], 5), check(&["false"], 5)]).await,
            Err(HealthError::Failed { .. })
        ));
        assert!(matches!(
            run_all(&[check(&["sleep", "5"], 1)]).await,
            Err(HealthError::TimedOut { seconds: 1, .. })
        ));
        assert!(matches!(
            run_all(&[check(&["/no/such/program"], 1)]).await,
            Err(HealthError::Spawn { .. })
        ));
        assert!(matches!(
            run_all(&[check(&[], 1)]).await,
            Err(HealthError::Empty(0))
        ));
    }
}
