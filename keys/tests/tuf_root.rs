//! The signed TUF root: `tough`'s own client and editor accept what `otter-keys` writes,
//! walk rotated roots, refuse forged ones; and the files are plain TUF metadata.

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use ed25519_dalek::{Signature, VerifyingKey};
use jiff::{SignedDuration, Timestamp};
use otter_keys::keyset::{KeySet, Role};
use otter_keys::signer::FileKey;
use otter_keys::tuf::{
    RootChange, SignerKeySource, TufError, current_root, rotate_root, rotate_root_with, tuf_key,
    tuf_key_id, write_initial_root,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tough::editor::RepositoryEditor;
use tough::editor::signed::{PathExists, SignedRole};
use tough::key_source::KeySource;
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root, Signed};
use tough::{IntoVec, Repository, RepositoryLoader, TargetName};
use url::Url;

const TARGET: &[u8] = b"firmware 1.2.3 for the test board\n";

fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

fn in_days(days: i64) -> Timestamp {
    Timestamp::now() + SignedDuration::from_hours(24 * days)
}

/// A fresh key directory (inside `tmp`) with `n` root keys of which `k` must sign.
fn key_set(tmp: &TempDir, n: usize, k: usize) -> KeySet {
    KeySet::create(&tmp.path().join("keys"), n, k).unwrap()
}

/// The online keys (targets, snapshot, timestamp) as tough key sources, via our Signer.
fn online_keys(set: &KeySet) -> Vec<Box<dyn KeySource>> {
    [Role::Targets, Role::Snapshot, Role::Timestamp]
        .into_iter()
        .map(|role| SignerKeySource::boxed(set.role_key(role).unwrap()))
        .collect()
}

/// A published repository: metadata and targets directories.
struct Repo {
    _tmp: TempDir,
    metadata: PathBuf,
    targets: PathBuf,
}

/// Builds a complete repository on top of the signed root at `root_path` with tough's
/// editor (one target, online roles signed by the key set's keys), writes it with
/// consistent snapshots, and copies the older root versions `history` next to it.
fn publish(set: &KeySet, root_path: &Path, history: &[PathBuf]) -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    let metadata = tmp.path().join("metadata");
    let targets = tmp.path().join("targets");
    fs::create_dir_all(&input).unwrap();
    fs::write(input.join("hello.bin"), TARGET).unwrap();
    block_on(async {
        let mut editor = RepositoryEditor::new(root_path).await.unwrap();
        let (name, target) = RepositoryEditor::build_target(input.join("hello.bin"))
            .await
            .unwrap();
        let one = NonZeroU64::MIN;
        // Whole seconds: python-tuf parses no fractional seconds in `expires`.
        let expires = Timestamp::from_second(in_days(30).as_second()).unwrap();
        editor
            .add_target(name, target)
            .unwrap()
            .targets_version(one)
            .unwrap()
            .targets_expires(expires)
            .unwrap()
            .snapshot_version(one)
            .snapshot_expires(expires)
            .timestamp_version(one)
            .timestamp_expires(expires);
        let signed = editor.sign(&online_keys(set)).await.unwrap();
        signed.write(&metadata).await.unwrap();
        signed
            .copy_targets(&input, &targets, PathExists::Fail)
            .await
            .unwrap();
    });
    for old in history {
        fs::copy(old, metadata.join(old.file_name().unwrap())).unwrap();
    }
    Repo {
        _tmp: tmp,
        metadata,
        targets,
    }
}

/// Loads `repo` with tough's client, trusting `root` (bytes of some root.json); the error
/// is tough's, in debug form.
fn load(root: &[u8], repo: &Repo) -> Result<Repository, String> {
    block_on(
        RepositoryLoader::new(
            &root,
            Url::from_directory_path(&repo.metadata).unwrap(),
            Url::from_directory_path(&repo.targets).unwrap(),
        )
        .load(),
    )
    .map_err(|e| format!("{e:?}"))
}

