//! One refresh, as TUF 1.0 §5 lays it out: root (5.3), timestamp (5.4), snapshot (5.5),
//! targets (5.6) and the delegated roles below it. Each file is checked before it is
//! trusted, and stored exactly as received only once it is.

use std::collections::{HashMap, HashSet};

use otter_keys::tuf::delegation::within;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tough::schema::{
    Delegations, Metafile, Role, RoleType, Root, Signed, Snapshot, Targets, Timestamp,
};
use tough::{IntoVec, TargetName, Transport, TransportErrorKind};
use url::Url;

use super::RefreshError;
use super::store::{Store, delegated_file, url_name};

/// Most root versions one refresh walks (a device years behind still catches up; an
/// endless chain does not keep it busy forever).
const MAX_ROOT_STEPS: u64 = 1024;

/// Everything one refresh verified: the metadata the device acts on.
#[derive(Debug)]
pub struct Trusted {
    /// The newest root.
    pub root: Signed<Root>,
    /// The timestamp in use.
    pub timestamp: Signed<Timestamp>,
    /// The snapshot in use.
    pub snapshot: Signed<Snapshot>,
    /// The top-level targets.
    pub targets: Signed<Targets>,
    /// Every delegated role reachable from the top-level targets, by name.
    pub delegated: HashMap<String, Delegated>,
}

/// A delegated role as loaded.
#[derive(Debug)]
pub struct Delegated {
    /// The key ids (hex, sorted) and threshold it was verified against: a search that
    /// reaches it through a delegation naming others must not use it.
    pub verified_by: (Vec<String>, u64),
    /// Its metadata, or why it could not be loaded (a search that reaches it stops there,
    /// §5.6.7).
    pub metadata: Result<Signed<Targets>, String>,
}

/// Most delegated roles one refresh loads: a tree the online keys grow without bound costs
/// neither unbounded time nor flash.
pub const MAX_DELEGATED_ROLES: usize = 256;

