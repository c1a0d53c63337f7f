//! The unsigned content of targets, snapshot and timestamp metadata: targets from the
//! release and delta rows (with Otter's custom fields), snapshot and timestamp pointing at
//! the file below them.

use std::collections::HashMap;
use std::num::NonZeroU64;

use otter_boot::image::Version;
use otter_keys::targets::{
    DELTA_COMPRESSION, DELTA_ZSTD_WINDOW_LOG, DeltaInfo, ImageInfo, TargetInfo,
};
use otter_keys::tuf::SPEC_VERSION;
use tough::TargetName;
use tough::schema::{Hashes, Metafile, Snapshot, Target, Targets, Timestamp};

use super::TufError;
use super::store::{DeltaRow, ReleaseRow};

/// A signed metadata file as the role above it describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct MetaRef {
    /// Its version.
    pub(super) version: NonZeroU64,
    /// SHA-256 of the file.
    pub(super) sha256: Vec<u8>,
    /// Length of the file.
    pub(super) length: u64,
}

/// Targets metadata listing every release as an image target and every delta as a delta
/// target.
pub(super) fn targets(
    version: NonZeroU64,
    expires: jiff::Timestamp,
    releases: &[ReleaseRow],
    deltas: &[DeltaRow],
) -> Result<Targets, TufError> {
    let mut targets = Targets::new(SPEC_VERSION.to_owned(), version, expires);
    for release in releases {
        let name = &release.target_name;
        let info = TargetInfo::Image(ImageInfo {
            hardware_id: release.hardware_id.clone(),
            version: parse_version(name, &release.version)?,
            security_counter: u32::try_from(release.security_counter)
                .map_err(|_| bad(name, "security counter out of range"))?,
        });
        let target = target(name, &release.sha256, release.length, &info)?;
        targets.targets.insert(target_name(name)?, target);
    }
    for delta in deltas {
        let name = &delta.target_name;
        let info = TargetInfo::Delta(DeltaInfo {
            hardware_id: delta.hardware_id.clone(),
            from_version: parse_version(name, &delta.from_version)?,
            from_sha256: sha256(name, &delta.from_sha256)?,
            to_target: delta.to_target.clone(),
            to_version: parse_version(name, &delta.to_version)?,
            to_sha256: sha256(name, &delta.to_sha256)?,
            to_length: length(name, delta.to_length)?,
            compression: DELTA_COMPRESSION.to_owned(),
            window_log: DELTA_ZSTD_WINDOW_LOG,
        });
        let target = target(name, &delta.sha256, delta.length, &info)?;
        targets.targets.insert(target_name(name)?, target);
    }
    Ok(targets)
}

/// Snapshot metadata naming each targets-like file (`targets.json`, and with delegations
/// `release.json` and `deltas.json`) by version, length and hash.
pub(super) fn snapshot(
    version: NonZeroU64,
    expires: jiff::Timestamp,
    files: &[(String, MetaRef)],
) -> Snapshot {
    let mut snapshot = Snapshot::new(SPEC_VERSION.to_owned(), version, expires);
    for (name, file) in files {
        snapshot.meta.insert(name.clone(), metafile(file));
    }
    snapshot
}

/// Timestamp metadata naming `snapshot` (version, length and hash).
pub(super) fn timestamp(
    version: NonZeroU64,
    expires: jiff::Timestamp,
    snapshot: &MetaRef,
) -> Timestamp {
    let mut timestamp = Timestamp::new(SPEC_VERSION.to_owned(), version, expires);
    timestamp
        .meta
        .insert("snapshot.json".to_owned(), metafile(snapshot));
    timestamp
}

fn metafile(file: &MetaRef) -> Metafile {
    Metafile {
        length: Some(file.length),
        hashes: Some(Hashes {
            sha256: file.sha256.clone().into(),
            _extra: HashMap::new(),
        }),
        version: file.version,
        _extra: HashMap::new(),
    }
}

fn target(name: &str, sha256_hex: &str, len: i64, info: &TargetInfo) -> Result<Target, TufError> {
    Ok(Target {
        length: length(name, len)?,
        hashes: Hashes {
            sha256: sha256(name, sha256_hex)?.to_vec().into(),
            _extra: HashMap::new(),
        },
        custom: info.to_custom(),
        _extra: HashMap::new(),
    })
}

fn target_name(name: &str) -> Result<TargetName, TufError> {
    TargetName::new(name).map_err(|e| bad(name, &e.to_string()))
}

fn parse_version(name: &str, text: &str) -> Result<Version, TufError> {
    text.parse()
        .map_err(|_| bad(name, &format!("version {text:?} is not major.minor.patch")))
}

fn sha256(name: &str, hex_text: &str) -> Result<[u8; 32], TufError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out)
        .map_err(|_| bad(name, &format!("{hex_text:?} is not a hex SHA-256")))?;
    Ok(out)
}

fn length(name: &str, len: i64) -> Result<u64, TufError> {
    u64::try_from(len).map_err(|_| bad(name, &format!("negative length {len}")))
}

fn bad(name: &str, why: &str) -> TufError {
    TufError::BadTarget {
        name: name.to_owned(),
        why: why.to_owned(),
    }
}
