//! The vendor's side of offline release signing (see [`super::delegation`]): the top-level
//! targets metadata written at `otter-keys init --offline-release`, and each new version of
//! the release role's metadata (`otter-keys sign-release`), which the server publishes but
//! cannot write.
//!
//! Files, like the roots: `KEYDIR/<N>.targets.json` and `KEYDIR/<N>.release.json`, one per
//! version, never overwritten. The server imports the newest `targets` from its key
//! directory; each `release` version is uploaded to it.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use otter_boot::image::Header;
use otter_boot::trust::{Anchors, TrustedKey};
use sha2::{Digest, Sha256};
use tough::TargetName;
use tough::editor::signed::SignedRole;
use tough::schema::{Delegations, Hashes, KeyHolder, Role as _, Root, Signed, Target, Targets};

use super::ceremony::{RootChange, SignedRootInfo, rotate_root_with, whole_seconds};
use super::delegation::{self, RELEASE_ROLE};
use super::store::{SPEC_VERSION, current_root};
use super::{TufError, block_on};
use crate::image::inspect;
use crate::keyset::{KeySet, KeySetError};
use crate::signer::Signer;
use crate::targets::{ImageInfo, TargetInfo, image_target_name};

/// What a ceremony wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMetadataInfo {
    /// `targets` or `release`.
    pub role: &'static str,
    /// Its version.
    pub version: u64,
    /// `KEYDIR/<version>.<role>.json`.
    pub path: PathBuf,
    /// SHA-256 of the file (hex).
    pub sha256: String,
    /// When it expires.
    pub expires: Timestamp,
    /// The targets it lists, sorted.
    pub targets: Vec<String>,
    /// Signatures on it.
    pub signatures: usize,
}

/// `dir/<version>.<role>.json`.
pub fn metadata_path(dir: &Path, role: &str, version: u64) -> PathBuf {
    dir.join(format!("{version}.{role}.json"))
}

/// The newest `dir/<N>.<role>.json` (parsed), if any.
pub fn newest_metadata(
    dir: &Path,
    role: &str,
) -> Result<Option<(PathBuf, Signed<Targets>)>, TufError> {
    let io = |source| TufError::Io {
        path: dir.to_owned(),
        source,
    };
    let suffix = format!(".{role}.json");
    let mut newest = None;
    for entry in fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        let version = name
            .to_str()
            .and_then(|n| n.strip_suffix(&suffix))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok());
        newest = newest.max(version);
    }
    let Some(version) = newest else {
        return Ok(None);
    };
    let path = metadata_path(dir, role, version);
    let metadata = read_targets(&path)?;
    if metadata.signed.version.get() != version {
        return Err(TufError::BadMetadata {
            what: path.display().to_string(),
            why: format!("it says version {}", metadata.signed.version),
        });
    }
    Ok(Some((path, metadata)))
}

/// Parses a targets-like metadata file.
pub fn read_targets(path: &Path) -> Result<Signed<Targets>, TufError> {
    let bytes = fs::read(path).map_err(|source| TufError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| TufError::BadMetadata {
        what: path.display().to_string(),
        why: e.to_string(),
    })
}

/// At `init --offline-release`: the top-level targets (version 1, signed by the targets key
/// for the newest root) that delegates images to the release keys and deltas to the deltas
/// key, and an empty release version 1 signed by the release keys. Both expire at `expires`.
pub fn write_delegating_targets(
    set: &KeySet,
    expires: Timestamp,
) -> Result<(SignedMetadataInfo, SignedMetadataInfo), TufError> {
    write_delegation(set, NonZeroU64::MIN, &[], expires)
}

/// Turns on offline release signing in a key set whose server already serves top-level
/// targets up to version `served` (signed with the online targets key): makes release keys
/// (`keys`, `threshold`) and a deltas key, replaces the targets key by a fresh offline one
/// with a root rotation (so the old, online one can sign nothing any more), and writes
/// top-level targets version `served + 1` delegating to them and release version 1 listing
/// `images` (what devices should still see). Copy the new root, targets, release, key set
/// and deltas key to the server and restart it.
pub fn enable_offline_release(
    set: &mut KeySet,
    (keys, threshold): (usize, usize),
    served: u64,
    images: &[Vec<u8>],
    expires: Timestamp,
) -> Result<(SignedRootInfo, SignedMetadataInfo, SignedMetadataInfo), TufError> {
    let expires = whole_seconds(expires)?;
    let version = served
        .checked_add(1)
        .and_then(NonZeroU64::new)
        .ok_or_else(|| TufError::BadMetadata {
            what: "served targets".into(),
            why: format!("version {served} cannot be incremented"),
        })?;
    // Everything that can fail on bad input before anything is written.
    let firmware: Vec<TrustedKey> = (set.firmware_public_keys()?.into_iter())
        .map(TrustedKey::new)
        .collect();
    let listed = images
        .iter()
        .map(|image| image_target(image, &firmware))
        .collect::<Result<Vec<_>, _>>()?;
    set.add_release_keys(keys, threshold)?;
    set.replace_targets_key()?;
    let change = RootChange {
        targets_key: true,
        ..RootChange::default()
    };
    let root = rotate_root_with(set, &change, expires)?;
    let (top, release) = write_delegation(set, version, &listed, expires)?;
    Ok((root, top, release))
}