fn read_target(repo: &Repository) -> Vec<u8> {
    block_on(async {
        repo.read_target(&TargetName::new("hello.bin").unwrap())
            .await
            .unwrap()
            .expect("target listed")
            .into_vec()
            .await
            .unwrap()
    })
}

fn root_ids(root: &Root, role: RoleType) -> Vec<String> {
    root.roles[&role].keyids.iter().map(hex::encode).collect()
}

fn named_ids(set: &KeySet, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| hex::encode(tuf_key_id(&set.load(n).unwrap()).unwrap()))
        .collect()
}

/// Everything in the key directory, to show a refused ceremony changed nothing.
fn snapshot_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in [dir.to_owned(), dir.join("keys")] {
        for entry in fs::read_dir(&sub).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                out.push((path.clone(), fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

// 1. init -> a root tough's editor builds on and tough's client loads.
#[test]
fn initial_root_loads_through_toughs_client() {
    let tmp = tempfile::tempdir().unwrap();
    let set = key_set(&tmp, 3, 2);
    let info = write_initial_root(&set, in_days(365)).unwrap();

    assert_eq!(info.version, 1);
    assert_eq!(info.path, set.dir().join("1.root.json"));
    assert_eq!(info.threshold, 2);
    assert_eq!(info.signatures, 3, "every root key signs");
    assert!(info.new_keys.is_empty());
    let v1 = fs::read(set.dir().join("1.root.json")).unwrap();
    assert_eq!(fs::read(set.dir().join("root.json")).unwrap(), v1);
    assert_eq!(info.sha256, hex::encode(Sha256::digest(&v1)));
    let names: Vec<_> = info.root_keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["root-1", "root-2", "root-3"]);

    // The keys in the root are the key set's.
    let (version, root) = current_root(set.dir()).unwrap();
    assert_eq!(version, 1);
    let root = root.signed;
    assert_eq!(
        root_ids(&root, RoleType::Root),
        named_ids(&set, &["root-1", "root-2", "root-3"])
    );
    assert_eq!(root.roles[&RoleType::Root].threshold.get(), 2);
    for (role, name) in [
        (RoleType::Targets, "targets"),
        (RoleType::Snapshot, "snapshot"),
        (RoleType::Timestamp, "timestamp"),
    ] {
        assert_eq!(root_ids(&root, role), named_ids(&set, &[name]), "{role}");
        assert_eq!(root.roles[&role].threshold.get(), 1);
    }
    assert_eq!(root.keys.len(), 6);

    let repo = publish(&set, &set.dir().join("root.json"), &[]);
    let loaded = load(&v1, &repo).unwrap();
    assert_eq!(loaded.root().signed.version.get(), 1);
    assert_eq!(read_target(&loaded), TARGET);
}

#[test]
fn init_refuses_to_overwrite_and_past_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let set = key_set(&tmp, 1, 1);
    assert!(matches!(
        write_initial_root(&set, Timestamp::now() - SignedDuration::from_secs(1)),
        Err(TufError::ExpiresInPast(_))
    ));
    assert!(!set.dir().join("1.root.json").exists());
    write_initial_root(&set, in_days(10)).unwrap();
    let before = fs::read(set.dir().join("root.json")).unwrap();
    assert!(matches!(
        write_initial_root(&set, in_days(10)),
        Err(TufError::RootExists(_))
    ));
    assert_eq!(fs::read(set.dir().join("root.json")).unwrap(), before);
}

// 2. Rotations 1 -> 2 (add a key, raise the threshold) -> 3 (replace root-1); a client
//    trusting version 1 walks the chain to 3.
#[test]
fn client_walks_rotated_roots_from_version_1() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = key_set(&tmp, 2, 1);
    write_initial_root(&set, in_days(365)).unwrap();
    let v1 = fs::read(set.dir().join("1.root.json")).unwrap();

    let change = RootChange {
        add: 1,
        threshold: Some(2),
        ..RootChange::default()
    };
    let two = rotate_root_with(&mut set, &change, in_days(365)).unwrap();
    assert_eq!(two.version, 2);
    assert_eq!(two.threshold, 2);
    assert_eq!(two.new_keys, ["root-3"]);
    assert_eq!(set.manifest().root.keys, ["root-1", "root-2", "root-3"]);

    let three = rotate_root(&mut set, &["root-1".into()], None, in_days(365)).unwrap();
    assert_eq!(three.version, 3);
    assert_eq!(three.threshold, 2, "threshold kept");
    assert_eq!(three.new_keys, ["root-4"]);
    assert_eq!(set.manifest().root.keys, ["root-2", "root-3", "root-4"]);
    assert_eq!(
        KeySet::open(set.dir()).unwrap().manifest(),
        set.manifest(),
        "key set saved"
    );

    // Every version kept, root.json is the newest.
    for n in 1..=3 {
        assert!(set.dir().join(format!("{n}.root.json")).exists());
    }
    let v3 = fs::read(set.dir().join("3.root.json")).unwrap();
    assert_eq!(fs::read(set.dir().join("root.json")).unwrap(), v3);
    assert_eq!(fs::read(set.dir().join("1.root.json")).unwrap(), v1);

    // Version 3 lists the new root keys only (root-1 retired) and the same online keys.
    let (version, root3) = current_root(set.dir()).unwrap();
    assert_eq!(version, 3);
    assert_eq!(
        root_ids(&root3.signed, RoleType::Root),
        named_ids(&set, &["root-2", "root-3", "root-4"])
    );
    let retired = named_ids(&set, &["root-1"]).remove(0);
    assert!(
        !root3
            .signed
            .keys
            .keys()
            .any(|id| hex::encode(id) == retired)
    );
    let root1: Signed<Root> = serde_json::from_slice(&v1).unwrap();
    for role in [RoleType::Targets, RoleType::Snapshot, RoleType::Timestamp] {
        assert_eq!(root3.signed.roles[&role], root1.signed.roles[&role]);
    }
    // 3 is signed by the old root-1 too (it vouched for the hand-over).
    let signers: Vec<String> = root3
        .signatures
        .iter()
        .map(|s| hex::encode(&s.keyid))
        .collect();
    assert!(signers.contains(&retired));

    let history = [1, 2].map(|n| set.dir().join(format!("{n}.root.json")));
    let repo = publish(&set, &set.dir().join("root.json"), &history);
    let loaded = load(&v1, &repo).unwrap();
    assert_eq!(loaded.root().signed.version.get(), 3);
    assert_eq!(read_target(&loaded), TARGET);

    // A client already at version 2 gets there too.
    let v2 = fs::read(set.dir().join("2.root.json")).unwrap();
    assert_eq!(load(&v2, &repo).unwrap().root().signed.version.get(), 3);
}

