//! Health checks gate the confirmation of a trial image: every configured command must exit
//! 0 within its timeout. One failure and the image stays unconfirmed, so the bootloader rolls
//! back at the next reset. Each command learns which image it judges from its environment
//! ([`Trial`]): `OTTER_TRIAL_VERSION`, `OTTER_TRIAL_SLOT` and `OTTER_TRIAL_SHA256`.

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

/// The trial image under judgement, as the checks see it in their environment: a check
/// that tests the new firmware's own features needs to know which firmware that is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trial {
    /// Its version, from the vendor-signed header (`OTTER_TRIAL_VERSION`).
    pub version: String,
    /// Its slot, `A` or `B` (`OTTER_TRIAL_SLOT`).
    pub slot: String,
    /// The SHA-256 of the whole signed image in hex (`OTTER_TRIAL_SHA256`).
    pub sha256: String,
}

impl Trial {
    fn env(&self) -> [(&'static str, &str); 3] {
        [
            ("OTTER_TRIAL_VERSION", &self.version),
            ("OTTER_TRIAL_SLOT", &self.slot),
            ("OTTER_TRIAL_SHA256", &self.sha256),
        ]
    }
}

/// Runs every check in order on `trial`; the first failure is the answer.
pub async fn run_all(checks: &[HealthCheck], trial: &Trial) -> Result<(), HealthError> {
    for (i, check) in checks.iter().enumerate() {
        let (program, args) = check.command.split_first().ok_or(HealthError::Empty(i))?;
        let command = check.command.join(" ");
        let mut child = Command::new(program)
            .args(args)
            .envs(trial.env())
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

    fn trial() -> Trial {
        Trial {
            version: "1.2.0".into(),
            slot: "B".into(),
            sha256: "ab".repeat(32),
        }
    }

    #[tokio::test]
    async fn all_must_pass_in_time() {
        let t = &trial();
        run_all(&[check(&["true"], 5), check(&["sh", "-c", "exit 0"], 5)], t)
            .await
            .unwrap();
        assert!(matches!(
            run_all(&[check(&["true"], 5), check(&["false"], 5)], t).await,
            Err(HealthError::Failed { .. })
        ));
        assert!(matches!(
            run_all(&[check(&["sleep", "5"], 1)], t).await,
            Err(HealthError::TimedOut { seconds: 1, .. })
        ));
        assert!(matches!(
            run_all(&[check(&["/no/such/program"], 1)], t).await,
            Err(HealthError::Spawn { .. })
        ));
        assert!(matches!(
            run_all(&[check(&[], 1)], t).await,
            Err(HealthError::Empty(0))
        ));
    }

    #[tokio::test]
    async fn checks_see_the_trial_they_judge() {
        let expect = format!(
            "test \"$OTTER_TRIAL_VERSION $OTTER_TRIAL_SLOT $OTTER_TRIAL_SHA256\" = \"1.2.0 B {}\"",
            "ab".repeat(32)
        );
        run_all(&[check(&["sh", "-c", &expect], 5)], &trial())
            .await
            .unwrap();
        let other = Trial {
            version: "1.3.0".into(),
            ..trial()
        };
        assert!(matches!(
            run_all(&[check(&["sh", "-c", &expect], 5)], &other).await,
            Err(HealthError::Failed { .. })
        ));
    }
}
