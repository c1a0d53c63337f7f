//! Offline release signing with the `otter-keys` binary: `init --offline-release` writes a
//! top-level targets that delegates images to k-of-n release keys, and `sign-release` signs
//! each new release version with whatever release keys are at hand.

use std::fs;
use std::path::{Path, PathBuf};

use otter_keys::keyset::KeySet;
use otter_keys::targets::TargetInfo;
use otter_keys::tuf::delegation::{self, DELTAS_ROLE, RELEASE_ROLE};
use otter_keys::tuf::{current_root, metadata_path, read_targets};
use sha2::{Digest, Sha256};

mod cli_helpers;
use cli_helpers::{fails, ok, s};

/// A signed image of `version` for acme-thermo, signed by `keys`' firmware key.
fn image(tmp: &Path, keys: &Path, version: &str) -> PathBuf {
    let raw = tmp.join(format!("{version}.bin"));
    fs::write(&raw, version.repeat(300)).unwrap();
    let out = tmp.join(format!("{version}.img"));
    let key = keys.join("keys/firmware-1.key");
    ok(&[
        "sign-image",
        "--key",
        s(&key),
        "--hardware-id",
        "acme-thermo",
        "--version",
        version,
        "--security-counter",
        "1",
        s(&raw),
        "-o",
        s(&out),
    ]);
    out
}

#[test]
fn init_delegates_images_offline_and_sign_release_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let printed = ok(&[
        "init",
        s(&keys),
        "--offline-release",
        "--release-keys",
        "3",
        "--release-threshold",
        "2",
    ]);
    assert!(
        printed.contains("release-1, release-2, release-3 (threshold 2)"),
        "{printed}"
    );
    let set = KeySet::open(&keys).unwrap();
    // The server holds the deltas key, not the targets key.
    let online = set.online_key_names();
    assert!(online.contains(&"deltas".to_owned()), "{online:?}");
    assert!(!online.contains(&"targets".to_owned()), "{online:?}");

    // Top-level targets v1 verifies under the root and lists nothing itself.
    let (_, root) = current_root(&keys).unwrap();
    let top = read_targets(&metadata_path(&keys, "targets", 1)).unwrap();
    root.signed.verify_role(&top).unwrap();
    assert!(top.signed.targets.is_empty());
    let delegations = top.signed.delegations.clone().unwrap();
    let names: Vec<&str> = delegations.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, [RELEASE_ROLE, DELTAS_ROLE]);
    assert_eq!(delegations.roles[0].threshold.get(), 2);
    let first = read_targets(&metadata_path(&keys, RELEASE_ROLE, 1)).unwrap();
    delegation::check_delegated(&delegations, RELEASE_ROLE, &first).unwrap();
    assert!(first.signed.targets.is_empty());

    // Release 1.4.0, signed with every release key.
    let img = image(tmp.path(), &keys, "1.4.0");
    let printed = ok(&["sign-release", s(&keys), s(&img)]);
    assert!(
        printed.contains("firmware/acme-thermo/1.4.0.img"),
        "{printed}"
    );
    let second = read_targets(&metadata_path(&keys, RELEASE_ROLE, 2)).unwrap();
    delegation::check_delegated(&delegations, RELEASE_ROLE, &second).unwrap();
    assert_eq!(second.signatures.len(), 3);
    let (name, target) = second.signed.targets.iter().next().unwrap();
    assert_eq!(name.raw(), "firmware/acme-thermo/1.4.0.img");
    let bytes = fs::read(&img).unwrap();
    assert_eq!(target.length, bytes.len() as u64);
    assert_eq!(
        target.hashes.sha256.to_vec(),
        Sha256::digest(&bytes).to_vec()
    );
    match TargetInfo::from_custom(&target.custom).unwrap() {
        TargetInfo::Image(info) => {
            assert_eq!(info.hardware_id, "acme-thermo");
            assert_eq!(info.version.to_string(), "1.4.0");
            assert_eq!(info.security_counter, 1);
        }
        other => panic!("{other:?}"),
    }

    // One release key away: two of three still meet the threshold, and 1.4.0 stays listed.
    fs::remove_file(keys.join("keys/release-3.key")).unwrap();
    let next = image(tmp.path(), &keys, "1.5.0");
    ok(&["sign-release", s(&keys), s(&next)]);
    let third = read_targets(&metadata_path(&keys, RELEASE_ROLE, 3)).unwrap();
    delegation::check_delegated(&delegations, RELEASE_ROLE, &third).unwrap();
    assert_eq!(third.signatures.len(), 2);
    assert_eq!(third.signed.targets.len(), 2);

    // Two away: refused, and nothing written.
    fs::remove_file(keys.join("keys/release-2.key")).unwrap();
    let err = fails(&["sign-release", s(&keys)]);
    assert!(
        err.contains("only 1 release key(s) are available but 2 must sign"),
        "{err}"
    );
    assert!(!metadata_path(&keys, RELEASE_ROLE, 4).exists());
}

#[test]
fn sign_release_refuses_foreign_images_and_key_sets_without_release_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let other = tmp.path().join("other");
    ok(&["init", s(&keys), "--offline-release"]);
    ok(&["init", s(&other)]);

    let foreign = image(tmp.path(), &other, "2.0.0");
    let err = fails(&["sign-release", s(&keys), s(&foreign)]);
    assert!(
        err.contains("does not verify under this key set's firmware keys"),
        "{err}"
    );
    let garbage = tmp.path().join("garbage.img");
    fs::write(&garbage, b"not an image").unwrap();
    let err = fails(&["sign-release", s(&keys), s(&garbage)]);
    assert!(err.contains("not a signed Otter image"), "{err}");
    assert!(!metadata_path(&keys, RELEASE_ROLE, 2).exists());

    let own = image(tmp.path(), &other, "2.0.1");
    let err = fails(&["sign-release", s(&other), s(&own)]);
    assert!(err.contains("no release keys"), "{err}");

    // A top-level targets in the key directory that the root does not vouch for (here
    // re-signed by the online deltas key, adding nothing) is not trusted to name release keys.
    let set = KeySet::open(&keys).unwrap();
    let deltas = set.signer("deltas").unwrap();
    let mut top = read_targets(&metadata_path(&keys, "targets", 1))
        .unwrap()
        .signed;
    top.version = std::num::NonZeroU64::new(2).unwrap();
    let forged = tough::schema::Signed {
        signatures: vec![tough::schema::Signature {
            keyid: otter_keys::tuf::tuf_key_id(deltas.as_ref()).unwrap(),
            sig: deltas
                .sign(&tough::schema::Role::canonical_form(&top).unwrap())
                .unwrap()
                .to_vec()
                .into(),
        }],
        signed: top,
    };
    let forged_path = metadata_path(&keys, "targets", 2);
    fs::write(&forged_path, serde_json::to_vec(&forged).unwrap()).unwrap();
    let err = fails(&["sign-release", s(&keys)]);
    assert!(
        err.contains("not signed by the root's targets key"),
        "{err}"
    );
    fs::remove_file(&forged_path).unwrap();

    // A base that the release keys did not sign is not built upon.
    let forged = tmp.path().join("forged.json");
    let mut base = read_targets(&metadata_path(&keys, RELEASE_ROLE, 1)).unwrap();
    base.signed.version = std::num::NonZeroU64::new(7).unwrap();
    fs::write(&forged, serde_json::to_vec(&base).unwrap()).unwrap();
    let err = fails(&["sign-release", s(&keys), "--from", s(&forged)]);
    assert!(err.contains("not signed by its keys"), "{err}");
}
