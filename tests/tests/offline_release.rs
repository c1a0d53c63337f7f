//! Offline release signing end to end: the vendor's release keys, not the server, decide
//! which images exist. The vendor signs each release version with the real `otter-keys
//! sign-release` and uploads it; the server publishes it, lists deltas with its online deltas
//! key, and the real agent resolves both through the TUF delegations.
//!
//! Then the server is taken: an attacker with its database and every online key (snapshot,
//! timestamp, director, deltas) and a rollout policy tries to list a vendor-signed image the
//! vendor never released, every way those keys allow. Every device refuses, and a delegated
//! role's entry outside its paths is ignored while the rest of the repository still works.

mod common;

use std::path::PathBuf;

use common::forge::{newest_targets, publish_forged};
use common::smuggle::{list_release, sha256};
use common::{BOARD, Device, Fleet, firmware, next_release};
use otter_agent::after_boot::AfterBoot;
use otter_agent::cycle::Outcome;
use otter_boot::layout::Slot;
use otter_keys::keyset::KeySet;
use otter_keys::signer::Signer;
use otter_keys::tuf::{image_target, write_delegating_targets, write_initial_root};
use otter_server::auth::Scope;
use serde_json::Value;

const SIZE: usize = 64 * 1024;

/// A server on a key directory made with `otter-keys init --offline-release`.
async fn start() -> Fleet {
    Fleet::start_with(|config, dir| {
        let keys = dir.join("vendor-keys");
        let set = KeySet::create_in(&keys, 1, 1, None, None, Some((1, 1))).unwrap();
        let expires =
            jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 86_400).unwrap();
        write_initial_root(&set, expires).unwrap();
        write_delegating_targets(&set, expires).unwrap();
        config.keys_dir = Some(keys);
    })
    .await
}

fn keydir(fleet: &Fleet) -> PathBuf {
    fleet.state.keys.dir.clone()
}

/// The vendor lists `images` in the next release version with the real binary, and uploads
/// it; returns the server's answer.
async fn release(fleet: &Fleet, images: &[&[u8]]) -> (u16, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "sign-release".to_owned(),
        keydir(fleet).display().to_string(),
    ];
    for (i, image) in images.iter().enumerate() {
        let path = tmp.path().join(format!("{i}.img"));
        std::fs::write(&path, image).unwrap();
        args.push(path.display().to_string());
    }
    let out = std::process::Command::new(common::binaries().join("otter-keys"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, newest) = otter_keys::tuf::newest_metadata(&keydir(fleet), "release")
        .unwrap()
        .unwrap();
    let file =
        otter_keys::tuf::metadata_path(&keydir(fleet), "release", newest.signed.version.get());
    upload(fleet, &std::fs::read_to_string(file).unwrap()).await
}

