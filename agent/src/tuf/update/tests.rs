//! Each step of the workflow against a repository built and signed here, served from
//! memory: the root chain, key changes, rollback and equal versions of the timestamp, and
//! delegated role names that must not reach top-level files.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use otter_keys::signer::{FileKey, Signer};
use otter_keys::tuf::{tuf_key, tuf_key_id};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tough::schema::{
    DelegatedRole, Delegations, Hashes, Metafile, PathPattern, PathSet, Role, RoleKeys, RoleType,
    Root, Signature, Signed, Snapshot, Targets, Timestamp,
};
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use super::{RefreshError, refresh};

fn key() -> Arc<dyn Signer> {
    let dir = tempfile::tempdir().unwrap();
    Arc::new(FileKey::generate_at(&dir.path().join("k")).unwrap())
}

fn later() -> jiff::Timestamp {
    jiff::Timestamp::from_second(4_000_000_000).unwrap()
}

fn v(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

/// `doc` signed by `keys`, as bytes.
fn sign<T: Role + Serialize>(doc: T, keys: &[&Arc<dyn Signer>]) -> Vec<u8> {
    let data = doc.canonical_form().unwrap();
    let signed = Signed {
        signatures: keys
            .iter()
            .map(|k| Signature {
                keyid: tuf_key_id(k.as_ref()).unwrap(),
                sig: k.sign(&data).unwrap().to_vec().into(),
            })
            .collect(),
        signed: doc,
    };
    serde_json::to_vec(&signed).unwrap()
}

fn meta(version: u64, bytes: &[u8]) -> Metafile {
    Metafile {
        length: Some(bytes.len() as u64),
        hashes: Some(Hashes {
            sha256: Sha256::digest(bytes).to_vec().into(),
            _extra: HashMap::new(),
        }),
        version: v(version),
        _extra: HashMap::new(),
    }
}

/// A repository in memory: file name → bytes (a missing file is a 404), and the names
/// asked for.
#[derive(Clone, Debug, Default)]
struct Repo(
    Arc<Mutex<HashMap<String, Vec<u8>>>>,
    Arc<Mutex<Vec<String>>>,
);

#[async_trait::async_trait]
impl Transport for Repo {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let name = url.path().rsplit('/').next().unwrap_or_default().to_owned();
        self.1.lock().unwrap().push(name.clone());
        match self.0.lock().unwrap().get(&name) {
            Some(bytes) => {
                let chunk = Ok(bytes::Bytes::from(bytes.clone()));
                Ok(Box::pin(futures_util::stream::iter([chunk])))
            }
            None => Err(TransportError::new(TransportErrorKind::FileNotFound, url)),
        }
    }
}

impl Repo {
    fn put(&self, name: &str, bytes: Vec<u8>) {
        self.0.lock().unwrap().insert(name.to_owned(), bytes);
    }
}

/// The keys of each top-level role.
struct Keys {
    root: Arc<dyn Signer>,
    timestamp: Arc<dyn Signer>,
    snapshot: Arc<dyn Signer>,
    targets: Arc<dyn Signer>,
}

impl Keys {
    fn new() -> Self {
        Self {
            root: key(),
            timestamp: key(),
            snapshot: key(),
            targets: key(),
        }
    }

    fn root(&self, version: u64) -> Root {
        let mut keys = HashMap::new();
        let mut roles = HashMap::new();
        for (role, k) in [
            (RoleType::Root, &self.root),
            (RoleType::Timestamp, &self.timestamp),
            (RoleType::Snapshot, &self.snapshot),
            (RoleType::Targets, &self.targets),
        ] {
            let id = tuf_key_id(k.as_ref()).unwrap();
            keys.insert(id.clone(), tuf_key(k.as_ref()));
            roles.insert(
                role,
                RoleKeys {
                    keyids: vec![id],
                    threshold: NonZeroU64::MIN,
                    _extra: HashMap::new(),
                },
            );
        }
        Root {
            spec_version: "1.0.0".into(),
            consistent_snapshot: true,
            version: v(version),
            expires: later(),
            keys,
            roles,
            _extra: HashMap::new(),
        }
    }
}

