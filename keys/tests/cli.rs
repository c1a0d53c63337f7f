//! The `otter-keys` binary end to end, as a release engineer and a fleet manager use it:
//! init, sign-image, trust-bundle, inspect --trust, rotate-firmware-key, sign-rollout,
//! rotate-rollout-key, and bad input.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use otter_keys::trust_bundle::TrustBundle;
use otter_keys::wire::{PolicyError, RolloutPolicy, Signed};
use sha2::{Digest, Sha256};

mod cli_helpers;
use cli_helpers::{fails, ok, otter_keys, s};

struct Setup {
    _tmp: tempfile::TempDir,
    keys: std::path::PathBuf,
    bundle: std::path::PathBuf,
    image: std::path::PathBuf,
    fw_key: std::path::PathBuf,
    rollout_key: std::path::PathBuf,
    policy_out: std::path::PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let bundle = tmp.path().join("bundle");
    let raw = tmp.path().join("fw.bin");
    let image = tmp.path().join("fw.img");
    fs::write(
        &raw,
        (0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    ok(&["init", s(&keys)]);
    let fw_key = keys.join("keys/firmware-1.key");
    ok(&[
        "trust-bundle",
        s(&keys),
        "--hardware-id",
        "acme-thermo",
        "-o",
        s(&bundle),
    ]);
    ok(&[
        "sign-image",
        "--key",
        s(&fw_key),
        "--hardware-id",
        "acme-thermo",
        "--version",
        "1.4.0",
        "--security-counter",
        "2",
        s(&raw),
        "-o",
        s(&image),
    ]);
    Setup {
        rollout_key: keys.join("keys/rollout-1.key"),
        policy_out: tmp.path().join("policy.bad"),
        _tmp: tmp,
        keys,
        bundle,
        image,
        fw_key,
    }
}

#[test]
fn init_sign_and_inspect_verify_end_to_end() {
    let t = setup();
    let table = ok(&["inspect", s(&t.image), "--trust", s(&t.bundle)]);
    assert!(table.contains("acme-thermo"), "{table}");
    assert!(table.contains("1.4.0"), "{table}");
    assert!(table.contains("OK (hash and signature)"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "inspect",
        s(&t.image),
        "--json",
        "--trust",
        s(&t.bundle),
    ]))
    .unwrap();
    assert_eq!(json["header"]["security_counter"], 2);
    assert_eq!(json["verification"]["ok"], true);
}

#[test]
fn a_flipped_bit_fails_with_the_right_error() {
    let t = setup();
    let img = fs::read(&t.image).unwrap();
    for (at, expect) in [
        (45usize, "signature does not verify"), // version byte in the header
        (1000, "payload SHA-256 does not match"),
        (img.len() - 3, "signature does not verify"),
    ] {
        let mut bad = img.clone();
        bad[at] ^= 0x10;
        let path = t.image.with_extension("bad");
        fs::write(&path, bad).unwrap();
        let out = otter_keys(&["inspect", s(&path), "--trust", s(&t.bundle)]);
        assert!(!out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(expect), "byte {at}: {stdout}");
    }
}

#[test]
fn an_image_signed_by_an_unknown_key_fails() {
    let t = setup();
    let other = t.keys.parent().unwrap().join("other");
    ok(&["init", s(&other)]);
    let img = t.image.with_extension("other");
    let raw = t.keys.parent().unwrap().join("fw.bin");
    ok(&[
        "sign-image",
        "--key",
        s(&other.join("keys/firmware-1.key")),
        "--hardware-id",
        "acme-thermo",
        "--version",
        "1.5.0",
        s(&raw),
        "-o",
        s(&img),
    ]);
    let out = otter_keys(&["inspect", s(&img), "--trust", s(&t.bundle)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("untrusted key"));
}

#[test]
fn private_keys_are_0600_and_init_refuses_an_existing_directory() {
    let t = setup();
    assert!(
        t.keys.join("keys/rollout-1.key").exists(),
        "init makes a rollout key"
    );
    for entry in fs::read_dir(t.keys.join("keys")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "key") {
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
    let before = fs::read(&t.fw_key).unwrap();
    let err = fails(&["init", s(&t.keys)]);
    assert!(err.contains("refusing"), "{err}");
    assert_eq!(fs::read(&t.fw_key).unwrap(), before, "key untouched");
}

#[test]
fn security_counter_defaults_to_the_previous_one() {
    let t = setup();
    let raw = t.keys.parent().unwrap().join("fw.bin");
    let next = t.image.with_extension("next");
    ok(&[
        "sign-image",
        "--key",
        s(&t.fw_key),
        "--hardware-id",
        "acme-thermo",
        "--version",
        "1.5.0",
        s(&raw),
        "-o",
        s(&next),
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", s(&next), "--json"])).unwrap();
    assert_eq!(json["header"]["security_counter"], 2);
}

#[test]
fn images_signed_by_old_and_new_firmware_keys_verify_after_rotation() {
    let t = setup();
    let out = ok(&["rotate-firmware-key", s(&t.keys)]);
    assert!(out.contains("new firmware key"), "{out}");
    let bundle2 = t.keys.parent().unwrap().join("bundle2");
    ok(&[
        "trust-bundle",
        s(&t.keys),
        "--hardware-id",
        "acme-thermo",
        "-o",
        s(&bundle2),
    ]);
    let raw = t.keys.parent().unwrap().join("fw.bin");
    let new_img = t.image.with_extension("new");
    ok(&[
        "sign-image",
        "--key",
        s(&t.keys.join("keys/firmware-2.key")),
        "--hardware-id",
        "acme-thermo",
        "--version",
        "1.6.0",
        s(&raw),
        "-o",
        s(&new_img),
    ]);
    for img in [&t.image, &new_img] {
        let table = ok(&["inspect", s(img), "--trust", s(&bundle2)]);
        assert!(table.contains("OK"), "{table}");
    }
}

#[test]
fn bad_arguments_get_a_clear_message_not_a_panic() {
    let t = setup();
    let raw = t.keys.parent().unwrap().join("fw.bin");
    let out = t.image.with_extension("x");
    let some_hash = "ab".repeat(32);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "sign-image",
                "--key",
                s(&t.fw_key),
                "--hardware-id",
                "hw",
                "--version",
                "1.2",
                s(&raw),
                "-o",
                s(&out),
            ],
            "major.minor.patch",
        ),
        (
            vec![
                "sign-image",
                "--key",
                s(&t.fw_key),
                "--hardware-id",
                "bad id",
                "--version",
                "1.2.3",
                s(&raw),
                "-o",
                s(&out),
            ],
            "hardware id",
        ),
        (
            vec![
                "sign-image",
                "--key",
                "/nonexistent.key",
                "--hardware-id",
                "hw",
                "--version",
                "1.2.3",
                s(&raw),
                "-o",
                s(&out),
            ],
            "nonexistent",
        ),
        (
            vec![
                "sign-image",
                "--key",
                s(&raw),
                "--hardware-id",
                "hw",
                "--version",
                "1.2.3",
                s(&raw),
                "-o",
                s(&out),
            ],
            "chmod",
        ),
        (
            vec![
                "init",
                "/tmp/x",
                "--root-keys",
                "1",
                "--root-threshold",
                "2",
            ],
            "threshold",
        ),
        (vec!["init", "/tmp/y", "--expires", "soon"], "duration"),
        (
            vec!["inspect", s(&raw), "--trust", "/nonexistent"],
            "trust.json",
        ),
        (
            vec![
                "trust-bundle",
                "/nonexistent",
                "--hardware-id",
                "hw",
                "-o",
                "/tmp/z",
            ],
            "not an otter key directory",
        ),
        (
            vec!["rotate-root", s(&t.keys), "--replace", "root-9"],
            "root-9",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (
            sign_rollout_args(&t, &["--image", s(&t.image), "--ceiling", "150%"]),
            "at most 10000 basis points",
        ),
        (
            sign_rollout_args(&t, &["--image", s(&t.image), "--ceiling", "ten"]),
            "percentage",
        ),
        (
            sign_rollout_args(
                &t,
                &[
                    "--image",
                    s(&t.image),
                    "--ceiling",
                    "10%",
                    "--window",
                    "mon 09:00-17:00 Mars/Olympus",
                ],
            ),
            "unknown time zone",
        ),
        (
            sign_rollout_args(
                &t,
                &[
                    "--image",
                    s(&t.image),
                    "--hardware-id",
                    "acme-fridge",
                    "--ceiling",
                    "10%",
                ],
            ),
            "does not match the image",
        ),
        (
            sign_rollout_args(&t, &["--image", s(&raw), "--ceiling", "10%"]),
            "not a signed Otter image",
        ),
        (
            sign_rollout_args(&t, &["--ceiling", "10%"]),
            "--image <IMAGE>",
        ),
        (
            sign_rollout_args(
                &t,
                &[
                    "--image-sha256",
                    "abc",
                    "--hardware-id",
                    "acme-thermo",
                    "--ceiling",
                    "10%",
                ],
            ),
            "64 hex digits",
        ),
        (
            sign_rollout_args(&t, &["--image-sha256", &some_hash, "--ceiling", "1%"]),
            "--hardware-id",
        ),
    ];
    for (args, expect) in cases {
        let err = fails(&args);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    assert!(!out.exists(), "no output written on failure");
    assert!(!t.policy_out.exists(), "no policy written on failure");
}

/// `sign-rollout` with the rollout key, id `rol_1`, output `policy.bad`, and `extra`.
fn sign_rollout_args<'a>(t: &'a Setup, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sign-rollout",
        "--key",
        s(&t.rollout_key),
        "--rollout-id",
        "rol_1",
    ];
    args.extend(["-o", s(&t.policy_out)]);
    args.extend_from_slice(extra);
    args
}

fn read_policy(path: &Path) -> Signed<RolloutPolicy> {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn sign_rollout_writes_a_policy_the_trust_bundle_verifies() {
    let t = setup();
    let out = t.keys.parent().unwrap().join("policy.json");
    let printed = ok(&[
        "sign-rollout",
        "--key",
        s(&t.rollout_key),
        "--rollout-id",
        "rol_1",
        "--image",
        s(&t.image),
        "--ceiling",
        "12.5%",
        "--window",
        "mon-fri 22:00-02:00 Europe/Berlin",
        "--expires",
        "2d",
        "-o",
        s(&out),
    ]);
    assert!(printed.contains("ceiling 12.5%"), "{printed}");
    let signed = read_policy(&out);
    let bundle = TrustBundle::load(&t.bundle).unwrap();
    let policy = signed.verify_authentic(&bundle.rollout_keys).unwrap();
    let image_hash: [u8; 32] = Sha256::digest(fs::read(&t.image).unwrap()).into();
    assert_eq!(policy.image_sha256, image_hash);
    assert_eq!(policy.hardware_id, "acme-thermo", "taken from the image");
    assert_eq!(policy.rollout_id, "rol_1");
    assert_eq!(policy.ceiling.get(), 1250);
    let window = policy.window.as_ref().unwrap();
    assert_eq!(
        window.to_string(),
        "mon,tue,wed,thu,fri 22:00-02:00 Europe/Berlin"
    );
    let now = jiff::Timestamp::now().as_second() as u64;
    let two_days = 2 * 86_400;
    assert!(policy.expires > now + two_days - 60 && policy.expires <= now + two_days + 60);
    let mode = fs::metadata(&t.rollout_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn sign_rollout_takes_a_hash_and_board_instead_of_the_image() {
    let t = setup();
    let out = t.keys.parent().unwrap().join("policy.json");
    let hash = "cd".repeat(32);
    ok(&[
        "sign-rollout",
        "--key",
        s(&t.rollout_key),
        "--rollout-id",
        "rol_2",
        "--image-sha256",
        &hash,
        "--hardware-id",
        "acme-fridge",
        "--ceiling",
        "100%",
        "-o",
        s(&out),
    ]);
    let policy = read_policy(&out).message;
    assert_eq!(hex::encode(policy.image_sha256), hash);
    assert_eq!(policy.hardware_id, "acme-fridge");
    assert_eq!(policy.ceiling.get(), 10_000);
    assert!(policy.window.is_none(), "no window: any time");
}

#[test]
fn policies_signed_by_old_and_new_rollout_keys_verify_after_rotation() {
    let t = setup();
    let printed = ok(&["rotate-rollout-key", s(&t.keys)]);
    assert!(printed.contains("new rollout key"), "{printed}");
    let new_key = t.keys.join("keys/rollout-2.key");
    let mode = fs::metadata(&new_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bundle2 = t.keys.parent().unwrap().join("bundle2");
    ok(&[
        "trust-bundle",
        s(&t.keys),
        "--hardware-id",
        "acme-thermo",
        "-o",
        s(&bundle2),
    ]);
    let old_bundle = TrustBundle::load(&t.bundle).unwrap();
    let new_bundle = TrustBundle::load(&bundle2).unwrap();
    assert_eq!(new_bundle.rollout_keys.len(), 2);
    for (key, name) in [(&t.rollout_key, "old.json"), (&new_key, "new.json")] {
        let out = t.keys.parent().unwrap().join(name);
        ok(&[
            "sign-rollout",
            "--key",
            s(key),
            "--rollout-id",
            "rol_1",
            "--image",
            s(&t.image),
            "--ceiling",
            "5%",
            "-o",
            s(&out),
        ]);
        read_policy(&out)
            .verify_authentic(&new_bundle.rollout_keys)
            .unwrap();
    }
    // A device still on the old bundle does not trust the new key yet.
    let newest = read_policy(&t.keys.parent().unwrap().join("new.json"));
    assert!(matches!(
        newest.verify_authentic(&old_bundle.rollout_keys),
        Err(PolicyError::UntrustedSignature { keys: 1 })
    ));
}
