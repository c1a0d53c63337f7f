//! A device's signed reports as its state in a rollout: the one mapping from report events
//! to [`DeviceState`]s ([`member_state`]), and the adapter that applies it to the device's
//! newest non-aborted membership and re-evaluates that rollout at once, so a failure over
//! the threshold pauses the rollout before the next device is admitted.

use jiff::Timestamp;
use otter_keys::wire::Event;

use super::state::DeviceState;
use super::store::{self, StoreError};
use crate::db::Db;

/// `Failed` stages that mean the release failed on this device: it was refused or did not
/// verify, install, boot or pass its health check. Any other stage (`download`, `tuf`,
/// `delta` fallback, `checkin`, `assignment`, `select`, `reboot`, `boot-state`) is a
/// transient or local trouble that must not pause a rollout over a network blip.
pub const RELEASE_FAILURE_STAGES: [&str; 6] =
    ["verify", "install", "trial", "boot", "health", "policy"];

/// The release of the membership a report is judged against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseFacts {
    /// Version text.
    pub version: String,
    /// Image SHA-256, hex.
    pub sha256: String,
}

/// Whether a `healthy` report vouches for `release`: the device-signed health of exactly
/// the release's image (the hash of what it booted), not of something with its version.
pub fn healthy_is_release(event: &Event, release: &ReleaseFacts) -> bool {
    match event {
        Event::Healthy { image_sha256, .. } => hex::encode(image_sha256) == release.sha256,
        _ => false,
    }
}

/// The state `event` puts a member of a rollout of `release` in, or `None` if it says
/// nothing about that release:
///
/// | event                                   | state         |
/// |-----------------------------------------|---------------|
/// | `downloading`                           | `downloading` |
/// | `installed {version = release}`         | `installed`   |
/// | `booted {version = release}`            | `booted`      |
/// | `healthy` of the release's image        | `healthy`     |
/// | `rolled_back {from = release}`          | `rolled_back` |
/// | `failed {stage in RELEASE_FAILURE_STAGES}` | `failed`   |
/// | anything else                           | unchanged     |
pub fn member_state(event: &Event, release: &ReleaseFacts) -> Option<DeviceState> {
    let is = |version: &otter_boot::image::Version| version.to_string() == release.version;
    match event {
        Event::Downloading { .. } => Some(DeviceState::Downloading),
        Event::Installed { version, .. } if is(version) => Some(DeviceState::Installed),
        Event::Booted { version, .. } if is(version) => Some(DeviceState::Booted),
        Event::Healthy { .. } if healthy_is_release(event, release) => Some(DeviceState::Healthy),
        Event::RolledBack { from, .. } if is(from) => Some(DeviceState::RolledBack),
        Event::Failed { stage, .. } if RELEASE_FAILURE_STAGES.contains(&stage.as_str()) => {
            Some(DeviceState::Failed)
        }
        _ => None,
    }
}

/// The state a member moves to from `current` on a report saying `reported`: a failure
/// stays counted (a later retry does not erase it), a healthy device only leaves for a
/// failure, and otherwise the newest report wins.
pub fn next_state(current: DeviceState, reported: DeviceState) -> DeviceState {
    if current.is_failure() || (current.is_success() && !reported.is_failure()) {
        current
    } else {
        reported
    }
}

