//! Offline release signing through TUF delegations: the shape of the repository when the
//! vendor, not the server, decides which images exist.
//!
//! - The top-level `targets` role (offline, vendor) lists no target itself. It delegates
//!   `firmware/*/*` to the **release** role (offline keys, k-of-n) and `deltas/*/*` to the
//!   **deltas** role (one online key the server holds). Both delegations are terminating.
//! - The server signs only deltas, snapshot and timestamp. Whoever steals those keys can list
//!   deltas, but a delta is used only when its result is an image the release role signed,
//!   so at most they offer useless deltas; an image they list themselves is outside their
//!   paths and ignored.
//!
//! Shared by `otter-keys` (which writes these files), the server (which checks what the
//! vendor uploads) and the agent (which resolves targets through the delegations).

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use jiff::Timestamp;
use tough::TargetName;
use tough::editor::signed::SignedRole;
use tough::key_source::KeySource;
use tough::schema::{
    DelegatedRole, DelegatedTargets, Delegations, KeyHolder, PathPattern, PathSet, Signed, Targets,
};

use super::key_source::{SignerKeySource, tuf_key, tuf_key_id};
use super::store::SPEC_VERSION;
use crate::signer::Signer;

/// The delegated role that lists firmware images (offline, vendor).
pub const RELEASE_ROLE: &str = "release";
/// The delegated role that lists deltas (online, server).
pub const DELTAS_ROLE: &str = "deltas";
/// The paths of the release role: `firmware/<hardware-id>/<file>`.
pub const RELEASE_PATHS: &str = "firmware/*/*";
/// The paths of the deltas role: `deltas/<hardware-id>/<file>`.
pub const DELTAS_PATHS: &str = "deltas/*/*";

/// Why a delegated role's metadata is not what its delegation allows.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    /// The delegating metadata has no such role.
    #[error("the top-level targets metadata delegates no role {0:?}")]
    NoSuchRole(String),
    /// Too few valid signatures from the role's keys.
    #[error("{role} metadata is not signed by its keys: {why}")]
    Signatures {
        /// The role.
        role: String,
        /// tough's reason.
        why: String,
    },
    /// Targets outside the role's paths.
    #[error("{role} metadata lists target(s) outside its paths: {}", names.join(", "))]
    OutsidePaths {
        /// The role.
        role: String,
        /// The offending names.
        names: Vec<String>,
    },
    /// Building or signing the metadata failed.
    #[error("TUF metadata: {0}")]
    Tough(String),
}

/// The top-level targets metadata of a repository with offline release signing: no targets
/// of its own, `release` (the `release` keys, `threshold` of them) for [`RELEASE_PATHS`] and
/// `deltas` (the one online key) for [`DELTAS_PATHS`].
pub fn delegating_targets(
    version: NonZeroU64,
    expires: Timestamp,
    release: &[Arc<dyn Signer>],
    threshold: NonZeroU64,
    deltas: &dyn Signer,
) -> Result<Targets, DelegationError> {
    let tough_err = |e: &dyn std::fmt::Display| DelegationError::Tough(e.to_string());
    let mut keys = HashMap::new();
    let mut release_ids = Vec::new();
    for key in release {
        let id = tuf_key_id(key.as_ref()).map_err(|e| tough_err(&e))?;
        keys.insert(id.clone(), tuf_key(key.as_ref()));
        release_ids.push(id);
    }
    let deltas_id = tuf_key_id(deltas).map_err(|e| tough_err(&e))?;
    keys.insert(deltas_id.clone(), tuf_key(deltas));
    let role = |name: &str, keyids, threshold, paths: &str| -> Result<DelegatedRole, _> {
        Ok(DelegatedRole {
            name: name.to_owned(),
            keyids,
            threshold,
            paths: PathSet::Paths(vec![PathPattern::new(paths).map_err(|e| tough_err(&e))?]),
            terminating: true,
            targets: None,
        })
    };
    let mut targets = Targets::new(SPEC_VERSION.to_owned(), version, expires);
    targets.delegations = Some(Delegations {
        keys,
        roles: vec![
            role(RELEASE_ROLE, release_ids, threshold, RELEASE_PATHS)?,
            role(DELTAS_ROLE, vec![deltas_id], NonZeroU64::MIN, DELTAS_PATHS)?,
        ],
    });
    Ok(targets)
}