/// Top-level targets `version` delegating to the key set's release and deltas keys, and
/// release version 1 listing `images`.
fn write_delegation(
    set: &KeySet,
    version: NonZeroU64,
    images: &[(TargetName, Target)],
    expires: Timestamp,
) -> Result<(SignedMetadataInfo, SignedMetadataInfo), TufError> {
    let release = set.release_keys().ok_or(KeySetError::NoReleaseSigning)?;
    let expires = whole_seconds(expires)?;
    let (_, root) = current_root(set.dir())?;
    let signers = release_signers(set)?;
    // The delegation names every release key: each must open now, or it would be left out.
    if signers.len() < release.keys.len() {
        return Err(TufError::NotEnoughReleaseKeys {
            threshold: release.keys.len(),
            available: signers.len(),
            unavailable: Vec::new(),
        });
    }
    let threshold = NonZeroU64::new(release.threshold as u64).ok_or(TufError::BadThreshold {
        threshold: release.threshold,
        keys: release.keys.len(),
    })?;
    let deltas = set.signer(&release.deltas)?;
    let top =
        delegation::delegating_targets(version, expires, &signers, threshold, deltas.as_ref())?;
    let targets_key = set.role_signer(crate::keyset::Role::Targets)?;
    let signed_top = Signing::from(sign_top_level(top, &root.signed, targets_key)?);
    let delegations = delegations_of(&signed_top.doc)?;
    let top_info = write(set.dir(), "targets", &signed_top)?;
    let mut first = Targets::new(SPEC_VERSION.to_owned(), NonZeroU64::MIN, expires);
    first.targets.extend(images.iter().cloned());
    let signed_release = sign_release_role(first, &delegations, &signers)?;
    let release_info = write(set.dir(), RELEASE_ROLE, &signed_release)?;
    Ok((top_info, release_info))
}

/// `otter-keys sign-release`: the next version of the release role's metadata, listing
/// everything the newest one lists plus `images` (signed Otter images, each checked against
/// the key set's firmware keys), expiring at `expires`. It starts from the newest
/// `KEYDIR/<N>.release.json`, or from `base` (e.g. what the server serves) when that is newer;
/// either must verify under the key set's top-level targets. Writes `KEYDIR/<N+1>.release.json`.
pub fn sign_release(
    set: &KeySet,
    images: &[Vec<u8>],
    base: Option<Signed<Targets>>,
    expires: Timestamp,
) -> Result<SignedMetadataInfo, TufError> {
    set.release_keys().ok_or(KeySetError::NoReleaseSigning)?;
    let (_, top) = newest_metadata(set.dir(), "targets")?.ok_or_else(|| TufError::BadMetadata {
        what: set.dir().display().to_string(),
        why: "no <N>.targets.json: run `otter-keys init --offline-release` first".into(),
    })?;
    // Only a top-level targets the root vouches for names the release keys: an edited file
    // in the key directory could otherwise add a key whose base we would re-sign.
    let (_, root) = current_root(set.dir())?;
    root.signed
        .verify_role(&top)
        .map_err(|e| TufError::BadMetadata {
            what: "the key directory's newest <N>.targets.json".into(),
            why: format!("not signed by the root's targets key(s): {e}"),
        })?;
    let delegations = delegations_of(&top)?;
    let own = newest_metadata(set.dir(), RELEASE_ROLE)?.map(|(_, m)| m);
    let current = match (own, base) {
        (Some(own), Some(base)) if base.signed.version > own.signed.version => base,
        (Some(own), _) => own,
        (None, Some(base)) => base,
        (None, None) => {
            return Err(TufError::BadMetadata {
                what: set.dir().display().to_string(),
                why: "no <N>.release.json to start from; give the server's with --from".into(),
            });
        }
    };
    delegation::check_delegated(&delegations, RELEASE_ROLE, &current)?;
    let version = current
        .signed
        .version
        .checked_add(1)
        .ok_or_else(|| TufError::BadMetadata {
            what: "release metadata".into(),
            why: "its version cannot be incremented".into(),
        })?;
    let mut next = Targets::new(SPEC_VERSION.to_owned(), version, whole_seconds(expires)?);
    next.targets = current.signed.targets.clone();
    let firmware: Vec<TrustedKey> = (set.firmware_public_keys()?.into_iter())
        .map(TrustedKey::new)
        .collect();
    for image in images {
        let (name, target) = image_target(image, &firmware)?;
        next.targets.insert(name, target);
    }
    let signed = sign_release_role(next, &delegations, &release_signers(set)?)?;
    write(set.dir(), RELEASE_ROLE, &signed)
}