/// Applies `event` from `device_id` to its membership in the newest non-aborted rollout it
/// belongs to, then evaluates that rollout. Returns the member's new state if it changed.
pub async fn record(
    db: &Db,
    device_id: &str,
    event: &Event,
    now: Timestamp,
) -> Result<Option<DeviceState>, StoreError> {
    let found: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT m.rollout_id, m.state, rel.version, rel.sha256 FROM rollout_members m \
         JOIN rollouts r ON r.id = m.rollout_id JOIN releases rel ON rel.id = r.release_id \
         WHERE m.device_id = $1 AND r.state <> 'aborted' \
         ORDER BY r.started_at DESC, rel.major DESC, rel.minor DESC, rel.patch DESC, r.id DESC \
         LIMIT 1",
    )
    .bind(device_id)
    .fetch_optional(db.pool())
    .await?;
    let Some((rollout_id, current, version, sha256)) = found else {
        return Ok(None);
    };
    let current = store::device_state(&current).ok_or_else(|| StoreError::Corrupt {
        id: rollout_id.clone(),
        what: "member state",
    })?;
    let Some(reported) = member_state(event, &ReleaseFacts { version, sha256 }) else {
        return Ok(None);
    };
    let next = next_state(current, reported);
    if next == current {
        return Ok(None);
    }
    store::set_member_state(db, &rollout_id, device_id, next, now).await?;
    tracing::info!(rollout = %rollout_id, device = %device_id, from = %current, to = %next, "rollout member state");
    store::evaluate(db, &rollout_id, now).await?;
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceState::*;

    fn release() -> ReleaseFacts {
        ReleaseFacts {
            version: "2.0.0".into(),
            sha256: "ab".repeat(32),
        }
    }

    fn v(text: &str) -> otter_boot::image::Version {
        text.parse().unwrap()
    }

    fn failed(stage: &str) -> Event {
        Event::Failed {
            stage: stage.into(),
            reason: "r".into(),
        }
    }

    #[test]
    fn downloading_is_downloading() {
        let e = Event::Downloading {
            target: "t".into(),
            bytes: 1,
            total: 2,
        };
        assert_eq!(member_state(&e, &release()), Some(Downloading));
    }

    #[test]
    fn installed_counts_only_for_the_release() {
        let e = |s| Event::Installed { version: v(s) };
        assert_eq!(member_state(&e("2.0.0"), &release()), Some(Installed));
        assert_eq!(member_state(&e("1.0.0"), &release()), None);
    }

    #[test]
    fn booted_counts_only_for_the_release() {
        let e = |s| Event::Booted {
            version: v(s),
            image_sha256: [0xab; 32],
        };
        assert_eq!(member_state(&e("2.0.0"), &release()), Some(Booted));
        assert_eq!(member_state(&e("1.0.0"), &release()), None);
    }

    #[test]
    fn healthy_counts_only_for_the_release_image() {
        let e = |s, image_sha256| Event::Healthy {
            version: v(s),
            image_sha256,
        };
        assert!(healthy_is_release(&e("2.0.0", [0xab; 32]), &release()));
        assert!(!healthy_is_release(&e("1.0.0", [0x01; 32]), &release()));
        // The release's version with another image (a forgery, or a rebuild) is no success.
        assert!(!healthy_is_release(&e("2.0.0", [0xac; 32]), &release()));
        assert_eq!(
            member_state(&e("2.0.0", [0xab; 32]), &release()),
            Some(Healthy)
        );
        assert_eq!(member_state(&e("2.0.0", [0xac; 32]), &release()), None);
    }

    #[test]
    fn rolled_back_counts_only_from_the_release() {
        let e = |s| Event::RolledBack { from: v(s) };
        assert_eq!(member_state(&e("2.0.0"), &release()), Some(RolledBack));
        assert_eq!(member_state(&e("3.0.0"), &release()), None);
    }

    #[test]
    fn failed_counts_for_release_failures_only() {
        for stage in RELEASE_FAILURE_STAGES {
            assert_eq!(
                member_state(&failed(stage), &release()),
                Some(Failed),
                "{stage}"
            );
        }
        for stage in [
            "download",
            "tuf",
            "delta",
            "checkin",
            "assignment",
            "select",
            "reboot",
            "boot-state",
        ] {
            assert_eq!(member_state(&failed(stage), &release()), None, "{stage}");
        }
    }

    #[test]
    fn failures_stick_and_healthy_leaves_only_for_a_failure() {
        assert_eq!(next_state(Failed, Downloading), Failed);
        assert_eq!(next_state(RolledBack, Healthy), RolledBack);
        assert_eq!(next_state(Healthy, Downloading), Healthy);
        assert_eq!(next_state(Healthy, RolledBack), RolledBack);
        assert_eq!(next_state(Assigned, Downloading), Downloading);
        assert_eq!(next_state(Booted, Healthy), Healthy);
    }
}