/// Whether `targets` (top-level) delegates images to an offline release role.
pub fn delegates_releases(targets: &Targets) -> bool {
    targets
        .delegations
        .as_ref()
        .is_some_and(|d| d.roles.iter().any(|r| r.name == RELEASE_ROLE))
}

/// Signs `targets` as the metadata of delegated role `role` with `signers`, for clients
/// that read the role's keys from `delegations`.
pub async fn sign_delegated(
    targets: Targets,
    role: &str,
    delegations: &Delegations,
    signers: &[Arc<dyn Signer>],
) -> Result<SignedRole<DelegatedTargets>, DelegationError> {
    let targets = DelegatedTargets {
        name: role.to_owned(),
        targets,
    };
    let keys: Vec<Box<dyn KeySource>> = signers
        .iter()
        .map(|s| Box::new(SignerKeySource::new(Arc::clone(s))) as Box<dyn KeySource>)
        .collect();
    let holder = KeyHolder::Delegations(delegations.clone());
    SignedRole::new(targets, &holder, &keys, &SystemRandom::new())
        .await
        .map_err(|e| DelegationError::Tough(e.to_string()))
}

/// Checks that `signed` is metadata of role `role` as `delegations` describes it: a
/// threshold of its keys signed it and every target lies inside its paths.
pub fn check_delegated(
    delegations: &Delegations,
    role: &str,
    signed: &Signed<Targets>,
) -> Result<(), DelegationError> {
    let delegated = delegations
        .roles
        .iter()
        .find(|r| r.name == role)
        .ok_or_else(|| DelegationError::NoSuchRole(role.to_owned()))?;
    delegations
        .verify_role(signed, role)
        .map_err(|e| DelegationError::Signatures {
            role: role.to_owned(),
            why: e.to_string(),
        })?;
    let mut outside: Vec<String> = signed
        .signed
        .targets
        .keys()
        .filter(|name| !within(delegated, name))
        .map(|name| name.raw().to_owned())
        .collect();
    if !outside.is_empty() {
        outside.sort();
        return Err(DelegationError::OutsidePaths {
            role: role.to_owned(),
            names: outside,
        });
    }
    Ok(())
}

/// Whether `name` lies inside the paths of `role`, as TUF 1.0 matches them: shell-style
/// wildcards where `*` and `?` never match the `/` between path segments (tough's own
/// matcher lets `*` cross it), or a hash prefix of the name's SHA-256.
pub fn within(role: &DelegatedRole, name: &TargetName) -> bool {
    match &role.paths {
        PathSet::Paths(patterns) => patterns.iter().any(|p| path_matches(p.value(), name.raw())),
        // Hash prefixes have no separators to mind: tough's check is the specification's.
        PathSet::PathHashPrefixes(_) => Delegations {
            keys: HashMap::new(),
            roles: vec![DelegatedRole {
                targets: None,
                ..role.clone()
            }],
        }
        .target_is_delegated(name),
    }
}

