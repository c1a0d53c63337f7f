//! The root ceremony: the first signed root (`otter-keys init`) and root rotation
//! (`otter-keys rotate-root`).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use jiff::Timestamp;
use tough::editor::signed::SignedRole;
use tough::key_source::KeySource;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{KeyHolder, Role as _, RoleKeys, RoleType, Root, Signed};

use super::key_source::{SignerKeySource, tuf_key, tuf_key_id};
use super::store::{ROOT_FILE, SPEC_VERSION, current_root, root_version_path, write_root_version};
use super::{TufError, block_on};
use crate::keyset::{KeySet, Role};
use crate::signer::Signer;

/// How a rotation changes the root keys. Other roles stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootChange {
    /// Current root key names to retire; each gets a fresh replacement key. Retired key
    /// files stay in the key directory.
    pub replace: Vec<String>,
    /// Further fresh root keys to add.
    pub add: usize,
    /// The new root threshold; `None` keeps the current one.
    pub threshold: Option<usize>,
    /// Name the key set's current targets key (after [`KeySet::replace_targets_key`]) as
    /// the targets role's one key.
    pub targets_key: bool,
}

/// One key of the root role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootKeyInfo {
    /// Its name in the key directory.
    pub name: String,
    /// Its TUF key id (hex).
    pub key_id: String,
}

/// What a root ceremony wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRootInfo {
    /// The root version.
    pub version: u64,
    /// `KEYDIR/<version>.root.json` (also copied to `KEYDIR/root.json`).
    pub path: PathBuf,
    /// SHA-256 of the file (hex), to compare out of band.
    pub sha256: String,
    /// When the root expires (whole seconds).
    pub expires: Timestamp,
    /// Root signatures required.
    pub threshold: u64,
    /// The root keys this version lists.
    pub root_keys: Vec<RootKeyInfo>,
    /// Names of root keys created by this ceremony.
    pub new_keys: Vec<String>,
    /// Signatures on the file.
    pub signatures: usize,
}

/// A loaded key with its name and TUF key id.
struct Named {
    name: String,
    signer: Arc<dyn Signer>,
    id: Decoded<Hex>,
}

impl Named {
    fn load(set: &KeySet, name: &str) -> Result<Self, TufError> {
        Self::new(name, set.signer(name)?)
    }

    fn new(name: &str, signer: Arc<dyn Signer>) -> Result<Self, TufError> {
        let id = tuf_key_id(signer.as_ref())?;
        Ok(Self {
            name: name.to_owned(),
            signer,
            id,
        })
    }

    fn source(&self) -> Box<dyn KeySource> {
        Box::new(SignerKeySource::new(Arc::clone(&self.signer)))
    }
}

/// Writes root version 1 for the key set: the root keys with the key set's threshold, and
/// the targets, snapshot and timestamp keys with threshold 1, signed by every root key.
/// Writes `KEYDIR/1.root.json` and `KEYDIR/root.json` (same bytes); refuses if either exists.
///
/// `expires` is truncated to whole seconds (the TUF date form other clients parse) and
/// must lie in the future.
pub fn write_initial_root(set: &KeySet, expires: Timestamp) -> Result<SignedRootInfo, TufError> {
    let expires = whole_seconds(expires)?;
    let dir = set.dir();
    for path in [root_version_path(dir, 1), dir.join(ROOT_FILE)] {
        if path.exists() {
            return Err(TufError::RootExists(path));
        }
    }
    let manifest = set.manifest();
    let root_keys = manifest
        .root
        .keys
        .iter()
        .map(|name| Named::load(set, name))
        .collect::<Result<Vec<_>, _>>()?;
    let threshold = checked_threshold(manifest.root.threshold, &root_keys)?;

    let mut keys = HashMap::new();
    let mut roles = HashMap::new();
    roles.insert(RoleType::Root, role_keys(&root_keys, threshold));
    for key in &root_keys {
        keys.insert(key.id.clone(), tuf_key(key.signer.as_ref()));
    }
    for (role, tuf_role) in [
        (Role::Targets, RoleType::Targets),
        (Role::Snapshot, RoleType::Snapshot),
        (Role::Timestamp, RoleType::Timestamp),
    ] {
        let key = Named::new("", set.role_signer(role)?)?;
        keys.insert(key.id.clone(), tuf_key(key.signer.as_ref()));
        roles.insert(
            tuf_role,
            role_keys(std::slice::from_ref(&key), NonZeroU64::MIN),
        );
    }
    let root = Root {
        spec_version: SPEC_VERSION.to_owned(),
        consistent_snapshot: true,
        version: NonZeroU64::MIN,
        expires,
        keys,
        roles,
        _extra: HashMap::new(),
    };
    let signed = sign_root(root, &root_keys, None)?;
    finish(set, signed, &root_keys, Vec::new())
}

