//! Step 10, run when the agent starts (and by `otter-agent confirm`): a trial image runs the
//! health checks and is confirmed only if all pass; what the bootloader decided since the
//! last start (a rollback, a rejected trial) is reported once.

use otter_boot::state::Outcome as BootOutcome;
use otter_keys::wire::{BootOutcome as WireOutcome, Event};

use crate::agent::Agent;
use crate::health;
use crate::state_dir::write_atomic;

/// What the start-up check did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterBoot {
    /// Not on trial; nothing to confirm.
    Settled,
    /// The trial image passed its health checks and is now confirmed.
    Confirmed(otter_boot::image::Version),
    /// A health check failed: not confirmed, the image is rejected for good, and the reboot
    /// command runs so the bootloader rolls back.
    Unhealthy(String),
}

/// Why the start-up check could not run.
#[derive(Debug, thiserror::Error)]
pub enum AfterBootError {
    /// The flash or boot state failed.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// Confirming failed.
    #[error("confirm: {0}")]
    Confirm(String),
}

impl Agent {
    /// Confirms a healthy trial image and reports what the bootloader did.
    pub async fn after_boot(&self) -> Result<AfterBoot, AfterBootError> {
        let status = self.boot_status().await?;
        self.report_boot_outcome(&status.last_outcome).await;
        self.record_boot_outcome(&status);
        let Some(trial) = status.trial.filter(|t| t.started) else {
            return Ok(AfterBoot::Settled);
        };
        let version = trial.version;
        self.report(Event::Booted { version }).await;
        match health::run_all(&self.config.health_checks).await {
            Ok(()) => {
                self.device
                    .control()?
                    .confirm()
                    .map_err(|e| AfterBootError::Confirm(e.to_string()))?;
                self.device.sync()?;
                self.report(Event::Healthy { version }).await;
                tracing::info!(%version, "trial image healthy and confirmed");
                Ok(AfterBoot::Confirmed(version))
            }
            Err(e) => {
                let reason = e.to_string();
                self.report(Event::Failed {
                    stage: "health".into(),
                    reason: reason.clone(),
                })
                .await;
                tracing::error!(%version, error = %reason, "health check failed: not confirming");
                self.reject_unhealthy_trial(&trial, &reason);
                Ok(AfterBoot::Unhealthy(reason))
            }
        }
    }

    /// Reports a rollback or rejected trial once (remembered in the state dir).
    async fn report_boot_outcome(&self, outcome: &BootOutcome) {
        let event = match WireOutcome::from(*outcome) {
            WireOutcome::RolledBack { from } => Event::RolledBack { from },
            WireOutcome::TrialRejected { version, reason } => Event::Failed {
                stage: "boot".into(),
                reason: format!("the bootloader rejected {version}: {reason}"),
            },
            _ => return,
        };
        let marker = self.state.root().join("reported-outcome.json");
        let key = serde_json::to_string(&WireOutcome::from(*outcome)).unwrap_or_default();
        if std::fs::read_to_string(&marker).is_ok_and(|seen| seen == key) {
            return;
        }
        if self.messenger().report(event).await.is_ok() {
            let _ = write_atomic(&marker, key.as_bytes());
        }
    }

    async fn report(&self, event: Event) {
        if let Err(e) = self.messenger().report(event).await {
            tracing::warn!(error = %e, "could not send a report");
        }
    }
}