/// Names a delegated role may not have (python-tuf refuses them too): they are the
/// top-level roles.
const TOP_LEVEL: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// Who vouches for a targets-like role.
enum Signers<'a> {
    /// The root (top-level targets).
    Root(&'a Root),
    /// The delegating role.
    Delegations(&'a Delegations),
}

/// Refreshes the metadata in `dir` (which holds at least a trusted `root.json`) from the
/// repository at `base` (`.../metadata/`) through `transport`.
pub async fn refresh(
    dir: &std::path::Path,
    transport: &dyn Transport,
    base: &Url,
) -> Result<Trusted, RefreshError> {
    let now = jiff::Timestamp::now();
    let store = Store::new(dir);
    let fetcher = Fetcher { transport, base };

    // 5.2: the trusted root, as provisioned or last updated.
    let bytes = store
        .read("root.json")?
        .ok_or_else(|| RefreshError::Missing("the trusted root.json".into()))?;
    let mut root: Signed<Root> = parse("root", &bytes)?;
    check(&root.signed, &root, "root")?;

    // 5.3: walk N+1.root.json, N+2.root.json, ... each signed by the old and the new keys.
    let mut steps = 0;
    loop {
        let next = root.signed.version.get() + 1;
        let Some(bytes) = fetcher.get(&format!("{next}.root.json")).await? else {
            break;
        };
        steps += 1;
        if steps > MAX_ROOT_STEPS {
            return Err(RefreshError::TooManyRoots(MAX_ROOT_STEPS));
        }
        let new: Signed<Root> = parse("root", &bytes)?;
        check(&root.signed, &new, "root")?;
        check(&new.signed, &new, "root")?;
        expect_version("root", new.signed.version.get(), next)?;
        // 5.3.11: new timestamp or snapshot keys make what they signed worthless; forget it
        // before the new root is kept, so an aborted refresh cannot skip this.
        let keys = |r: &Root| {
            (
                keys_of(r, RoleType::Timestamp),
                keys_of(r, RoleType::Snapshot),
            )
        };
        if keys(&root.signed) != keys(&new.signed) {
            store.remove("timestamp.json")?;
            store.remove("snapshot.json")?;
        }
        store.write("root.json", &bytes)?;
        root = new;
    }
    not_expired("root", root.signed.expires, now)?;
    // 5.4: timestamp.
    let old = local::<Timestamp>(&store, "timestamp.json", &Signers::Root(&root.signed))?;
    let bytes = fetcher
        .get("timestamp.json")
        .await?
        .ok_or_else(|| RefreshError::Missing("timestamp.json".into()))?;
    let new: Signed<Timestamp> = parse("timestamp", &bytes)?;
    check(&root.signed, &new, "timestamp")?;
    let timestamp = match old {
        Some(old) => {
            let (was, is) = (old.signed.version.get(), new.signed.version.get());
            if is < was {
                return Err(rollback("timestamp", is, was));
            }
            let (was_snap, is_snap) = (snapshot_version(&old)?, snapshot_version(&new)?);
            if is_snap < was_snap {
                return Err(rollback("snapshot", is_snap, was_snap));
            }
            if is == was {
                // The same version again: keep the one trusted (its bytes stay).
                not_expired("timestamp", old.signed.expires, now)?;
                old
            } else {
                // An expired file is never stored: the trusted one stays for rollback checks.
                not_expired("timestamp", new.signed.expires, now)?;
                store.write("timestamp.json", &bytes)?;
                new
            }
        }
        None => {
            not_expired("timestamp", new.signed.expires, now)?;
            store.write("timestamp.json", &bytes)?;
            new
        }
    };

    // 5.5: snapshot, unless the trusted one is what the timestamp names.
    let named =
        (timestamp.signed.meta.get("snapshot.json")).ok_or(RefreshError::NoSnapshotInTimestamp)?;
    let old = local::<Snapshot>(&store, "snapshot.json", &Signers::Root(&root.signed))?;
    let snapshot = match old {
        Some(old)
            if old.signed.version == named.version
                && matches_hash(&store, "snapshot.json", named)? =>
        {
            old
        }
        old => {
            let file = versioned(&root.signed, "snapshot", named);
            let bytes = fetcher
                .get(&file)
                .await?
                .ok_or_else(|| RefreshError::Missing(file.clone()))?;
            meets(&file, &bytes, named)?;
            let new: Signed<Snapshot> = parse("snapshot", &bytes)?;
            check(&root.signed, &new, "snapshot")?;
            expect_version("snapshot", new.signed.version.get(), named.version.get())?;
            if let Some(old) = &old {
                // 5.5.5: no targets file may go away or back in version.
                for (name, was) in &old.signed.meta {
                    let is = new
                        .signed
                        .meta
                        .get(name)
                        .ok_or_else(|| RefreshError::NotInSnapshot(name.clone()))?;
                    if is.version < was.version {
                        return Err(rollback(
                            name.trim_end_matches(".json"),
                            is.version.get(),
                            was.version.get(),
                        ));
                    }
                }
            }
            not_expired("snapshot", new.signed.expires, now)?;
            store.write("snapshot.json", &bytes)?;
            new
        }
    };
    not_expired("snapshot", snapshot.signed.expires, now)?;

    // 5.6: the top-level targets. Delegated roles are loaded when a search reaches them
    // ([`load_for`]) or all at once ([`load_all`]).
    let loader = Loader {
        store: &store,
        fetcher: &fetcher,
        root: &root.signed,
        snapshot: &snapshot,
        now,
    };
    let targets = loader
        .role("targets", "targets.json", &Signers::Root(&root.signed))
        .await?;
    let delegated = HashMap::new();
    Ok(Trusted {
        root,
        timestamp,
        snapshot,
        targets,
        delegated,
    })
}

/// What delegated roles are loaded with: the metadata directory and the repository.
pub struct Source<'a> {
    /// The metadata directory.
    pub dir: &'a std::path::Path,
    /// How files are fetched.
    pub transport: &'a dyn Transport,
    /// The metadata base URL.
    pub base: &'a Url,
}

impl Source<'_> {
    /// The metadata directory and the fetcher over the repository.
    fn parts(&self) -> (Store, Fetcher<'_>) {
        let fetcher = Fetcher {
            transport: self.transport,
            base: self.base,
        };
        (Store::new(self.dir), fetcher)
    }
}

