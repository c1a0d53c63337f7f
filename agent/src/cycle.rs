//! One update cycle, in the order of the steps it takes. Any failure is reported with its
//! stage and reason; the running image is never touched and a half-written inactive slot is
//! made unbootable.

use std::fmt;

use otter_boot::image::Version;
use otter_boot::layout::Slot;
use otter_keys::wire::{CheckIn, Event, SlotReport};

use crate::agent::Agent;
use crate::device::DeviceError;
use crate::download::{self, DownloadError, Options};
use crate::header_policy::Expected;
use crate::install::{self, InstallError};
use crate::messages::{MessageError, unix_now};
use crate::rejected;
use crate::rollout_policy::{PolicyRefusal, Verdict};
use crate::select::{self, Plan, Running, SelectError};
use crate::tuf_client::{TargetEntry, TufClientError};

/// What a cycle did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing newer is assigned.
    UpToDate {
        /// The running version.
        version: Version,
    },
    /// An update is installed and on trial; it boots at the next reset.
    WaitingForReboot {
        /// The version on trial.
        version: Version,
    },
    /// A trial image runs unconfirmed: no install starts until it is confirmed or the
    /// bootloader rolls it back (writing now could only hit the confirmed slot).
    TrialUnconfirmed {
        /// The version on trial.
        version: Version,
    },
    /// An update is assigned and its rollout policy allows it, but not now: the device waits
    /// for the policy's maintenance window (nothing is downloaded; a later cycle retries).
    OutsideWindow {
        /// The assigned version.
        version: Version,
        /// The window, as text.
        window: String,
    },
    /// Installed now, the trial requested and the reboot triggered.
    Installed {
        /// The new version.
        version: Version,
        /// The slot it went to.
        slot: Slot,
        /// Whether a delta was used.
        via_delta: bool,
        /// Bytes downloaded in this cycle.
        downloaded: u64,
        /// Whether the reboot command ran (else the update boots at the next reset).
        rebooted: bool,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpToDate { version } => write!(f, "up to date (running {version})"),
            Self::WaitingForReboot { version } => {
                write!(f, "{version} is installed and waits for a reboot")
            }
            Self::TrialUnconfirmed { version } => write!(
                f,
                "{version} runs on trial, unconfirmed; no update until it is confirmed or rolled back"
            ),
            Self::OutsideWindow { version, window } => write!(
                f,
                "{version} assigned, waits for its maintenance window ({window}); nothing downloaded"
            ),
            Self::Installed {
                version,
                slot,
                via_delta,
                downloaded,
                rebooted,
            } => write!(
                f,
                "updated to {version} in slot {slot:?} ({}, {downloaded} bytes downloaded); {}",
                if *via_delta { "delta" } else { "full image" },
                if *rebooted {
                    "rebooting"
                } else {
                    "it boots on trial at the next reset"
                }
            ),
        }
    }
}

/// A failed cycle: the step and why.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {source}")]
pub struct CycleError {
    /// The step that failed (also the `stage` of the report).
    pub stage: &'static str,
    /// Why.
    #[source]
    pub source: StepError,
}

