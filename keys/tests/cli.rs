//! The `otter-keys` binary end to end, as a release engineer uses it: init, sign-image,
//! trust-bundle, inspect --trust, rotate-firmware-key, and bad input.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn otter_keys(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otter-keys"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = otter_keys(args);
    assert!(
        out.status.success(),
        "otter-keys {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails cleanly: non-zero exit, an `error:` line, never a panic.
fn fails(args: &[&str]) -> String {
    let out = otter_keys(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "otter-keys {args:?} should fail");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("error"), "{stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Setup {
    _tmp: tempfile::TempDir,
    keys: std::path::PathBuf,
    bundle: std::path::PathBuf,
    image: std::path::PathBuf,
    fw_key: std::path::PathBuf,
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
    ];
    for (args, expect) in cases {
        let err = fails(&args);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    assert!(!out.exists(), "no output written on failure");
}