/// Publishes targets `targets` (version `tv`), a snapshot `sv` listing it and `extra`
/// roles, and a timestamp `ts`.
fn publish(
    repo: &Repo,
    keys: &Keys,
    (tv, sv, ts): (u64, u64, u64),
    targets: Targets,
    extra: &[(&str, u64, Vec<u8>)],
) {
    let mut targets = targets;
    targets.version = v(tv);
    let t = sign(targets, &[&keys.targets]);
    repo.put(&format!("{tv}.targets.json"), t.clone());
    let mut snapshot = Snapshot::new("1.0.0".into(), v(sv), later());
    snapshot.meta.insert("targets.json".into(), meta(tv, &t));
    for (name, version, bytes) in extra {
        snapshot
            .meta
            .insert(format!("{name}.json"), meta(*version, bytes));
        repo.put(&format!("{version}.{name}.json"), bytes.clone());
    }
    let s = sign(snapshot, &[&keys.snapshot]);
    repo.put(&format!("{sv}.snapshot.json"), s.clone());
    let mut timestamp = Timestamp::new("1.0.0".into(), v(ts), later());
    timestamp.meta.insert("snapshot.json".into(), meta(sv, &s));
    repo.put("timestamp.json", sign(timestamp, &[&keys.timestamp]));
}

fn empty() -> Targets {
    Targets::new("1.0.0".into(), NonZeroU64::MIN, later())
}

/// A device trusting root 1 of `keys`, and the repository serving it.
fn device(keys: &Keys) -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().unwrap();
    let root = sign(keys.root(1), &[&keys.root]);
    std::fs::write(dir.path().join("root.json"), &root).unwrap();
    let repo = Repo::default();
    repo.put("1.root.json", root);
    (dir, repo)
}

/// A refresh, then every delegated role loaded (what the agent does).
async fn run(dir: &tempfile::TempDir, repo: &Repo) -> Result<super::Trusted, RefreshError> {
    let base = Url::parse("http://repo.test/metadata/").unwrap();
    let mut trusted = refresh(dir.path(), repo, &base).await?;
    let source = super::Source {
        dir: dir.path(),
        transport: repo,
        base: &base,
    };
    super::load_all(&mut trusted, &source).await;
    Ok(trusted)
}

#[tokio::test]
async fn a_new_root_needs_the_old_and_the_new_keys_and_the_next_version() {
    let keys = Keys::new();
    let (dir, repo) = device(&keys);
    publish(&repo, &keys, (1, 1, 1), empty(), &[]);
    run(&dir, &repo).await.unwrap();

    let new = Keys {
        root: key(),
        ..Keys::new()
    };
    // Signed by the new root key only: the trusted root does not vouch for it.
    repo.put("2.root.json", sign(new.root(2), &[&new.root]));
    let err = run(&dir, &repo).await.unwrap_err();
    assert!(matches!(err, RefreshError::Signatures { .. }), "{err}");
    // By both, but claiming version 3 at 2.root.json.
    repo.put("2.root.json", sign(new.root(3), &[&keys.root, &new.root]));
    let err = run(&dir, &repo).await.unwrap_err();
    assert!(matches!(err, RefreshError::Version { .. }), "{err}");
    // By both, version 2: taken, and the repository signed by the new keys is trusted.
    repo.put("2.root.json", sign(new.root(2), &[&keys.root, &new.root]));
    publish(&repo, &new, (2, 2, 2), empty(), &[]);
    let trusted = run(&dir, &repo).await.unwrap();
    assert_eq!(trusted.root.signed.version.get(), 2);
    let stored: Signed<Root> =
        serde_json::from_slice(&std::fs::read(dir.path().join("root.json")).unwrap()).unwrap();
    assert_eq!(stored.signed.version.get(), 2);
}

#[tokio::test]
async fn older_timestamps_are_rollbacks_and_an_equal_one_keeps_the_stored_file() {
    let keys = Keys::new();
    let (dir, repo) = device(&keys);
    publish(&repo, &keys, (1, 1, 5), empty(), &[]);
    run(&dir, &repo).await.unwrap();
    let stored = std::fs::read(dir.path().join("timestamp.json")).unwrap();

    // The same version with other bytes (another signature nonce is enough): kept as is.
    publish(&repo, &keys, (1, 1, 5), empty(), &[]);
    let mut other = Timestamp::new("1.0.0".into(), v(5), later());
    other.meta.insert(
        "snapshot.json".into(),
        meta(1, &repo.0.lock().unwrap()["1.snapshot.json"]),
    );
    other.expires = jiff::Timestamp::from_second(4_000_000_001).unwrap();
    repo.put("timestamp.json", sign(other, &[&keys.timestamp]));
    run(&dir, &repo).await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("timestamp.json")).unwrap(),
        stored
    );

    // An older version: refused, and nothing stored.
    publish(&repo, &keys, (1, 1, 4), empty(), &[]);
    let err = run(&dir, &repo).await.unwrap_err();
    assert!(
        err.to_string().contains("previously fetched version 5"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("timestamp.json")).unwrap(),
        stored
    );
}