/// The TUF target of a signed image, as the server lists a published release: its name,
/// length, SHA-256 and the header's facts. The image must verify under `firmware`.
pub fn image_target(
    image: &[u8],
    firmware: &[TrustedKey],
) -> Result<(TargetName, Target), TufError> {
    let bad = |why: String| TufError::Image(why);
    let header =
        Header::decode(image).map_err(|e| bad(format!("not a signed Otter image ({e})")))?;
    let anchors = Anchors {
        hardware_id: header.hardware_id,
        keys: firmware,
    };
    if let Some(v) = inspect(image, Some(&anchors)).verification
        && !v.ok
    {
        return Err(bad(format!(
            "{} {} does not verify under this key set's firmware keys: {}",
            header.hardware_id.as_str(),
            header.version,
            v.error.unwrap_or_default()
        )));
    }
    let raw = image_target_name(header.hardware_id.as_str(), header.version);
    let name = TargetName::new(raw.clone()).map_err(|e| bad(format!("{raw}: {e}")))?;
    let info = TargetInfo::Image(ImageInfo {
        hardware_id: header.hardware_id.as_str().to_owned(),
        version: header.version,
        security_counter: header.security_counter,
    });
    let target = Target {
        length: image.len() as u64,
        hashes: Hashes {
            sha256: Sha256::digest(image).to_vec().into(),
            _extra: HashMap::new(),
        },
        custom: info.to_custom(),
        _extra: HashMap::new(),
    };
    Ok((name, target))
}

/// The delegations of top-level targets metadata that delegates releases.
fn delegations_of(top: &Signed<Targets>) -> Result<Delegations, TufError> {
    top.signed
        .delegations
        .clone()
        .filter(|_| delegation::delegates_releases(&top.signed))
        .ok_or_else(|| TufError::BadMetadata {
            what: "top-level targets".into(),
            why: format!("it delegates no {RELEASE_ROLE} role"),
        })
}

/// Every release key that opens; an error when fewer than the threshold do.
fn release_signers(set: &KeySet) -> Result<Vec<Arc<dyn Signer>>, TufError> {
    let release = set.release_keys().ok_or(KeySetError::NoReleaseSigning)?;
    let mut signers = Vec::new();
    let mut unavailable = Vec::new();
    for name in &release.keys {
        match set.signer(name) {
            Ok(signer) => signers.push(signer),
            Err(e) => unavailable.push(format!("{name}: {e}")),
        }
    }
    if signers.len() < release.threshold {
        return Err(TufError::NotEnoughReleaseKeys {
            threshold: release.threshold,
            available: signers.len(),
            unavailable,
        });
    }
    Ok(signers)
}

fn sign_top_level(
    top: Targets,
    root: &Root,
    key: Arc<dyn Signer>,
) -> Result<SignedRole<Targets>, TufError> {
    let root = root.clone();
    let signed = block_on(async move {
        let keys: Vec<Box<dyn tough::key_source::KeySource>> =
            vec![Box::new(super::SignerKeySource::new(key))];
        SignedRole::new(
            top,
            &KeyHolder::Root(root),
            &keys,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .await
    })??;
    Ok(signed)
}

fn sign_release_role(
    release: Targets,
    delegations: &Delegations,
    signers: &[Arc<dyn Signer>],
) -> Result<Signing, TufError> {
    let signed = block_on(delegation::sign_delegated(
        release,
        RELEASE_ROLE,
        delegations,
        signers,
    ))??;
    let (_, doc) = signed.signed().clone().targets();
    // Self-check: what a client will verify.
    delegation::check_delegated(delegations, RELEASE_ROLE, &doc)?;
    Ok(Signing {
        buffer: signed.buffer().clone(),
        sha256: signed.sha256().to_vec(),
        doc,
    })
}

/// Signed metadata: the file and what it says.
struct Signing {
    buffer: Vec<u8>,
    sha256: Vec<u8>,
    doc: Signed<Targets>,
}

impl From<SignedRole<Targets>> for Signing {
    fn from(signed: SignedRole<Targets>) -> Self {
        Self {
            buffer: signed.buffer().clone(),
            sha256: signed.sha256().to_vec(),
            doc: signed.signed().clone(),
        }
    }
}

/// Writes `dir/<version>.<role>.json`, refusing to overwrite.
fn write(dir: &Path, role: &'static str, signed: &Signing) -> Result<SignedMetadataInfo, TufError> {
    let doc = &signed.doc;
    let version = doc.signed.version().get();
    let path = metadata_path(dir, role, version);
    let io = |source| TufError::Io {
        path: path.clone(),
        source,
    };
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(TufError::MetadataExists(path));
        }
        Err(e) => return Err(io(e)),
    };
    file.write_all(&signed.buffer).map_err(io)?;
    file.sync_all().map_err(io)?;
    let mut targets: Vec<String> = (doc.signed.targets.keys())
        .map(|n| n.raw().to_owned())
        .collect();
    targets.sort();
    Ok(SignedMetadataInfo {
        role,
        version,
        sha256: hex::encode(&signed.sha256),
        path,
        expires: doc.signed.expires,
        targets,
        signatures: doc.signatures.len(),
    })
}
