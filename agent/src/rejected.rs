//! Images this device has given up on: a trial that failed its health check, one the
//! bootloader rolled back or refused to boot. The list lives in the state dir (written
//! atomically) and the cycle refuses to install any image on it, so a director that assigns
//! the same release again cannot drive the device into an endless install, fail, roll back
//! loop.
//!
//! The hash of the image put on trial is recorded before the trial request, so a rollback the
//! bootloader reports later (it names only a version) is pinned to the exact image.

use std::path::{Path, PathBuf};

use otter_boot::image::Version;
use otter_boot::state::{BootState, Outcome as BootOutcome, Trial};
use serde::{Deserialize, Serialize};

use crate::agent::Agent;
use crate::state_dir::{StateDir, StateDirError, write_atomic};

/// At most this many entries are kept (the oldest go first).
pub const MAX_REJECTED: usize = 64;

/// One rejected image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// SHA-256 of the whole image, hex.
    pub sha256: String,
    /// Its version.
    pub version: String,
    /// Why it was rejected.
    pub reason: String,
}

/// The rejected-image list of a state dir.
#[derive(Debug)]
pub struct Rejected {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// The image last put on trial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrialImage {
    sha256: String,
    version: String,
}

impl Rejected {
    /// Loads the list (empty if none was written).
    pub fn load(state: &StateDir) -> Result<Self, StateDirError> {
        let path = state.root().join("rejected-images.json");
        let entries: Vec<Entry> = read_json(&path)?.unwrap_or_default();
        Ok(Self { path, entries })
    }

    /// The entry for `sha256`, if that image was rejected.
    pub fn find(&self, sha256: &[u8; 32]) -> Option<&Entry> {
        let hex = hex::encode(sha256);
        self.entries.iter().find(|e| e.sha256 == hex)
    }

    /// Adds an image (once) and writes the list.
    pub fn add(
        &mut self,
        sha256: &[u8; 32],
        version: Version,
        reason: &str,
    ) -> Result<(), StateDirError> {
        if self.find(sha256).is_some() {
            return Ok(());
        }
        self.entries.push(Entry {
            sha256: hex::encode(sha256),
            version: version.to_string(),
            reason: reason.to_owned(),
        });
        let excess = self.entries.len().saturating_sub(MAX_REJECTED);
        self.entries.drain(..excess);
        write_json(&self.path, &self.entries)
    }
}

/// Records the image about to be put on trial (before the trial request).
pub fn remember_trial(
    state: &StateDir,
    sha256: &[u8; 32],
    version: Version,
) -> Result<(), StateDirError> {
    let record = TrialImage {
        sha256: hex::encode(sha256),
        version: version.to_string(),
    };
    write_json(&trial_path(state), &record)
}

/// Forgets the trial record (the trial was confirmed, or never requested).
pub fn forget_trial(state: &StateDir) {
    let _ = std::fs::remove_file(trial_path(state));
}

fn trial_path(state: &StateDir) -> PathBuf {
    state.root().join("trial-image.json")
}

impl Agent {
    /// The rejected-image list; an unreadable one is logged and treated as empty (it is
    /// rewritten at the next rejection) rather than blocking every update.
    pub(crate) fn rejected(&self) -> Rejected {
        Rejected::load(&self.state).unwrap_or_else(|e| {
            tracing::error!(error = %e, "rejected-image list unreadable; starting a new one");
            Rejected {
                path: self.state.root().join("rejected-images.json"),
                entries: Vec::new(),
            }
        })
    }

    /// After a boot: a trial the bootloader rolled back or refused is rejected; a confirmed
    /// one needs no record any more.
    pub(crate) fn record_boot_outcome(&self, status: &BootState) {
        let (version, reason) = match status.last_outcome {
            BootOutcome::RolledBack { from } => (from, "rolled back by the bootloader".to_owned()),
            BootOutcome::TrialRejected { version, reason } => (
                version,
                format!("the bootloader refused to boot it: {reason:?}"),
            ),
            BootOutcome::Confirmed { .. } => {
                forget_trial(&self.state);
                return;
            }
            _ => return,
        };
        // A newer trial is pending: the outcome is about an earlier one, already handled.
        if status.trial.is_some() {
            return;
        }
        let path = trial_path(&self.state);
        let Ok(Some(trial)) = read_json::<TrialImage>(&path) else {
            return;
        };
        let sha = hex::decode(&trial.sha256)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        if let Some(sha) = sha.filter(|_| trial.version == version.to_string()) {
            self.reject(&sha, version, &reason);
        }
        forget_trial(&self.state);
    }