/// Loads every delegated role reachable from the top-level targets (preorder, each role
/// once, at most [`MAX_DELEGATED_ROLES`]). A role that fails is remembered, not fatal: only
/// a search that reaches it fails.
pub async fn load_all(trusted: &mut Trusted, source: &Source<'_>) {
    let (store, fetcher) = source.parts();
    let loader = Loader {
        store: &store,
        fetcher: &fetcher,
        root: &trusted.root.signed,
        snapshot: &trusted.snapshot,
        now: jiff::Timestamp::now(),
    };
    let delegated = &mut trusted.delegated;
    let mut seen = HashSet::new();
    // Preorder: a role, then everything below it, then its next sibling.
    let mut stack: Vec<(Delegations, usize)> = (trusted.targets.signed.delegations.iter())
        .map(|d| (d.clone(), 0))
        .collect();
    while let Some((delegations, i)) = stack.pop() {
        let Some(role) = delegations.roles.get(i).cloned() else {
            continue;
        };
        stack.push((delegations.clone(), i + 1));
        if !seen.insert(role.name.clone()) {
            continue;
        }
        loader.ensure(delegated, &role, &delegations).await;
        if let Some(Ok(t)) = delegated.get(&role.name).map(|d| d.metadata.as_ref())
            && let Some(d) = &t.signed.delegations
        {
            stack.push((d.clone(), 0));
        }
    }
}

/// Loads the delegated roles the search for `name` reaches (§5.6.7: preorder depth first,
/// into a role only when its paths cover the name, each role once, ending at the target, a
/// terminating delegation or a role that fails), and nothing else.
pub async fn load_for(trusted: &mut Trusted, source: &Source<'_>, name: &TargetName) {
    let (store, fetcher) = source.parts();
    let loader = Loader {
        store: &store,
        fetcher: &fetcher,
        root: &trusted.root.signed,
        snapshot: &trusted.snapshot,
        now: jiff::Timestamp::now(),
    };
    let mut visited = HashSet::new();
    let top = trusted.targets.signed.clone();
    let _ = search(&loader, &mut trusted.delegated, &top, name, &mut visited).await;
}

/// How a lazy search left a branch.
enum Searched {
    Found,
    Missing,
    Stop,
}

fn search<'a>(
    loader: &'a Loader<'a>,
    delegated: &'a mut HashMap<String, Delegated>,
    role: &'a Targets,
    name: &'a TargetName,
    visited: &'a mut HashSet<String>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Searched> + Send + 'a>> {
    Box::pin(async move {
        if role.targets.contains_key(name) {
            return Searched::Found;
        }
        let Some(delegations) = &role.delegations else {
            return Searched::Missing;
        };
        for child in &delegations.roles {
            if !within(child, name) || !visited.insert(child.name.clone()) {
                continue;
            }
            loader.ensure(delegated, child, delegations).await;
            let Some(Ok(metadata)) = (delegated.get(&child.name))
                .filter(|d| d.verified_by == verified_by(child))
                .map(|d| d.metadata.as_ref().map(|m| m.signed.clone()))
            else {
                return Searched::Stop;
            };
            match search(loader, delegated, &metadata, name, visited).await {
                Searched::Missing => {}
                other => return other,
            }
            if child.terminating {
                return Searched::Stop;
            }
        }
        Searched::Missing
    })
}

/// Loads targets-like roles under one snapshot.
struct Loader<'a> {
    store: &'a Store,
    fetcher: &'a Fetcher<'a>,
    root: &'a Root,
    snapshot: &'a Signed<Snapshot>,
    now: jiff::Timestamp,
}