/// Root version 2 derived from `v1` with the root role handed to `new_key`, signed by `by`.
fn forged_v2(v1: &Signed<Root>, new_key: &FileKey, by: Vec<Box<dyn KeySource>>) -> Vec<u8> {
    let mut root = v1.signed.clone();
    root.version = NonZeroU64::new(2).unwrap();
    let id = tuf_key_id(new_key).unwrap();
    root.keys.insert(id.clone(), tuf_key(new_key));
    root.roles.insert(
        RoleType::Root,
        RoleKeys {
            keyids: vec![id],
            threshold: NonZeroU64::MIN,
            _extra: HashMap::new(),
        },
    );
    block_on(async {
        let rng = SystemRandom::new();
        // Sign with whichever of `by` the *new* or the *old* root lists.
        let mut signed = Signed {
            signed: root.clone(),
            signatures: Vec::new(),
        };
        for holder in [
            KeyHolder::Root(root.clone()),
            KeyHolder::Root(v1.signed.clone()),
        ] {
            if let Ok(part) = SignedRole::new(root.clone(), &holder, &by, &rng).await {
                signed.signatures.extend(part.signed().signatures.clone());
            }
        }
        assert!(!signed.signatures.is_empty());
        serde_json::to_vec_pretty(&signed).unwrap()
    })
}