    /// A running trial failed its health check: reject its image, abandon the trial and
    /// reboot now, so the bootloader rolls back at this reset instead of booting the trial
    /// until its attempts run out.
    pub(crate) fn reject_unhealthy_trial(&self, trial: &Trial, reason: &str) {
        match self.device.slot_image(trial.slot) {
            Ok(image) => self.reject(
                &image.sha256,
                trial.version,
                &format!("health check failed: {reason}"),
            ),
            Err(e) => tracing::error!(error = %e, "cannot hash the unhealthy trial image"),
        }
        self.roll_back_now();
    }

    /// Why the running trial, whose image hashes to `image_sha256`, must not be confirmed:
    /// its image is on the rejected list (it was abandoned before, say, and the agent
    /// restarted before the reset).
    pub(crate) fn rejected_trial(&self, image_sha256: &[u8; 32]) -> Option<String> {
        self.rejected()
            .find(image_sha256)
            .map(|e| format!("the image was rejected before: {}", e.reason))
    }

    /// Abandons the running trial and reboots now, so the bootloader rolls back at this
    /// reset instead of booting the trial until its attempts run out.
    pub(crate) fn roll_back_now(&self) {
        if let Err(e) = self.abandon_trial() {
            tracing::error!(error = %e, "could not abandon the trial: it boots again until its attempts run out");
        }
        match (self.reboot)() {
            Ok(true) => tracing::info!("rebooting so the bootloader rolls back"),
            Ok(false) => tracing::warn!(
                "no reboot command configured: the bootloader rolls back at the next reset"
            ),
            Err(e) => tracing::error!(error = %e, "the reboot after a failed health check failed"),
        }
    }

    fn abandon_trial(&self) -> Result<(), crate::device::DeviceError> {
        self.device
            .control()?
            .abandon_trial()
            .map_err(crate::device::DeviceError::Boot)?;
        self.device.sync()
    }

    fn reject(&self, sha256: &[u8; 32], version: Version, reason: &str) {
        match self.rejected().add(sha256, version, reason) {
            Ok(()) => {
                tracing::warn!(%version, sha256 = %hex::encode(sha256), %reason, "image rejected; it is not installed again")
            }
            Err(e) => tracing::error!(error = %e, "could not record the rejected image"),
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateDirError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateDirError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StateDirError::Corrupt {
            path: path.to_path_buf(),
            why: e.to_string(),
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateDirError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StateDirError::Corrupt {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_persist_once_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let v: Version = "1.2.0".parse().unwrap();
        let mut list = Rejected::load(&state).unwrap();
        assert!(list.find(&[1; 32]).is_none());
        list.add(&[1; 32], v, "health").unwrap();
        list.add(&[1; 32], v, "again").unwrap();
        let again = Rejected::load(&state).unwrap();
        assert_eq!(again.entries.len(), 1);
        assert_eq!(again.find(&[1; 32]).unwrap().reason, "health");
        let mut list = again;
        for i in 0..MAX_REJECTED as u8 + 5 {
            list.add(&[i.wrapping_add(2); 32], v, "x").unwrap();
        }
        let full = Rejected::load(&state).unwrap();
        assert_eq!(full.entries.len(), MAX_REJECTED);
        assert!(full.find(&[1; 32]).is_none(), "the oldest entry goes first");
        std::fs::write(dir.path().join("rejected-images.json"), "garbage").unwrap();
        assert!(matches!(
            Rejected::load(&state),
            Err(StateDirError::Corrupt { .. })
        ));
    }
}