impl Loader<'_> {
    /// Loads delegated role `role` of `delegations` into `delegated`, unless it is there.
    async fn ensure(
        &self,
        delegated: &mut HashMap<String, Delegated>,
        role: &tough::schema::DelegatedRole,
        delegations: &Delegations,
    ) {
        if delegated.contains_key(&role.name) {
            return;
        }
        let name = role.name.clone();
        let bad = |why: &str| RefreshError::BadDelegation {
            role: name.clone(),
            why: why.to_owned(),
        };
        let loaded = if name.is_empty() {
            Err(bad("a delegated role needs a name"))
        } else if TOP_LEVEL.contains(&name.as_str()) {
            // Its metadata would be a top-level file's, and found where that one is.
            Err(bad("a delegated role may not have a top-level role's name"))
        } else if delegated.len() >= MAX_DELEGATED_ROLES {
            Err(bad(&format!(
                "more than {MAX_DELEGATED_ROLES} delegated roles"
            )))
        } else {
            let signers = Signers::Delegations(delegations);
            self.role(&name, &delegated_file(&name), &signers).await
        };
        delegated.insert(
            name,
            Delegated {
                verified_by: verified_by(role),
                metadata: loaded.map_err(|e| e.to_string()),
            },
        );
    }

    /// Role `name` at the version the snapshot names: the stored file if it is that one,
    /// else fetched, checked (length, hash, signatures, version) and stored.
    async fn role(
        &self,
        name: &str,
        file: &str,
        signers: &Signers<'_>,
    ) -> Result<Signed<Targets>, RefreshError> {
        let listed = format!("{name}.json");
        let named = (self.snapshot.signed.meta.get(&listed))
            .ok_or_else(|| RefreshError::NotInSnapshot(listed.clone()))?;
        let old = local::<Targets>(self.store, file, signers)?;
        let role = match old {
            Some(old)
                if old.signed.version == named.version
                    && matches_hash(self.store, file, named)? =>
            {
                old
            }
            _ => {
                let remote = versioned(self.root, name, named);
                let bytes = (self.fetcher.get(&remote).await?)
                    .ok_or_else(|| RefreshError::Missing(remote.clone()))?;
                meets(&remote, &bytes, named)?;
                let new: Signed<Targets> = parse(name, &bytes)?;
                verify(signers, &new, name)?;
                expect_version(name, new.signed.version.get(), named.version.get())?;
                not_expired(name, new.signed.expires, self.now)?;
                self.store.write(file, &bytes)?;
                new
            }
        };
        not_expired(name, role.signed.expires, self.now)?;
        Ok(role)
    }
}

/// Fetches metadata files relative to the repository's metadata URL.
struct Fetcher<'a> {
    transport: &'a dyn Transport,
    base: &'a Url,
}

impl Fetcher<'_> {
    /// The file, or `None` when the repository has no such file (404).
    async fn get(&self, file: &str) -> Result<Option<Vec<u8>>, RefreshError> {
        let url = self.base.join(file).map_err(|e| RefreshError::Fetch {
            url: format!("{}{file}", self.base),
            why: e.to_string(),
        })?;
        let failed = |e: &dyn std::error::Error| RefreshError::Fetch {
            url: url.to_string(),
            why: crate::http::chain(e),
        };
        match self.transport.fetch(url.clone()).await {
            Ok(stream) => stream.into_vec().await.map(Some).map_err(|e| failed(&e)),
            Err(e) if e.kind() == TransportErrorKind::FileNotFound => Ok(None),
            Err(e) => Err(failed(&e)),
        }
    }
}

/// The key ids (hex, sorted) and threshold a delegation gives its role.
pub fn verified_by(role: &tough::schema::DelegatedRole) -> (Vec<String>, u64) {
    let mut ids: Vec<String> = role.keyids.iter().map(hex::encode).collect();
    ids.sort();
    (ids, role.threshold.get())
}

/// `N.role.json` under consistent snapshots, else `role.json`.
fn versioned(root: &Root, role: &str, named: &Metafile) -> String {
    let file = format!("{}.json", url_name(role));
    if root.consistent_snapshot {
        format!("{}.{file}", named.version)
    } else {
        file
    }
}

/// The stored metadata `file`, if it parses and a threshold of `signers` signed it (expiry
/// is not checked: an expired trusted file still guards against rollback). Anything else
/// is ignored, as if absent.
fn local<T>(
    store: &Store,
    file: &str,
    signers: &Signers<'_>,
) -> Result<Option<Signed<T>>, RefreshError>
where
    T: Role + Serialize + DeserializeOwned,
    Signed<T>: AsTargets,
{
    let Some(bytes) = store.read(file)? else {
        return Ok(None);
    };
    let Ok(parsed) = serde_json::from_slice::<Signed<T>>(&bytes) else {
        return Ok(None);
    };
    Ok(parsed.verify_with(signers, file).is_ok().then_some(parsed))
}