// 3. A version 2 not vouched for by a threshold of version 1's root keys is refused.
#[test]
fn client_refuses_a_root_not_signed_by_the_old_root() {
    let tmp = tempfile::tempdir().unwrap();
    let set = key_set(&tmp, 1, 1);
    write_initial_root(&set, in_days(365)).unwrap();
    let v1_bytes = fs::read(set.dir().join("1.root.json")).unwrap();
    let v1: Signed<Root> = serde_json::from_slice(&v1_bytes).unwrap();
    let attacker = FileKey::generate_at(&tmp.path().join("attacker.key")).unwrap();
    let attacker_source = || SignerKeySource::boxed(FileKey::load(attacker.path()).unwrap());

    // Positive control: the repository itself is fine.
    let repo = publish(&set, &set.dir().join("root.json"), &[]);
    assert_eq!(
        load(&v1_bytes, &repo).unwrap().root().signed.version.get(),
        1
    );

    // Signed only by the new (attacker's) key.
    let forged = forged_v2(&v1, &attacker, vec![attacker_source()]);
    fs::write(repo.metadata.join("2.root.json"), &forged).unwrap();
    let err = load(&v1_bytes, &repo).expect_err("root 2 lacks root 1's signatures");
    assert!(err.contains("SignatureThreshold"), "{err}");

    // Signed only by the old key: the new root's own threshold is not met.
    let old_only = forged_v2(
        &v1,
        &attacker,
        vec![SignerKeySource::boxed(set.load("root-1").unwrap())],
    );
    fs::write(repo.metadata.join("2.root.json"), &old_only).unwrap();
    let err = load(&v1_bytes, &repo).expect_err("root 2 lacks its own keys' signatures");
    assert!(err.contains("SignatureThreshold"), "{err}");

    // Signed by both: accepted (the forgery above failed only for want of signatures).
    let both = forged_v2(
        &v1,
        &attacker,
        vec![
            attacker_source(),
            SignerKeySource::boxed(set.load("root-1").unwrap()),
        ],
    );
    fs::write(repo.metadata.join("2.root.json"), &both).unwrap();
    assert_eq!(
        load(&v1_bytes, &repo).unwrap().root().signed.version.get(),
        2
    );
}

// 4. Rotation refuses bad requests and changes nothing when it does.
#[test]
fn rotation_refuses_unknown_keys_and_unmeetable_thresholds() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = key_set(&tmp, 2, 1);
    write_initial_root(&set, in_days(365)).unwrap();
    let before = snapshot_dir(set.dir());
    let manifest = set.manifest().clone();

    let err = rotate_root(&mut set, &["root-9".into()], None, in_days(365)).unwrap_err();
    assert!(
        matches!(&err, TufError::UnknownRootKey { name, .. } if name == "root-9"),
        "{err}"
    );
    assert!(err.to_string().contains("root-1, root-2"), "{err}");
    // A key that exists but is not a root key.
    assert!(matches!(
        rotate_root(&mut set, &["targets".into()], None, in_days(365)),
        Err(TufError::UnknownRootKey { .. })
    ));
    assert!(matches!(
        rotate_root(
            &mut set,
            &["root-1".into(), "root-1".into()],
            None,
            in_days(365)
        ),
        Err(TufError::DuplicateRootKey(_))
    ));
    for threshold in [0, 3] {
        let err =
            rotate_root(&mut set, &["root-1".into()], Some(threshold), in_days(365)).unwrap_err();
        assert!(
            matches!(err, TufError::BadThreshold { threshold: t, keys: 2 } if t == threshold),
            "{err}"
        );
    }
    assert!(matches!(
        rotate_root(
            &mut set,
            &[],
            None,
            Timestamp::now() - SignedDuration::from_hours(1)
        ),
        Err(TufError::ExpiresInPast(_))
    ));

    assert_eq!(set.manifest(), &manifest);
    assert_eq!(snapshot_dir(set.dir()), before, "nothing written");
}