/// Rotates the root: `replace` names current root keys to retire (each gets a fresh key),
/// `threshold` sets the new root threshold (default: unchanged). See [`rotate_root_with`].
pub fn rotate_root(
    set: &mut KeySet,
    replace: &[String],
    threshold: Option<usize>,
    expires: Timestamp,
) -> Result<SignedRootInfo, TufError> {
    let change = RootChange {
        replace: replace.to_vec(),
        add: 0,
        threshold,
        targets_key: false,
    };
    rotate_root_with(set, &change, expires)
}

/// Writes root version N+1 (N = the newest `<N>.root.json`) with the root keys changed as
/// `change` says and every other role unchanged. It is signed by the available keys of
/// root N (at least N's threshold of them, or nothing is changed) and by all keys of the
/// new root, so clients that trust N accept it (TUF spec 5.3). Writes
/// `KEYDIR/<N+1>.root.json`, updates `KEYDIR/root.json` and the key set's root keys.
///
/// Root keys of version N may be lost (files missing), as long as a threshold remain; a
/// kept key must be loadable. All checks run before any key is created. Should writing
/// fail after the key set was updated, run the rotation again without `replace`: keys of
/// root N are found among the key directory's files, retired ones included.
pub fn rotate_root_with(
    set: &mut KeySet,
    change: &RootChange,
    expires: Timestamp,
) -> Result<SignedRootInfo, TufError> {
    let expires = whole_seconds(expires)?;
    let (version, old) = current_root(set.dir())?;
    let next = version
        .checked_add(1)
        .and_then(NonZeroU64::new)
        .ok_or_else(|| TufError::Malformed {
            what: root_version_path(set.dir(), version).display().to_string(),
            why: "version cannot be incremented".into(),
        })?;

    // Validate the change.
    let current = set.manifest().root.clone();
    let mut seen = HashSet::new();
    for name in &change.replace {
        if !current.keys.contains(name) {
            return Err(TufError::UnknownRootKey {
                name: name.clone(),
                current: current.keys.clone(),
            });
        }
        if !seen.insert(name) {
            return Err(TufError::DuplicateRootKey(name.clone()));
        }
    }
    let keep: Vec<String> = current
        .keys
        .iter()
        .filter(|k| !change.replace.contains(k))
        .cloned()
        .collect();
    let fresh = change.replace.len() + change.add;
    let total = keep.len() + fresh;
    let threshold = change.threshold.unwrap_or(current.threshold);
    if threshold == 0 || threshold > total {
        return Err(TufError::BadThreshold {
            threshold,
            keys: total,
        });
    }
    let kept = keep
        .iter()
        .map(|name| match set.signer(name) {
            Ok(key) => Named::new(name, key),
            Err(source) => Err(TufError::KeptKeyUnavailable {
                name: name.clone(),
                source,
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let old_signers = old_root_signers(set, &old.signed, version, &current.keys)?;

    // Create the new keys and build the new root.
    let new_names = set.set_root_keys(&keep, fresh, threshold)?;
    let mut new_keys = kept;
    for name in &new_names {
        new_keys.push(Named::load(set, name)?);
    }
    let threshold = checked_threshold(threshold, &new_keys)?;
    let mut root = old.signed.clone();
    root.version = next;
    root.expires = expires;
    let extra = root
        .roles
        .get(&RoleType::Root)
        .map(|r| r._extra.clone())
        .unwrap_or_default();
    root.roles.insert(
        RoleType::Root,
        RoleKeys {
            _extra: extra,
            ..role_keys(&new_keys, threshold)
        },
    );
    for key in &new_keys {
        root.keys
            .insert(key.id.clone(), tuf_key(key.signer.as_ref()));
    }
    if change.targets_key {
        let targets = Named::new("", set.role_signer(Role::Targets)?)?;
        root.keys
            .insert(targets.id.clone(), tuf_key(targets.signer.as_ref()));
        let extra = (root.roles.get(&RoleType::Targets))
            .map(|r| r._extra.clone())
            .unwrap_or_default();
        root.roles.insert(
            RoleType::Targets,
            RoleKeys {
                _extra: extra,
                ..role_keys(std::slice::from_ref(&targets), NonZeroU64::MIN)
            },
        );
    }
    let listed: HashSet<Decoded<Hex>> = root
        .roles
        .values()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    root.keys.retain(|id, _| listed.contains(id));

    let signed = sign_root(root, &new_keys, Some((&old.signed, &old_signers)))?;
    finish(set, signed, &new_keys, new_names)
}

/// Keys of `old` root's root role that can sign: the key set's current root keys, and if
/// those are too few, any other key file in the key directory that `old` lists (a retired
/// key, after an interrupted rotation). Fails unless `old`'s threshold is met.
fn old_root_signers(
    set: &KeySet,
    old: &Root,
    version: u64,
    current: &[String],
) -> Result<Vec<Named>, TufError> {
    let (listed, threshold) = old
        .roles
        .get(&RoleType::Root)
        .map(|r| (r.keyids.clone(), r.threshold.get()))
        .ok_or_else(|| TufError::Malformed {
            what: root_version_path(set.dir(), version).display().to_string(),
            why: "no root role".into(),
        })?;
    let mut signers: Vec<Named> = Vec::new();
    let mut unavailable = Vec::new();
    let mut consider = |name: &str, report: bool, signers: &mut Vec<Named>| match set.signer(name) {
        Ok(key) => {
            let key = Named::new(name, key)?;
            if listed.contains(&key.id) && !signers.iter().any(|s| s.id == key.id) {
                signers.push(key);
            }
            Ok::<_, TufError>(())
        }
        Err(_) if report => {
            unavailable.push(name.to_owned());
            Ok(())
        }
        Err(_) => Ok(()),
    };
    for name in current {
        consider(name, true, &mut signers)?;
    }
    if (signers.len() as u64) < threshold {
        for name in other_key_names(set, current)? {
            consider(&name, false, &mut signers)?;
        }
    }
    if (signers.len() as u64) < threshold {
        return Err(TufError::NotEnoughOldRootKeys {
            version,
            threshold,
            available: signers.len(),
            unavailable,
        });
    }
    Ok(signers)
}

/// Names of the key files in the key directory other than `skip`.
fn other_key_names(set: &KeySet, skip: &[String]) -> Result<Vec<String>, TufError> {
    let mut names = set.key_file_names()?;
    names.retain(|name| !skip.contains(name));
    Ok(names)
}

/// Signs `root` with `new` (the keys it lists) and, for a rotation, with `old.1` (keys of
/// the previous root `old.0`); then checks both thresholds with tough's verifier.
fn sign_root(
    root: Root,
    new: &[Named],
    old: Option<(&Root, &[Named])>,
) -> Result<SignedRole<Root>, TufError> {
    let new_sources: Vec<Box<dyn KeySource>> = new.iter().map(Named::source).collect();
    let old_sources =
        old.map(|(root, keys)| (root.clone(), keys.iter().map(Named::source).collect()));
    let signed = block_on(sign_async(root, new_sources, old_sources))??;
    let doc = signed.signed();
    doc.signed
        .verify_role(doc)
        .map_err(|e| TufError::SelfCheck(format!("new root keys: {e}")))?;
    if let Some((old_root, _)) = old {
        old_root
            .verify_role(doc)
            .map_err(|e| TufError::SelfCheck(format!("previous root keys: {e}")))?;
    }
    Ok(signed)
}

async fn sign_async(
    root: Root,
    new: Vec<Box<dyn KeySource>>,
    old: Option<(Root, Vec<Box<dyn KeySource>>)>,
) -> Result<SignedRole<Root>, TufError> {
    let rng = SystemRandom::new();
    let holder = KeyHolder::Root(root.clone());
    let mut signed = SignedRole::new(root.clone(), &holder, &new, &rng).await?;
    if let Some((old_root, old_keys)) = old {
        let by_old = SignedRole::new(root, &KeyHolder::Root(old_root), &old_keys, &rng).await?;
        signed = signed.add_old_signatures(by_old.signed().signatures.clone())?;
    }
    Ok(signed)
}

/// Writes the signed root and describes it.
fn finish(
    set: &KeySet,
    signed: SignedRole<Root>,
    root_keys: &[Named],
    new_keys: Vec<String>,
) -> Result<SignedRootInfo, TufError> {
    let doc: &Signed<Root> = signed.signed();
    let version = doc.signed.version().get();
    let path = write_root_version(set.dir(), version, signed.buffer())?;
    let threshold = doc
        .signed
        .roles
        .get(&RoleType::Root)
        .map_or(0, |r| r.threshold.get());
    Ok(SignedRootInfo {
        version,
        path,
        sha256: hex::encode(signed.sha256()),
        expires: doc.signed.expires,
        threshold,
        root_keys: root_keys
            .iter()
            .map(|k| RootKeyInfo {
                name: k.name.clone(),
                key_id: hex::encode(&k.id),
            })
            .collect(),
        new_keys,
        signatures: doc.signatures.len(),
    })
}

fn role_keys(keys: &[Named], threshold: NonZeroU64) -> RoleKeys {
    RoleKeys {
        keyids: keys.iter().map(|k| k.id.clone()).collect(),
        threshold,
        _extra: HashMap::new(),
    }
}

/// `threshold` as TUF wants it, refusing one the (distinct) keys cannot meet.
fn checked_threshold(threshold: usize, keys: &[Named]) -> Result<NonZeroU64, TufError> {
    let distinct = keys.iter().map(|k| &k.id).collect::<HashSet<_>>().len();
    if threshold > distinct {
        return Err(TufError::BadThreshold {
            threshold,
            keys: distinct,
        });
    }
    u64::try_from(threshold)
        .ok()
        .and_then(NonZeroU64::new)
        .ok_or(TufError::BadThreshold {
            threshold,
            keys: distinct,
        })
}

/// `expires` truncated to whole seconds; it must lie in the future.
pub(super) fn whole_seconds(expires: Timestamp) -> Result<Timestamp, TufError> {
    let whole = Timestamp::from_second(expires.as_second())
        .map_err(|_| TufError::ExpiresInPast(expires))?;
    if whole <= Timestamp::now() {
        return Err(TufError::ExpiresInPast(expires));
    }
    Ok(whole)
}