/// Verification against whoever vouches for the role.
trait AsTargets {
    fn verify_with(&self, signers: &Signers<'_>, role: &str) -> Result<(), RefreshError>;
}

impl AsTargets for Signed<Targets> {
    fn verify_with(&self, signers: &Signers<'_>, role: &str) -> Result<(), RefreshError> {
        verify(signers, self, role)
    }
}

impl AsTargets for Signed<Timestamp> {
    fn verify_with(&self, signers: &Signers<'_>, role: &str) -> Result<(), RefreshError> {
        root_only(signers, self, role)
    }
}

impl AsTargets for Signed<Snapshot> {
    fn verify_with(&self, signers: &Signers<'_>, role: &str) -> Result<(), RefreshError> {
        root_only(signers, self, role)
    }
}

fn root_only<T: Role + Serialize>(
    signers: &Signers<'_>,
    signed: &Signed<T>,
    role: &str,
) -> Result<(), RefreshError> {
    match signers {
        Signers::Root(root) => check(root, signed, role),
        Signers::Delegations(_) => Err(RefreshError::Signatures {
            role: role.to_owned(),
            why: "only the root vouches for it".into(),
        }),
    }
}

fn verify(signers: &Signers<'_>, signed: &Signed<Targets>, role: &str) -> Result<(), RefreshError> {
    match signers {
        Signers::Root(root) => check(root, signed, role),
        Signers::Delegations(d) => {
            d.verify_role(signed, role)
                .map_err(|e| RefreshError::Signatures {
                    role: role.to_owned(),
                    why: e.to_string(),
                })
        }
    }
}

/// A threshold of `root`'s keys for the role signed `signed`.
fn check<T: Role + Serialize>(
    root: &Root,
    signed: &Signed<T>,
    role: &str,
) -> Result<(), RefreshError> {
    root.verify_role(signed)
        .map_err(|e| RefreshError::Signatures {
            role: role.to_owned(),
            why: e.to_string(),
        })
}

fn parse<T: DeserializeOwned>(role: &str, bytes: &[u8]) -> Result<T, RefreshError> {
    serde_json::from_slice(bytes).map_err(|e| RefreshError::Parse {
        role: role.to_owned(),
        why: e.to_string(),
    })
}

fn expect_version(role: &str, got: u64, expected: u64) -> Result<(), RefreshError> {
    if got == expected {
        Ok(())
    } else {
        Err(RefreshError::Version {
            role: role.to_owned(),
            got,
            expected,
        })
    }
}

fn not_expired(role: &str, at: jiff::Timestamp, now: jiff::Timestamp) -> Result<(), RefreshError> {
    if at <= now {
        Err(RefreshError::Expired {
            role: role.to_owned(),
            at,
        })
    } else {
        Ok(())
    }
}

fn rollback(role: &str, new: u64, old: u64) -> RefreshError {
    RefreshError::Rollback {
        role: role.to_owned(),
        new,
        old,
    }
}

/// The snapshot version a timestamp names.
fn snapshot_version(timestamp: &Signed<Timestamp>) -> Result<u64, RefreshError> {
    (timestamp.signed.meta.get("snapshot.json"))
        .map(|m| m.version.get())
        .ok_or(RefreshError::NoSnapshotInTimestamp)
}

/// The key ids of a role, sorted, to tell whether a new root changed them.
fn keys_of(root: &Root, role: RoleType) -> Vec<String> {
    let mut ids: Vec<String> = (root.roles.get(&role))
        .map(|r| r.keyids.iter().map(hex::encode).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// `bytes` is no longer than `named` says and has its SHA-256, where it says them.
fn meets(file: &str, bytes: &[u8], named: &Metafile) -> Result<(), RefreshError> {
    let len = bytes.len() as u64;
    if let Some(expected) = named.length
        && len > expected
    {
        return Err(RefreshError::Length {
            file: file.to_owned(),
            got: len,
            expected,
        });
    }
    if let Some(hashes) = &named.hashes {
        let calculated = Sha256::digest(bytes);
        if calculated.as_slice() != hashes.sha256.as_ref() {
            return Err(RefreshError::Hash {
                file: file.to_owned(),
                calculated: hex::encode(calculated),
                expected: hex::encode(&hashes.sha256),
            });
        }
    }
    Ok(())
}

/// Whether the stored `file` has the hash `named` gives (true when it gives none).
fn matches_hash(store: &Store, file: &str, named: &Metafile) -> Result<bool, RefreshError> {
    let Some(hashes) = &named.hashes else {
        return Ok(true);
    };
    Ok(store
        .read(file)?
        .is_some_and(|bytes| Sha256::digest(&bytes).as_slice() == hashes.sha256.as_ref()))
}

#[cfg(test)]
mod tests;