#[test]
fn rotation_needs_a_threshold_of_the_old_root_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = key_set(&tmp, 3, 3);
    write_initial_root(&set, in_days(365)).unwrap();
    fs::remove_file(set.key_path("root-3")).unwrap();
    let before = snapshot_dir(set.dir());

    let err = rotate_root(&mut set, &["root-3".into()], Some(2), in_days(365)).unwrap_err();
    match &err {
        TufError::NotEnoughOldRootKeys {
            version,
            threshold,
            available,
            unavailable,
        } => {
            assert_eq!((*version, *threshold, *available), (1, 3, 2));
            assert_eq!(unavailable, &["root-3"]);
        }
        other => panic!("expected NotEnoughOldRootKeys, got {other}"),
    }
    assert!(err.to_string().contains("threshold is 3"), "{err}");
    assert_eq!(
        snapshot_dir(set.dir()),
        before,
        "no key created, nothing written"
    );
}

#[test]
fn a_lost_root_key_is_replaced_while_a_threshold_remains() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = key_set(&tmp, 3, 2);
    write_initial_root(&set, in_days(365)).unwrap();
    let v1 = fs::read(set.dir().join("1.root.json")).unwrap();
    let lost = named_ids(&set, &["root-1"]).remove(0);
    fs::remove_file(set.key_path("root-1")).unwrap();

    // Keeping the lost key is refused (it could not sign).
    assert!(matches!(
        rotate_root(&mut set, &["root-2".into()], None, in_days(365)),
        Err(TufError::KeptKeyUnavailable { name, .. }) if name == "root-1"
    ));
    let info = rotate_root(&mut set, &["root-1".into()], None, in_days(365)).unwrap();
    assert_eq!(info.version, 2);
    assert_eq!(info.new_keys.len(), 1);
    // (The key set reuses the free name "root-1" for the fresh key.)
    let root2 = current_root(set.dir()).unwrap().1.signed;
    let ids = root_ids(&root2, RoleType::Root);
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&lost), "the lost key is no longer trusted");
    assert_eq!(
        ids,
        named_ids(&set, &["root-2", "root-3", &info.new_keys[0]])
    );

    let repo = publish(
        &set,
        &set.dir().join("root.json"),
        &[set.dir().join("1.root.json")],
    );
    assert_eq!(load(&v1, &repo).unwrap().root().signed.version.get(), 2);
}

#[test]
fn an_interrupted_rotation_is_completed_by_rotating_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = key_set(&tmp, 2, 2);
    write_initial_root(&set, in_days(365)).unwrap();
    let v1 = fs::read(set.dir().join("1.root.json")).unwrap();
    // As if a rotation replacing root-1 died after the key set was updated.
    set.set_root_keys(&["root-2".into()], 1, 2).unwrap();
    assert_eq!(current_root(set.dir()).unwrap().0, 1);

    let info = rotate_root(&mut set, &[], None, in_days(365)).unwrap();
    assert_eq!(info.version, 2);
    assert!(info.new_keys.is_empty());
    let root2 = current_root(set.dir()).unwrap().1.signed;
    assert_eq!(
        root_ids(&root2, RoleType::Root),
        named_ids(&set, &["root-2", "root-3"])
    );

    let repo = publish(
        &set,
        &set.dir().join("root.json"),
        &[set.dir().join("1.root.json")],
    );
    assert_eq!(load(&v1, &repo).unwrap().root().signed.version.get(), 2);
}

