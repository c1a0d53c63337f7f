//! Which image a device should run: the director asks the rollout engine. A device gets a
//! release only through a started rollout of its hardware id that has it as a member or
//! admits it now; a device outside every rollout keeps its version (no newest-wins). The
//! release must also be listed in the signed TUF targets and not turned down by the device.

use jiff::Timestamp;
use otter_keys::wire::{RolloutPolicy, Signed};

use crate::db::Db;
use crate::devices::rejections;
use crate::devices::store::Device;
use crate::error::ApiError;
use crate::rollouts::store::{self, Changes, Entry, StoreError, Stored};
use crate::rollouts::{Admission, DeviceFacts, DeviceState, Member, Rollout, admission};
use crate::tuf::listed::signed_targets;

/// A release chosen for a device.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AssignedRelease {
    /// Release id.
    pub id: String,
    /// TUF target name of the full image.
    pub target_name: String,
    /// Version text.
    pub version: String,
    /// Image SHA-256, hex.
    pub sha256: String,
    /// Image length.
    pub length: i64,
}

/// What the director tells a device: the release, and the rollout (with its signed policy,
/// which the assignment carries so the device can check it) that gave it.
#[derive(Clone, Debug)]
pub struct Directed {
    /// The release to run.
    pub release: AssignedRelease,
    /// The rollout's id.
    pub rollout_id: String,
    /// The rollout's signed policy, as the fleet manager uploaded it.
    pub policy: Signed<RolloutPolicy>,
}

/// The release `device` should run, or `None` to keep what it runs (see [`direct`]).
pub async fn target_for(db: &Db, device: &Device) -> Result<Option<AssignedRelease>, ApiError> {
    Ok(direct(db, device, Timestamp::now())
        .await?
        .map(|directed| directed.release))
}

/// The director: for the device's hardware id, the started rollouts it is a member of and
/// the running ones, newest start first. The first that has it as a member or admits it
/// now (recording the admission) gives its release; one that holds it is passed over. A
/// member of an aborted rollout gets nothing (it keeps what it runs, older rollouts are not
/// consulted). A rollout whose release the signed TUF targets do not list (same hash and
/// length) or that this device turned down is passed over, before any admission.
pub async fn direct(
    db: &Db,
    device: &Device,
    now: Timestamp,
) -> Result<Option<Directed>, ApiError> {
    let candidates = store::for_device(db, &device.hardware_id, &device.id)
        .await
        .map_err(ApiError::internal)?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let memberships = store::memberships(db, &device.id)
        .await
        .map_err(ApiError::internal)?;
    let facts = DeviceFacts {
        id: device.id.clone(),
        hardware_id: device.hardware_id.clone(),
        tags: crate::devices::tags::of(db, &device.id).await?,
    };
    let listed = signed_targets(db).await?;
    let rejected = rejections::rejected(db, &device.id).await?;
    for stored in candidates {
        let id = stored.spec.id.clone();
        let member = memberships.iter().find(|(r, _)| *r == id).map(|(_, m)| m);
        if member.is_some() && stored.progress.state == crate::rollouts::RolloutState::Aborted {
            return Ok(None);
        }
        // A member is assigned only what its device would accept: not under an expired policy.
        if member.is_some() && !may_keep(&stored, &facts, now) {
            continue;
        }
        // Most check-ins are of devices a rollout holds (above the cutoff, another cohort):
        // the engine says so from the device alone, before any further query.
        if member.is_none() && !may_admit(&stored, &facts, now) {
            continue;
        }
        let Some(release) = release_of(db, &stored).await? else {
            continue;
        };
        if rejected.contains(&release.id)
            || !listed.lists(&release.target_name, &release.sha256, release.length)
        {
            continue;
        }
        let Some(policy) = stored.policy.clone() else {
            continue;
        };
        if member.is_some() || admit(db, stored, &facts, now).await? {
            return Ok(Some(Directed {
                release,
                rollout_id: id,
                policy,
            }));
        }
    }
    Ok(None)
}

async fn release_of(db: &Db, stored: &Stored) -> Result<Option<AssignedRelease>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT id, target_name, version, sha256, length FROM releases WHERE id = $1",
    )
    .bind(&stored.spec.release.id)
    .fetch_optional(db.pool())
    .await?)
}

/// Whether `stored` could admit the non-member `device` at `now`. Asked without the recent
/// admissions, the engine can only be more permissive (the rate limit is what they add), so
/// `false` is final and saves [`admit`]'s queries.
fn may_admit(stored: &Stored, device: &DeviceFacts, now: Timestamp) -> bool {
    match stored.rollout() {
        Ok(Some(rollout)) => !matches!(
            admission(&rollout, &stored.progress, &[], device, now),
            Admission::Hold(_)
        ),
        _ => false,
    }
}

/// Whether the member `device` is still assigned `stored`'s release at `now` (the engine
/// says [`Admission::Member`]; not so under an expired policy).
fn may_keep(stored: &Stored, device: &DeviceFacts, now: Timestamp) -> bool {
    let Ok(Some(rollout)) = stored.rollout() else {
        return false;
    };
    let member = Member {
        device_id: device.id.clone(),
        stage: 0,
        state: DeviceState::Assigned,
        admitted_at: now,
    };
    matches!(
        admission(&rollout, &stored.progress, &[member], device, now),
        Admission::Member { .. }
    )
}

/// Asks the engine whether `device` joins `stored` now and records the admission with a
/// compare-and-swap, so concurrent check-ins never admit past the rate limit. Whether the
/// device is (now) a member.
async fn admit(
    db: &Db,
    mut stored: Stored,
    device: &DeviceFacts,
    now: Timestamp,
) -> Result<bool, ApiError> {
    let internal = |e: StoreError| ApiError::internal(e);
    for _ in 0..store::SWAP_ATTEMPTS {
        let rollout: Rollout = match stored.rollout() {
            Ok(Some(rollout)) => rollout,
            _ => return Ok(false),
        };
        if !rollout.includes(device) {
            return Ok(false);
        }
        let members = store::admission_members(db, rollout.id(), &device.id, now)
            .await
            .map_err(internal)?;
        match admission(&rollout, &stored.progress, &members, device, now) {
            Admission::Member { .. } => return Ok(true),
            Admission::Hold(_) => return Ok(false),
            Admission::Admit { stage, entry } => {
                let changes = Changes {
                    admit: Some(Member {
                        device_id: device.id.clone(),
                        stage,
                        state: DeviceState::Assigned,
                        admitted_at: now,
                    }),
                    entries: vec![Entry::from(&entry)],
                    ..Changes::default()
                };
                if store::swap(db, rollout.id(), stored.revision, &changes, now)
                    .await
                    .map_err(internal)?
                {
                    tracing::info!(rollout = %rollout.id(), device = %device.id, stage = stage + 1, "device admitted");
                    return Ok(true);
                }
            }
        }
        match store::load(db, rollout.id()).await.map_err(internal)? {
            Some(fresh) => stored = fresh,
            None => return Ok(false),
        }
    }
    tracing::warn!(device = %device.id, rollout = %stored.spec.id, "admission contended; the device asks again at its next check-in");
    Ok(false)
}