/// `pattern` matches `path` segment by segment (fnmatch, as python-tuf does).
fn path_matches(pattern: &str, path: &str) -> bool {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .is_ok_and(|glob| glob.compile_matcher().is_match(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::FileKey;

    fn key() -> Arc<dyn Signer> {
        let dir = tempfile::tempdir().unwrap();
        Arc::new(FileKey::generate_at(&dir.path().join("k.key")).unwrap())
    }

    fn name(s: &str) -> TargetName {
        TargetName::new(s).unwrap()
    }

    fn listing(names: &[&str]) -> Targets {
        let mut t = Targets::new(
            SPEC_VERSION.into(),
            NonZeroU64::MIN,
            Timestamp::from_second(4_000_000_000).unwrap(),
        );
        for n in names {
            t.targets.insert(
                name(n),
                tough::schema::Target {
                    length: 1,
                    hashes: tough::schema::Hashes {
                        sha256: vec![0; 32].into(),
                        _extra: HashMap::new(),
                    },
                    custom: HashMap::new(),
                    _extra: HashMap::new(),
                },
            );
        }
        t
    }

    /// Signs as the release role with whatever keys are given (tough itself refuses keys
    /// the role does not list, so the signatures are added by hand).
    fn sign(targets: Targets, keys: &[Arc<dyn Signer>]) -> Signed<Targets> {
        use tough::schema::Role as _;
        let data = targets.canonical_form().unwrap();
        Signed {
            signatures: keys
                .iter()
                .map(|k| tough::schema::Signature {
                    keyid: tuf_key_id(k.as_ref()).unwrap(),
                    sig: k.sign(&data).unwrap().to_vec().into(),
                })
                .collect(),
            signed: targets,
        }
    }

    #[test]
    fn release_paths_cover_images_and_deltas_paths_cover_deltas_only() {
        let (r1, deltas) = (key(), key());
        let top = delegating_targets(
            NonZeroU64::MIN,
            Timestamp::from_second(4_000_000_000).unwrap(),
            &[r1],
            NonZeroU64::MIN,
            deltas.as_ref(),
        )
        .unwrap();
        assert!(delegates_releases(&top));
        let d = top.delegations.as_ref().unwrap();
        let (release, deltas_role) = (&d.roles[0], &d.roles[1]);
        assert!(within(release, &name("firmware/acme-1/1.2.0.img")));
        assert!(!within(release, &name("deltas/acme-1/1.1.0_1.2.0.patch")));
        assert!(!within(release, &name("firmware.img")));
        assert!(within(
            deltas_role,
            &name("deltas/acme-1/1.1.0_1.2.0.patch")
        ));
        assert!(!within(deltas_role, &name("firmware/acme-1/9.9.9.img")));
        // `*` stays inside one path segment.
        assert!(!within(release, &name("firmware/acme-1/extra/1.2.0.img")));
        assert!(!within(release, &name("firmware/1.2.0.img")));
        assert!(release.terminating && deltas_role.terminating);
    }

    #[test]
    fn a_release_needs_its_threshold_and_must_stay_inside_its_paths() {
        let (r1, r2, deltas) = (key(), key(), key());
        let top = delegating_targets(
            NonZeroU64::MIN,
            Timestamp::from_second(4_000_000_000).unwrap(),
            &[Arc::clone(&r1), Arc::clone(&r2)],
            NonZeroU64::new(2).unwrap(),
            deltas.as_ref(),
        )
        .unwrap();
        let d = top.delegations.as_ref().unwrap();
        let images = listing(&["firmware/acme-1/1.0.0.img"]);

        let both = sign(images.clone(), &[Arc::clone(&r1), Arc::clone(&r2)]);
        check_delegated(d, RELEASE_ROLE, &both).unwrap();

        let one = sign(images.clone(), std::slice::from_ref(&r1));
        assert!(matches!(
            check_delegated(d, RELEASE_ROLE, &one),
            Err(DelegationError::Signatures { .. })
        ));
        // The online deltas key may not sign a release.
        let by_server = sign(images, std::slice::from_ref(&deltas));
        assert!(matches!(
            check_delegated(d, RELEASE_ROLE, &by_server),
            Err(DelegationError::Signatures { .. })
        ));
        // Nor may the deltas role list an image.
        let smuggled = sign(
            listing(&["deltas/acme-1/a_b.patch", "firmware/acme-1/9.9.9.img"]),
            std::slice::from_ref(&deltas),
        );
        match check_delegated(d, DELTAS_ROLE, &smuggled) {
            Err(DelegationError::OutsidePaths { names, .. }) => {
                assert_eq!(names, ["firmware/acme-1/9.9.9.img"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_delegated(d, "other", &both),
            Err(DelegationError::NoSuchRole(_))
        ));
    }
}