/// OLPC canonical JSON (what TUF signs): sorted keys, no whitespace, strings escaping only
/// `"` and `\`.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(&Value::String(k.clone()), out);
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn canonical_string(value: &Value) -> String {
    let mut out = String::new();
    canonical(value, &mut out);
    out
}

// 5. root.json is standard TUF metadata, checked without tough's parser.
#[test]
fn root_json_is_standard_tuf() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = key_set(&tmp, 3, 2);
    write_initial_root(&set, in_days(365) + SignedDuration::from_millis(123)).unwrap();
    rotate_root(&mut set, &["root-2".into()], None, in_days(400)).unwrap();

    // Public keys seen so far: version 2 also carries signatures of retired root-2.
    let mut known = serde_json::Map::new();
    for n in 1..=2u64 {
        let json: Value =
            serde_json::from_slice(&fs::read(set.dir().join(format!("{n}.root.json"))).unwrap())
                .unwrap();
        let signed = &json["signed"];
        assert_eq!(signed["_type"], "root");
        assert_eq!(signed["spec_version"], "1.0.0");
        assert_eq!(signed["consistent_snapshot"], true);
        assert_eq!(signed["version"], n);
        let expires = signed["expires"].as_str().unwrap();
        assert_eq!(
            expires.len(),
            "2030-01-01T00:00:00Z".len(),
            "whole seconds: {expires}"
        );
        assert!(expires.ends_with('Z'));
        assert_eq!(signed["roles"]["root"]["threshold"], 2);
        for role in ["targets", "snapshot", "timestamp"] {
            assert_eq!(signed["roles"][role]["threshold"], 1);
            assert_eq!(signed["roles"][role]["keyids"].as_array().unwrap().len(), 1);
        }

        // Key ids: SHA-256 of the canonical key record, as every TUF implementation
        // computes them; tough's Key::key_id agrees.
        let keys = signed["keys"].as_object().unwrap();
        assert_eq!(keys.len(), 6);
        known.extend(keys.clone());
        for (id, key) in keys {
            assert_eq!(key["keytype"], "ed25519");
            assert_eq!(key["scheme"], "ed25519");
            assert_eq!(key["keyval"]["public"].as_str().unwrap().len(), 64);
            assert_eq!(&hex::encode(Sha256::digest(canonical_string(key))), id);
            let parsed: tough::schema::key::Key = serde_json::from_value(key.clone()).unwrap();
            assert_eq!(&hex::encode(parsed.key_id().unwrap()), id);
        }
        let listed: Vec<&str> = signed["roles"]["root"]["keyids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let expected = if n == 1 {
            named_ids(&set, &["root-1", "root-2", "root-3"])
        } else {
            named_ids(&set, &["root-1", "root-3", "root-4"])
        };
        assert_eq!(listed, expected);

        // Signatures: ed25519 over the canonical JSON of "signed", by listed keys.
        let message = canonical_string(signed);
        let sigs = json["signatures"].as_array().unwrap();
        assert_eq!(
            sigs.len(),
            if n == 1 { 3 } else { 4 },
            "all old and new root keys"
        );
        for sig in sigs {
            let id = sig["keyid"].as_str().unwrap();
            let public = hex::decode(known[id]["keyval"]["public"].as_str().unwrap()).unwrap();
            let key = VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
            let bytes: [u8; 64] = hex::decode(sig["sig"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            key.verify_strict(message.as_bytes(), &Signature::from_bytes(&bytes))
                .unwrap_or_else(|e| panic!("{n}.root.json: signature by {id}: {e}"));
        }
    }
}

// The sync API may be called from async code (the server): it must not panic there.
#[tokio::test]
async fn works_from_inside_an_async_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = key_set(&tmp, 1, 1);
    write_initial_root(&set, in_days(30)).unwrap();
    let info = rotate_root(&mut set, &["root-1".into()], None, in_days(30)).unwrap();
    assert_eq!(info.version, 2);
    assert_eq!(current_root(set.dir()).unwrap().0, 2);
}