async fn upload(fleet: &Fleet, body: &str) -> (u16, Value) {
    let token = fleet.token(&[Scope::Publish]).await;
    let response = fleet
        .client
        .put(format!("{}/api/v1/tuf/release", fleet.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The firmware key's public half (the vendor signed these images with it).
fn firmware_keys(fleet: &Fleet) -> Vec<otter_boot::trust::TrustedKey> {
    fleet.state.keys.firmware.clone()
}

/// What the device did: assert the update to `version` by delta, then boot and confirm it.
async fn install_and_confirm(device: &Device, version: &str) {
    let agent = device.agent();
    let outcome = agent.check().await.unwrap();
    let Outcome::Installed {
        version: installed,
        via_delta,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(installed.to_string(), version);
    assert!(via_delta, "the delta of the online deltas role applies");
    drop(agent);
    let boot = device.reset();
    assert!(boot.trial, "boots on trial");
    assert_eq!(
        device.agent().after_boot().await.unwrap(),
        AfterBoot::Confirmed(version.parse().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_signed_offline_reaches_the_device_through_the_delegations() {
    let fleet = start().await;
    let base = firmware(SIZE, 71);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, 72));
    let r1 = fleet.publish_only(v1.clone()).await;
    assert_eq!(release(&fleet, &[&v1]).await.0, 200);
    fleet.roll_out(&r1, "100%").await;
    let device = fleet.device("SN-OFF-1", &fleet.url, &v1).await;

    // Published, delta built, rolled out: but no release version lists 1.1.0 yet, so the
    // server cannot offer it.
    let r2 = fleet.publish_only(v2.clone()).await;
    fleet.roll_out(&r2, "100%").await;
    let agent = device.agent();
    assert!(matches!(
        agent.check().await.unwrap(),
        Outcome::UpToDate { .. }
    ));
    let deltas = newest_targets(&fleet, "deltas").await;
    assert!(
        deltas
            .signed
            .targets
            .keys()
            .any(|n| n.raw().starts_with("deltas/")),
        "the server lists the delta it built"
    );
    drop(agent);

    // The vendor signs 1.1.0 offline; the device takes the delta to it.
    let (status, answer) = release(&fleet, &[&v2]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["version"], 3);
    install_and_confirm(&device, "1.1.0").await;
    assert_eq!(&device.slot_bytes(Slot::B)[..v2.len()], &v2[..]);

    // python-tuf, the reference client, walks the same delegations.
    let delta = (deltas.signed.targets.keys())
        .find(|n| n.raw().starts_with("deltas/"))
        .unwrap()
        .raw()
        .to_owned();
    if let Some(report) = python_tuf(&fleet, &["firmware/e2e-board/1.1.0.img", &delta]).await {
        let image = &report["targets"]["firmware/e2e-board/1.1.0.img"];
        assert_eq!(image["sha256"], hex::encode(sha256(&v2)), "{report}");
        assert_eq!(image["custom"]["version"], "1.1.0", "{report}");
        assert_eq!(
            report["targets"][&delta]["custom"]["kind"], "delta",
            "{report}"
        );
    }
    fleet.stop().await;
}

/// python-tuf's report of downloading `names` from the fleet's repository, or `None` (with
/// the reason printed) when python-tuf is missing and `OTTER_REQUIRE_ALL` is not set.
async fn python_tuf(fleet: &Fleet, names: &[&str]) -> Option<Value> {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import tuf.ngclient"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("OTTER_REQUIRE_ALL").as_deref() != Ok("1"),
            "OTTER_REQUIRE_ALL=1 but python-tuf is missing (pip install tuf)"
        );
        eprintln!("skipping python-tuf: it is missing (pip install tuf)");
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../server/tests/interop/python_tuf_client.py");
    let work = tempfile::tempdir().unwrap();
    let mut args = vec![
        script.display().to_string(),
        format!("{}/tuf/metadata/", fleet.url),
        format!("{}/tuf/targets/", fleet.url),
        keydir(fleet).join("1.root.json").display().to_string(),
        work.path().display().to_string(),
    ];
    args.extend(names.iter().map(|n| (*n).to_owned()));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args(&args).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "python-tuf failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_refuses_release_metadata_it_cannot_trust() {
    let fleet = start().await;
    let base = firmware(SIZE, 81);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, 82));
    fleet.publish_only(v1.clone()).await;
    // Version 1 (empty) came from the key directory at start.
    assert_eq!(
        newest_targets(&fleet, "release").await.signed.version.get(),
        1
    );
    assert_eq!(release(&fleet, &[&v1]).await.0, 200);
    let release_before = newest_targets(&fleet, "release").await;

    // Not yet published: refused, nothing stored.
    let (status, answer) = release(&fleet, &[&v1, &v2]).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("firmware/e2e-board/1.1.0.img, which is not published"),
        "{answer}"
    );
    assert_eq!(newest_targets(&fleet, "release").await, release_before);

    // Signed by the server's own deltas key: refused.
    let set = KeySet::open(&keydir(&fleet)).unwrap();
    let deltas_key = set.signer("deltas").unwrap();
    let mut forged = release_before.signed.clone();
    forged.version = forged.version.checked_add(5).unwrap();
    let (name, target) = image_target(&v1, &firmware_keys(&fleet)).unwrap();
    forged.targets.insert(name, target);
    let body = serde_json::to_string(&common::forge::sign(forged.clone(), &[deltas_key.as_ref()]))
        .unwrap();
    let (status, answer) = upload(&fleet, &body).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer.to_string().contains("not signed by its keys"),
        "{answer}"
    );

    // Not newer than what is served: refused.
    let release_key = set.signer("release-1").unwrap();
    let mut stale = forged.clone();
    stale.version = release_before.signed.version;
    let body = serde_json::to_string(&common::forge::sign(stale, &[release_key.as_ref()])).unwrap();
    assert_eq!(upload(&fleet, &body).await.0, 409);

    // Garbage, too much, not UTF-8, and a missing token.
    assert_eq!(upload(&fleet, "{\"signed\": 1}").await.0, 400);
    assert_eq!(upload(&fleet, &" ".repeat(5 << 20)).await.0, 413);
    let token = fleet.token(&[Scope::Publish]).await;
    let latin1 = fleet
        .client
        .put(format!("{}/api/v1/tuf/release", fleet.url))
        .bearer_auth(token)
        .body(vec![b'{', 0xff, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(latin1.status().as_u16(), 400);
    let anonymous = fleet
        .client
        .put(format!("{}/api/v1/tuf/release", fleet.url))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(newest_targets(&fleet, "release").await, release_before);
    fleet.stop().await;
}

/// One way the attacker lists the unreleased image.
#[derive(Clone, Copy, Debug)]
enum Attack {
    /// New release metadata, signed with the online deltas key.
    ReleaseSignedOnline,
    /// New top-level targets listing the image, signed with the online deltas key.
    TopLevelSignedOnline,
    /// The image listed in the deltas role (outside its paths), signed by the deltas key.
    ImageInTheDeltasRole,
    /// The image listed in the deltas role under a `deltas/` name (inside its paths), its
    /// custom fields saying it is an image.
    ImageUnderADeltaName,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_holding_only_online_keys_cannot_list_an_image() {
    for (i, attack) in [
        Attack::ReleaseSignedOnline,
        Attack::TopLevelSignedOnline,
        Attack::ImageInTheDeltasRole,
        Attack::ImageUnderADeltaName,
    ]
    .into_iter()
    .enumerate()
    {
        attack_once(attack, 90 + 10 * i as u64).await;
    }
}

async fn attack_once(attack: Attack, seed: u64) {
    let fleet = start().await;
    let base = firmware(SIZE, seed);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, seed + 1));
    // Vendor-signed, never released (a lab build, say).
    let unreleased = fleet.image("1.2.0", &next_release(&base, seed + 2));
    let r1 = fleet.publish_only(v1.clone()).await;
    let r2 = fleet.publish_only(v2.clone()).await;
    assert_eq!(release(&fleet, &[&v1, &v2]).await.0, 200);
    fleet.roll_out(&r1, "100%").await;
    let device = fleet.device("SN-ATTACK", &fleet.url, &v1).await;
    let running = device.slot_bytes(Slot::A);

    // The attacker: the image as a release row and blob, then the listing.
    let id = list_release(&fleet, "1.2.0", &unreleased).await;
    let keys = KeySet::open(&keydir(&fleet)).unwrap();
    let deltas_key = keys.signer("deltas").unwrap();
    let (mut name, target) = image_target(&unreleased, &firmware_keys(&fleet)).unwrap();
    let (role, mut listing) = match attack {
        Attack::ReleaseSignedOnline => ("release", newest_targets(&fleet, "release").await),
        Attack::TopLevelSignedOnline => ("targets", newest_targets(&fleet, "targets").await),
        Attack::ImageInTheDeltasRole => ("deltas", newest_targets(&fleet, "deltas").await),
        Attack::ImageUnderADeltaName => {
            name = tough::TargetName::new("deltas/e2e-board/1.2.0.img").unwrap();
            sqlx::query("UPDATE releases SET target_name = $1 WHERE id = $2")
                .bind(name.raw())
                .bind(&id)
                .execute(fleet.state.db.pool())
                .await
                .unwrap();
            ("deltas", newest_targets(&fleet, "deltas").await)
        }
    };
    listing.signed.targets.insert(name.clone(), target);
    publish_forged(
        &fleet,
        role,
        listing.signed,
        deltas_key.as_ref() as &dyn Signer,
    )
    .await;
    // Assigned to the whole board under a policy the fleet manager signed for it.
    let evil = serde_json::json!({
        "id": id, "hardware_id": BOARD, "sha256": hex::encode(sha256(&unreleased)),
    });
    fleet.roll_out(&evil, "100%").await;

    let agent = device.agent();
    let err = agent.check().await.unwrap_err();
    let what = format!("{attack:?}");
    match attack {
        // The release role's new version does not verify: a search for an image reaches
        // it and stops there (TUF §5.6.7), so no image is found.
        Attack::ReleaseSignedOnline => {
            assert_eq!(err.stage, "select", "{what}: {err}");
            assert!(
                err.to_string()
                    .contains("the search stopped at delegated role \"release\""),
                "{what}: {err}"
            );
            assert!(
                err.to_string().contains("Signature threshold"),
                "{what}: {err}"
            );
        }
        // The top-level targets does not verify under the root: the refresh fails whole.
        Attack::TopLevelSignedOnline => {
            assert_eq!(err.stage, "tuf", "{what}: {err}");
            assert!(
                err.to_string().contains("Signature threshold"),
                "{what}: {err}"
            );
        }
        // An entry outside the deltas role's paths is ignored: 1.2.0 is in no signed
        // targets as TUF resolves the name.
        Attack::ImageInTheDeltasRole => {
            assert_eq!(err.stage, "select", "{what}: {err}");
            assert!(
                err.to_string()
                    .contains("firmware/e2e-board/1.2.0.img\" is not in the signed TUF targets"),
                "{what}: {err}"
            );
        }
        // Resolved, but an image comes only from its own name, which only the release
        // role may list.
        Attack::ImageUnderADeltaName => {
            assert_eq!(err.stage, "select", "{what}: {err}");
            assert!(
                err.to_string()
                    .contains("\"deltas/e2e-board/1.2.0.img\" is not a firmware image"),
                "{what}: {err}"
            );
        }
    }
    assert_eq!(device.slot_bytes(Slot::A), running, "{what}: running slot");
    assert_eq!(
        agent.device().status().unwrap().trial,
        None,
        "{what}: trial"
    );
    assert!(
        agent.device().slot_image(Slot::B).is_err(),
        "{what}: the other slot holds no bootable image"
    );
    drop(agent);

    if let Attack::ImageInTheDeltasRole = attack {
        // The rest of the repository still works: the fleet manager rolls out the real
        // 1.1.0, and the device takes its delta from the very deltas metadata that carries
        // the stray entry. (A second later: rollouts started in the same second go by
        // version, and the aborted 1.2.0 one, which the device is a member of, would hold it.)
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        fleet.roll_out(&r2, "100%").await;
        install_and_confirm(&device, "1.1.0").await;
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_online_repository_moves_to_offline_release_signing() {
    let fleet = Fleet::start_with(|config, dir| {
        let keys = dir.join("vendor-keys");
        let set = KeySet::create(&keys, 1, 1).unwrap();
        let expires =
            jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 86_400).unwrap();
        write_initial_root(&set, expires).unwrap();
        config.keys_dir = Some(keys);
    })
    .await;
    let base = firmware(SIZE, 61);
    let v1 = fleet.image("1.0.0", &base);
    let v2 = fleet.image("1.1.0", &next_release(&base, 62));
    fleet.publish(v1.clone()).await;
    let device = fleet.device("SN-MOVE", &fleet.url, &v1).await;
    assert!(matches!(
        device.agent().check().await.unwrap(),
        Outcome::UpToDate { .. }
    ));
    let old_targets_key = KeySet::open(&keydir(&fleet))
        .unwrap()
        .signer("targets")
        .unwrap();

    // The vendor turns it on with the real binary, from what the server serves, keeping
    // 1.0.0 listed; the operator restarts the server on the new key directory.
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("targets.json");
    let body = fleet
        .client
        .get(format!("{}/tuf/metadata/targets.json", fleet.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(&served, body).unwrap();
    let v1_file = tmp.path().join("1.0.0.img");
    std::fs::write(&v1_file, &v1).unwrap();
    let out = std::process::Command::new(common::binaries().join("otter-keys"))
        .args([
            "enable-offline-release",
            &keydir(&fleet).display().to_string(),
        ])
        .args(["--served-targets", &served.display().to_string()])
        .arg(&v1_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fleet = fleet.restart().await;
    let release_v1 = newest_targets(&fleet, "release").await;
    assert_eq!(release_v1.signed.version.get(), 1);
    assert!(
        release_v1
            .signed
            .targets
            .keys()
            .any(|n| n.raw() == "firmware/e2e-board/1.0.0.img")
    );

    // The device walks to root 2 and takes 1.1.0 once the vendor releases it offline.
    let r2 = fleet.publish_only(v2.clone()).await;
    assert_eq!(release(&fleet, &[&v2]).await.0, 200);
    fleet.roll_out(&r2, "100%").await;
    install_and_confirm(&device, "1.1.0").await;

    // The old online targets key is worth nothing now: top-level targets it signs are
    // refused.
    let mut listing = newest_targets(&fleet, "targets").await.signed;
    let unreleased = fleet.image("1.2.0", &next_release(&base, 63));
    let (name, target) = image_target(&unreleased, &firmware_keys(&fleet)).unwrap();
    listing.targets.insert(name, target);
    listing.delegations = None;
    let id = list_release(&fleet, "1.2.0", &unreleased).await;
    publish_forged(&fleet, "targets", listing, old_targets_key.as_ref()).await;
    let evil = serde_json::json!({
        "id": id, "hardware_id": BOARD, "sha256": hex::encode(sha256(&unreleased)),
    });
    fleet.roll_out(&evil, "100%").await;
    let err = device.agent().check().await.unwrap_err();
    assert_eq!(err.stage, "tuf", "{err}");
    fleet.stop().await;
}
