//! Steps 4 and 5: the assigned target must be in the signed TUF targets with the same hash
//! and length, for this board, newer than what runs — whatever the director says. Then the
//! cheapest way to get it: a delta from exactly the running image, else the full image.

use otter_boot::image::Version;
use otter_keys::targets::{DeltaInfo, TargetInfo, image_target_name};
use otter_keys::wire::AssignedTarget;

use crate::tuf_client::{Refreshed, TargetEntry, TufClientError};

/// Why the assignment cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The assigned target is not in TUF (or its metadata is unreadable).
    #[error(transparent)]
    Tuf(#[from] TufClientError),
    /// Director and TUF disagree about the image.
    #[error("director and TUF disagree on {name:?}: {what}")]
    Mismatch {
        /// The target.
        name: String,
        /// What differs.
        what: &'static str,
    },
    /// The target is not a full image (or not named as one).
    #[error("target {0:?} is not a firmware image")]
    NotAnImage(String),
    /// The image is for another board.
    #[error("target {name:?} is for hardware {found:?}, this device is {expected:?}")]
    WrongHardware {
        /// The target.
        name: String,
        /// Its board.
        found: String,
        /// Ours.
        expected: String,
    },
    /// Not newer than the running image.
    #[error("refusing downgrade: target {target} is not newer than the running {running}")]
    Downgrade {
        /// Target version.
        target: Version,
        /// Running version.
        running: Version,
    },
    /// This device rejected the image before (its trial failed or was rolled back).
    #[error("refusing {name:?}: this device rejected that image before ({reason})")]
    Rejected {
        /// The target.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Bigger than the configured download limit.
    #[error("target {name:?} is {length} bytes, above the limit of {limit}")]
    TooLarge {
        /// The target.
        name: String,
        /// Its length.
        length: u64,
        /// The limit.
        limit: u64,
    },
}

/// What to download.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The full image (always known: it is the fallback and the result to check).
    pub full: TargetEntry,
    /// Its version.
    pub version: Version,
    /// A patch from the running image, if one is published.
    pub delta: Option<(TargetEntry, DeltaInfo)>,
}

/// What the device runs now.
pub struct Running<'a> {
    /// Board.
    pub hardware_id: &'a str,
    /// Version.
    pub version: Version,
    /// SHA-256 of the whole running image.
    pub sha256: [u8; 32],
}

/// Checks the assignment against TUF and picks delta or full image.
pub fn plan(
    repo: &Refreshed,
    assigned: &AssignedTarget,
    running: &Running<'_>,
    limit: u64,
) -> Result<Plan, SelectError> {
    let full = repo.target(&assigned.name)?;
    let mismatch = |what| SelectError::Mismatch {
        name: assigned.name.clone(),
        what,
    };
    if full.sha256 != assigned.sha256 {
        return Err(mismatch("sha256"));
    }
    if full.length != assigned.length {
        return Err(mismatch("length"));
    }
    let TargetInfo::Image(image) = &full.info else {
        return Err(SelectError::NotAnImage(full.name.clone()));
    };
    // An image is only ever `firmware/<hw>/<version>.img`: the one name the vendor's
    // release role (under offline release signing) vouches for. An entry elsewhere that
    // calls itself an image, e.g. one the online deltas role lists under `deltas/`, is not.
    if full.name != image_target_name(&image.hardware_id, image.version) {
        return Err(SelectError::NotAnImage(full.name.clone()));
    }
    if image.version != assigned.version {
        return Err(mismatch("version"));
    }
    if image.hardware_id != running.hardware_id {
        return Err(SelectError::WrongHardware {
            name: full.name.clone(),
            found: image.hardware_id.clone(),
            expected: running.hardware_id.to_owned(),
        });
    }
    if image.version <= running.version {
        return Err(SelectError::Downgrade {
            target: image.version,
            running: running.version,
        });
    }
    if full.length > limit {
        return Err(SelectError::TooLarge {
            name: full.name.clone(),
            length: full.length,
            limit,
        });
    }
    let delta = repo
        .targets()
        .into_iter()
        .filter_map(|t| match &t.info {
            TargetInfo::Delta(d) => Some((t.clone(), d.clone())),
            TargetInfo::Image(_) => None,
        })
        .filter(|(t, d)| {
            d.to_target == full.name
                && d.to_sha256 == full.sha256
                && d.to_length == full.length
                && d.from_sha256 == running.sha256
                && t.length < full.length
        })
        .min_by_key(|(t, _)| t.length);
    Ok(Plan {
        version: image.version,
        full,
        delta,
    })
}