/// The failure of one step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Flash or boot state.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Check-in or report.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The director's answer.
    #[error("assignment refused: {0}")]
    Assignment(#[from] otter_keys::wire::WireError),
    /// The rollout policy does not allow the assignment (or it has none).
    #[error(transparent)]
    Policy(#[from] PolicyRefusal),
    /// TUF.
    #[error(transparent)]
    Tuf(#[from] TufClientError),
    /// The assignment is not installable.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// Download.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// Install or verification of the written slot.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The state dir failed.
    #[error(transparent)]
    State(#[from] crate::state_dir::StateDirError),
    /// otter-boot refused the trial.
    #[error("trial request refused: {0}")]
    Trial(String),
    /// The reboot hook failed.
    #[error("reboot: {0}")]
    Reboot(String),
}

fn at<E: Into<StepError>>(stage: &'static str) -> impl FnOnce(E) -> CycleError {
    move |e| CycleError {
        stage,
        source: e.into(),
    }
}

impl Agent {
    /// One full update cycle (`otter-agent check`).
    pub async fn check(&self) -> Result<Outcome, CycleError> {
        // Reports an earlier cycle could not deliver go first.
        self.flush_outbox().await;
        let result = self.cycle().await;
        if let Err(e) = &result {
            tracing::warn!(stage = e.stage, error = %e.source, "update cycle failed");
            let event = Event::Failed {
                stage: e.stage.to_owned(),
                reason: truncate(&e.source.to_string(), 1000),
            };
            if e.stage != "checkin" {
                self.report(event).await;
            }
        }
        result
    }

    async fn cycle(&self) -> Result<Outcome, CycleError> {
        // 1. Signed check-in with what runs and what the bootloader last decided.
        let status = self.boot_status().await.map_err(at("checkin"))?;
        let running_slot = status.running();
        let running = self
            .device
            .slot_image(running_slot)
            .map_err(at("checkin"))?;
        let (counter, answer) = self
            .messenger()
            .check_in(|counter, timestamp| CheckIn {
                device_id: self.identity.device_id.clone(),
                counter,
                timestamp,
                current_version: running.header.version,
                image_sha256: running.sha256,
                slots: SlotReport {
                    running: running_slot,
                    confirmed: status.confirmed,
                    trial: status.trial.map(Into::into),
                },
                last_outcome: status.last_outcome.into(),
            })
            .await
            .map_err(at("checkin"))?;

        // 2. The director's assignment: its key, our id, our counter, not expired.
        let director = self.device.bundle().director;
        let assignment = answer
            .verify(&director, &self.identity.device_id, counter, unix_now())
            .map_err(at("assignment"))?;
        if let Some(trial) = status.trial.filter(|t| t.started) {
            return Ok(Outcome::TrialUnconfirmed {
                version: trial.version,
            });
        }
        let Some(assigned) = &assignment.target else {
            return Ok(Outcome::UpToDate {
                version: running.header.version,
            });
        };
        if assigned.sha256 == running.sha256 {
            return Ok(Outcome::UpToDate {
                version: running.header.version,
            });
        }
        if let Some(trial) = status.trial.filter(|t| !t.started) {
            return Ok(Outcome::WaitingForReboot {
                version: trial.version,
            });
        }

        if let Some(rejected) = self.rejected().find(&assigned.sha256) {
            return Err(at("select")(SelectError::Rejected {
                name: assigned.name.clone(),
                reason: rejected.reason.clone(),
            }));
        }

        // 2b. The fleet manager's signed rollout policy must allow it: key, board, image,
        // expiry, this device's bucket under the ceiling; outside its window we wait.
        if let Verdict::Wait { window, .. } =
            self.check_rollout_policy(assigned).map_err(at("policy"))?
        {
            return Ok(Outcome::OutsideWindow {
                version: assigned.version,
                window,
            });
        }

        // 3. Fresh, verified TUF metadata.
        let repo = self.tuf.refresh().await.map_err(at("tuf"))?;

        // 4–5. The assigned image as TUF lists it, and a delta if one fits.
        let hardware_id = self.device.bundle().hardware_id;
        let plan = select::plan(
            &repo,
            assigned,
            &Running {
                hardware_id: hardware_id.as_str(),
                version: running.header.version,
                sha256: running.sha256,
            },
            self.config.download.max_target_size,
        )
        .map_err(at("select"))?;

        // 6–8. Download, write the inactive slot, verify it; a delta falls back to full.
        let target = self
            .device
            .writable(crate::device::other(running_slot))
            .map_err(at("install"))?;
        let target_slot = target.slot();
        let expected = Expected {
            planned: plan.version,
            running: running.header.version,
            running_counter: running.header.security_counter,
            min_security_counter: status.min_security_counter,
            hardware_id,
        };
        let written = self
            .install(&repo, &plan, (running_slot, &running), &target, &expected)
            .await;
        let downloaded = match written {
            Ok(result) => result,
            Err(e) => {
                if let Err(invalidate) = self.device.invalidate(&target) {
                    tracing::error!(error = %invalidate, "could not invalidate the inactive slot");
                }
                return Err(e);
            }
        };

        // 8b. The policy once more, as time has passed since 2b: a slow download must not
        // carry the trial past the policy's expiry or out of its window. The slot is dropped
        // (the downloaded file stays, so a later cycle in the window installs from it).
        let refusal = match self.recheck_rollout_policy(assigned) {
            Ok(Verdict::Allowed { .. } | Verdict::Unchecked(_)) => None,
            Ok(Verdict::Wait { window, .. }) => Some(Ok(Outcome::OutsideWindow {
                version: assigned.version,
                window,
            })),
            Err(e) => Some(Err(at("policy")(e))),
        };
        if let Some(answer) = refusal {
            if let Err(e) = self.device.invalidate(&target) {
                tracing::error!(error = %e, "could not invalidate the inactive slot");
            }
            return answer;
        }

        // 9. Trial boot of the new slot (its hash recorded first, for a later rollback),
        // report, reboot.
        rejected::remember_trial(&self.state, &plan.full.sha256, plan.version)
            .map_err(at("trial"))?;
        if let Err(e) = self
            .device
            .control()
            .map_err(at("trial"))?
            .request_trial(target_slot)
        {
            rejected::forget_trial(&self.state);
            return Err(at("trial")(StepError::Trial(e.to_string())));
        }
        self.device.sync().map_err(at("trial"))?;
        let _ = std::fs::remove_dir_all(self.state.downloads_dir());
        self.forget_reported_outcome();
        self.report(Event::Installed {
            version: plan.version,
        })
        .await;
        let rebooted = (self.reboot)().map_err(|e| at("reboot")(StepError::Reboot(e)))?;
        Ok(Outcome::Installed {
            version: plan.version,
            slot: target_slot,
            via_delta: downloaded.1,
            downloaded: downloaded.0,
            rebooted,
        })
    }

    /// Steps 6–8; returns bytes downloaded and whether the delta was used.
    async fn install(
        &self,
        repo: &crate::tuf_client::Refreshed,
        plan: &Plan,
        (running_slot, running): (Slot, &crate::device::SlotImage),
        target: &crate::device::WritableSlot,
        expected: &Expected,
    ) -> Result<(u64, bool), CycleError> {
        let mut downloaded = 0;
        if let Some((delta, info)) = &plan.delta {
            let attempt = async {
                let (path, n) = self.download(repo, delta).await?;
                downloaded += n;
                install::apply_delta(
                    &self.device,
                    running_slot,
                    running.length,
                    &running.sha256,
                    target,
                    info,
                    &path,
                )
                .map_err(at("install"))?;
                install::verify_written(&self.device, target.slot(), &plan.full, expected)
                    .map_err(at("verify"))
            };
            match attempt.await {
                Ok(_) => return Ok((downloaded, true)),
                // The patch produced the signed bytes: the full image is the same refused image.
                Err(
                    e @ CycleError {
                        source:
                            StepError::Install(InstallError::Verify(_) | InstallError::Header(_)),
                        ..
                    },
                ) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "delta failed; falling back to the full image");
                    self.report(Event::Failed {
                        stage: "delta".into(),
                        reason: truncate(&format!("{e}; falling back to the full image"), 1000),
                    })
                    .await;
                }
            }
        }
        let (path, n) = self.download(repo, &plan.full).await?;
        downloaded += n;
        install::copy_full(&self.device, target, &path, plan.full.length).map_err(at("install"))?;
        install::verify_written(&self.device, target.slot(), &plan.full, expected)
            .map_err(at("verify"))?;
        Ok((downloaded, false))
    }

    /// Step 6: resumable, length-capped, hash-checked download into the state dir.
    async fn download(
        &self,
        repo: &crate::tuf_client::Refreshed,
        target: &TargetEntry,
    ) -> Result<(std::path::PathBuf, u64), CycleError> {
        let dir = self.state.downloads_dir();
        std::fs::create_dir_all(&dir).map_err(|source| {
            at("download")(DownloadError::Io {
                path: dir.clone(),
                source,
            })
        })?;
        let path = dir.join(format!("{}.part", hex::encode(target.sha256)));
        let url = repo.target_url(target).map_err(at("download"))?;
        self.report(Event::Downloading {
            target: target.name.clone(),
            bytes: 0,
            total: target.length,
        })
        .await;
        let mut progress = crate::progress::Progress::new(&target.name, target.length);
        let fetched = download::fetch(
            &self.client,
            &url,
            &path,
            target.length,
            &target.sha256,
            Options {
                attempts: self.config.download.attempts,
                backoff: self.config.download.backoff,
                min_speed: self.config.download.min_speed,
                min_speed_window: self.config.download.min_speed_window,
                progress: &mut |have, total| progress.update(have, total),
            },
        )
        .await
        .map_err(at("download"))?;
        progress.finish();
        Ok((path, fetched.transferred))
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
