//! Step 10, run when the agent starts (and by `otter-agent confirm`): a trial image runs the
//! health checks and is confirmed only if all pass and its image was never rejected; what
//! the bootloader decided since the last start (a rollback, a rejected trial) is reported
//! once.

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
    /// The trial image is on the rejected list (a trial abandoned before this start, say):
    /// never confirmed, whatever its health; the reboot command runs so the bootloader
    /// rolls back.
    Rejected(String),
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
        if status.trial.is_none() {
            self.report_boot_outcome(&status.last_outcome).await;
        } else {
            // A trial is under way: the stored outcome is the previous attempt's (reported
            // already), and this attempt's outcome is new even if it is the same value.
            self.forget_reported_outcome();
        }
        self.record_boot_outcome(&status);
        let Some(trial) = status.trial.filter(|t| t.started) else {
            return Ok(AfterBoot::Settled);
        };
        let version = trial.version;
        // The image that really runs (an image that can not be hashed is not confirmed):
        // its hash goes into the reports, so the server counts what booted, not a claim.
        let image_sha256 = self.device.slot_image(trial.slot)?.sha256;
        if let Some(reason) = self.rejected_trial(&image_sha256) {
            tracing::error!(%version, %reason, "not confirming the running trial");
            self.roll_back_now();
            return Ok(AfterBoot::Rejected(reason));
        }
        self.report(Event::Booted {
            version,
            image_sha256,
        })
        .await;
        let judged = health::Trial {
            version: version.to_string(),
            slot: trial.slot.to_string(),
            sha256: hex::encode(image_sha256),
        };
        match health::run_all(&self.config.health_checks, &judged).await {
            Ok(()) => {
                self.device
                    .control()?
                    .confirm()
                    .map_err(|e| AfterBootError::Confirm(e.to_string()))?;
                self.device.sync()?;
                self.report(Event::Healthy {
                    version,
                    image_sha256,
                })
                .await;
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

    /// Reports a rollback or rejected trial once per update attempt (remembered in the
    /// state dir until the next trial request, so a repeated rollback is reported again).
    async fn report_boot_outcome(&self, outcome: &BootOutcome) {
        let event = match WireOutcome::from(*outcome) {
            WireOutcome::RolledBack { from } => Event::RolledBack { from },
            WireOutcome::TrialRejected { version, reason } => Event::Failed {
                stage: "boot".into(),
                reason: format!("the bootloader rejected {version}: {reason}"),
            },
            _ => return,
        };
        let marker = self.reported_outcome_marker();
        let key = serde_json::to_string(&WireOutcome::from(*outcome)).unwrap_or_default();
        if std::fs::read_to_string(&marker).is_ok_and(|seen| seen == key) {
            return;
        }
        match self.outbox().push(&event) {
            Ok(_) => {
                let _ = write_atomic(&marker, key.as_bytes());
            }
            Err(e) => tracing::error!(error = %e, "could not record the boot outcome"),
        }
        self.flush_outbox().await;
    }

    fn reported_outcome_marker(&self) -> std::path::PathBuf {
        self.state.root().join("reported-outcome.json")
    }

    /// A new update attempt starts (its trial is requested): its outcome is reported even if
    /// it equals the last one.
    pub(crate) fn forget_reported_outcome(&self) {
        let _ = std::fs::remove_file(self.reported_outcome_marker());
    }
}
