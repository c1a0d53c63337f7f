//! `otter-server rollout ...` through the real binary against a running server: create a
//! draft, refuse to start it without a policy, upload one, start, list, show, pause, watch.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::binary::{BIN, serve};
use otter_boot::image::{HardwareId, Version};
use otter_keys::image::{ImageSpec, sign_image};
use otter_keys::keyset::KeySet;
use serde_json::Value;

fn rollout(dir: &Path, url: &str, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("rollout")
        .args(args)
        .args(["--server", url])
        .env("OTTER_TOKEN", token)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_rollout_commands_drive_a_rollout_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &[]);
    let token = server.admin_token();
    let url = server.url.clone();
    let keys = KeySet::open(&dir.path().join("otter-data/dev-keys")).unwrap();
    let spec = ImageSpec {
        hardware_id: HardwareId::new("cli-board").unwrap(),
        version: "2.0.0".parse::<Version>().unwrap(),
        security_counter: 1,
    };
    let image = sign_image(&[7u8; 4000], &spec, &keys.signing_firmware_key().unwrap()).unwrap();
    let path = dir.path().join("fw.img");
    std::fs::write(&path, image).unwrap();
    let out = Command::new(BIN)
        .args([
            "publish",
            path.to_str().unwrap(),
            "--no-wait",
            "--server",
            &url,
        ])
        .env("OTTER_TOKEN", &token)
        .output()
        .unwrap();
    let release: Value = serde_json::from_str(&ok(&out)).unwrap();
    let release_id = release["id"].as_str().unwrap();

    let out = rollout(
        dir.path(),
        &url,
        &token,
        &[
            "create",
            "--release",
            release_id,
            "--stage",
            "100%:1h",
            "--min-devices",
            "1",
        ],
    );
    let created: Value = serde_json::from_str(&ok(&out)).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["state"], "draft");

    let out = rollout(dir.path(), &url, &token, &["start", &id]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("409") && stderr.contains("no signed policy"),
        "{stderr}"
    );

    let policy = common::sign_policy(&keys, &id, &release, "100%");
    let policy_file = dir.path().join("policy.json");
    std::fs::write(&policy_file, serde_json::to_string(&policy).unwrap()).unwrap();
    let file = policy_file.to_str().unwrap();
    ok(&rollout(dir.path(), &url, &token, &["policy", &id, file]));
    let started = ok(&rollout(
        dir.path(),
        &url,
        &token,
        &["start", &id, "--reason", "go"],
    ));
    assert!(
        started.contains(&format!("{id} running: stage 1/1")),
        "{started}"
    );

    let listed = ok(&rollout(dir.path(), &url, &token, &["list"]));
    assert!(
        listed.contains(&id) && listed.contains("running"),
        "{listed}"
    );
    let shown = ok(&rollout(dir.path(), &url, &token, &["show", &id]));
    assert!(shown.contains("stage 1   100% ["), "{shown}");
    assert!(shown.contains("draft -> running (go)"), "{shown}");
    let json: Value = serde_json::from_str(&ok(&rollout(
        dir.path(),
        &url,
        &token,
        &["show", &id, "--json"],
    )))
    .unwrap();
    assert_eq!(json["state"], "running");

    // --watch prints progress until the rollout is no longer running.
    let watcher = {
        let (dir, url, token, id) = (
            dir.path().to_owned(),
            url.clone(),
            token.clone(),
            id.clone(),
        );
        std::thread::spawn(move || {
            rollout(
                &dir,
                &url,
                &token,
                &["show", &id, "--watch", "--interval", "200ms"],
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(700));
    let paused = ok(&rollout(dir.path(), &url, &token, &["pause", &id]));
    assert!(paused.contains("paused"), "{paused}");
    let watched = ok(&watcher.join().unwrap());
    assert!(
        watched.matches("running: stage 1/1").count() >= 2,
        "{watched}"
    );
    assert!(
        watched.ends_with(&format!("rollout {id} is paused\n")),
        "{watched}"
    );
    server.terminate();
}