#[tokio::test]
async fn new_timestamp_keys_forget_what_the_old_ones_signed() {
    let keys = Keys::new();
    let (dir, repo) = device(&keys);
    publish(&repo, &keys, (1, 7, 9), empty(), &[]);
    run(&dir, &repo).await.unwrap();

    // Root 2 hands timestamp and snapshot to new keys, whose repository starts over at 1:
    // not a rollback, because what the old keys signed is forgotten.
    let new = Keys {
        root: Arc::clone(&keys.root),
        targets: Arc::clone(&keys.targets),
        ..Keys::new()
    };
    repo.put("2.root.json", sign(new.root(2), &[&keys.root]));
    publish(&repo, &new, (1, 1, 1), empty(), &[]);
    let trusted = run(&dir, &repo).await.unwrap();
    assert_eq!(trusted.timestamp.signed.version.get(), 1);
}

#[tokio::test]
async fn a_delegated_role_named_like_a_top_level_role_is_refused_and_the_root_stays() {
    let keys = Keys::new();
    let (dir, repo) = device(&keys);
    let evil = key();
    let mut top = empty();
    top.delegations = Some(Delegations {
        keys: HashMap::from([(tuf_key_id(evil.as_ref()).unwrap(), tuf_key(evil.as_ref()))]),
        roles: vec![DelegatedRole {
            name: "root".into(),
            keyids: vec![tuf_key_id(evil.as_ref()).unwrap()],
            threshold: NonZeroU64::MIN,
            paths: PathSet::Paths(vec![PathPattern::new("*").unwrap()]),
            terminating: false,
            targets: None,
        }],
    });
    let mut role = empty();
    role.version = v(4);
    let role = sign(role, &[&evil]);
    publish(&repo, &keys, (1, 1, 1), top, &[("root", 4, role)]);
    let root_before = std::fs::read(dir.path().join("root.json")).unwrap();
    let trusted = run(&dir, &repo).await.unwrap();
    let refused = trusted.delegated["root"].metadata.as_ref().unwrap_err();
    assert!(refused.contains("top-level role's name"), "{refused}");
    assert_eq!(
        std::fs::read(dir.path().join("root.json")).unwrap(),
        root_before
    );
    // A later refresh still starts from the true root.
    run(&dir, &repo).await.unwrap();
}

/// A delegation of `paths` to `name`, signed by `key`.
fn delegation(name: &str, key: &Arc<dyn Signer>, paths: &[&str]) -> DelegatedRole {
    DelegatedRole {
        name: name.into(),
        keyids: vec![tuf_key_id(key.as_ref()).unwrap()],
        threshold: NonZeroU64::MIN,
        paths: PathSet::Paths(
            paths
                .iter()
                .map(|p| PathPattern::new(*p).unwrap())
                .collect(),
        ),
        terminating: false,
        targets: None,
    }
}

#[tokio::test]
async fn a_lookup_loads_only_the_roles_its_search_reaches() {
    let keys = Keys::new();
    let (dir, repo) = device(&keys);
    let (a_key, b_key) = (key(), key());
    let mut top = empty();
    top.delegations = Some(Delegations {
        keys: HashMap::from([
            (tuf_key_id(a_key.as_ref()).unwrap(), tuf_key(a_key.as_ref())),
            (tuf_key_id(b_key.as_ref()).unwrap(), tuf_key(b_key.as_ref())),
        ]),
        roles: vec![
            delegation("a", &a_key, &["a/*"]),
            delegation("b", &b_key, &["b/*"]),
        ],
    });
    let mut b = empty();
    b.targets.insert(
        tough::TargetName::new("b/x").unwrap(),
        tough::schema::Target {
            length: 1,
            hashes: Hashes {
                sha256: vec![7; 32].into(),
                _extra: HashMap::new(),
            },
            custom: HashMap::new(),
            _extra: HashMap::new(),
        },
    );
    let extra = [
        ("a", 1, sign(empty(), &[&a_key])),
        ("b", 1, sign(b, &[&b_key])),
    ];
    publish(&repo, &keys, (1, 1, 1), top, &extra);
    let base = Url::parse("http://repo.test/metadata/").unwrap();
    let mut trusted = refresh(dir.path(), &repo, &base).await.unwrap();
    let source = super::Source {
        dir: dir.path(),
        transport: &repo,
        base: &base,
    };
    repo.1.lock().unwrap().clear();
    let name = tough::TargetName::new("b/x").unwrap();
    super::load_for(&mut trusted, &source, &name).await;
    // Only `b` covers b/x: `a` is never fetched.
    assert_eq!(*repo.1.lock().unwrap(), ["1.b.json"]);
    assert_eq!(
        crate::tuf::resolve::find(&trusted, &name).map(|t| t.length),
        Ok(1)
    );
    // Stored under its own file, and not fetched again by the next lookup.
    assert!(dir.path().join(super::delegated_file("b")).exists());
    super::load_for(&mut trusted, &source, &name).await;
    assert_eq!(repo.1.lock().unwrap().len(), 1);
}
