//! Keys kept in a hardware security module: SoftHSM2 stands in for the vendor's HSM, with a
//! token initialised in a temporary dir for each test, and every step runs through the real
//! `otter-keys` binary. A key made in the token signs images and rollout policies that
//! devices verify, is sensitive and not extractable, and the token refuses to export it;
//! every way of naming it wrongly gets a clear error.

use std::path::Path;
use std::process::{Command, Output};

use softhsm::{PIN, SoftHsm, TOKEN};

use otter_keys::keyset::KeySet;
use otter_keys::wire::{RolloutPolicy, Signed};

mod softhsm;

/// `otter-keys ARGS` against the token.
fn keys(hsm: &SoftHsm, args: &[&str]) -> Output {
    keys_with_pin(hsm, PIN, args)
}

/// `otter-keys ARGS` against the token, with `pin`.
fn keys_with_pin(hsm: &SoftHsm, pin: &str, args: &[&str]) -> Output {
    (hsm.command(Path::new(env!("CARGO_BIN_EXE_otter-keys"))))
        .env("OTTER_PKCS11_PIN", pin)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn refused(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a refusal: {out:?}");
    stderr
}

/// `trust-bundle KEYDIR` for board hsm-board; its dir and what it printed.
fn trust_bundle(hsm: &SoftHsm, keydir: &str) -> (String, String) {
    let bundle = hsm.path("bundle");
    let args = [
        "trust-bundle",
        keydir,
        "--hardware-id",
        "hsm-board",
        "-o",
        &bundle,
    ];
    let printed = ok(keys(hsm, &args));
    (bundle, printed)
}

fn uri(object: &str) -> String {
    format!("pkcs11:token={TOKEN};object={object}")
}

fn public_key(keydir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(keydir.join("keys").join(format!("{name}.pub"))).unwrap();
    text.trim().to_owned()
}

#[test]
fn a_firmware_key_made_in_the_token_signs_images_devices_verify_and_never_leaves_it() {
    let Some(hsm) = SoftHsm::start() else { return };
    let keydir = hsm.path("vendor-keys");
    ok(keys(&hsm, &["init", &keydir]));
    let made = ok(keys(
        &hsm,
        &["rotate-firmware-key", &keydir, "--pkcs11", &uri("fw")],
    ));
    assert!(made.contains("new firmware-2"), "{made}");
    let key_files = Path::new(&keydir).join("keys");
    assert!(key_files.join("firmware-2.pkcs11").exists());
    assert!(
        !key_files.join("firmware-2.key").exists(),
        "no private key file"
    );
    let fw2 = public_key(Path::new(&keydir), "firmware-2");

    // The token says the key can sign and nothing more.
    let audit = ok(keys(&hsm, &["inspect-key", &uri("fw")]));
    assert!(audit.contains(&format!("public key {fw2}")), "{audit}");
    assert!(
        audit.contains("sensitive and not extractable: yes"),
        "{audit}"
    );
    assert!(
        audit.contains("the token refuses to export it: yes"),
        "{audit}"
    );
    assert!(
        audit.contains("generated in the token, never exportable: yes"),
        "{audit}"
    );

    // A device's trust bundle trusts it; an image it signs verifies as a device checks it.
    let (bundle, _) = trust_bundle(&hsm, &keydir);
    let firmware = hsm.path("fw.bin");
    std::fs::write(&firmware, vec![0x5a; 4096]).unwrap();
    let image = hsm.path("fw.img");
    let sign_args = [
        "sign-image",
        "--key",
        &uri("fw"),
        "--hardware-id",
        "hsm-board",
        "--version",
        "1.0.0",
        &firmware,
        "-o",
        &image,
    ];
    // A token key has no directory for its signing history: one must be named.
    let err = refused(keys(&hsm, &sign_args));
    assert!(err.contains("give --log FILE"), "{err}");
    let history = hsm.path("signed-images.json");
    let mut with_log = sign_args.to_vec();
    with_log.extend(["--log", &history]);
    let signed = ok(keys(&hsm, &with_log));
    let fw2_id = otter_boot::trust::KeyId::of(&hex_key(&fw2)).to_string();
    assert!(signed.contains(&fw2_id), "{signed}");
    let inspected = ok(keys(&hsm, &["inspect", &image, "--trust", &bundle]));
    assert!(inspected.contains("OK"), "{inspected}");
    assert!(std::path::Path::new(&history).exists());

    // The same bytes signed by a key the bundle does not know are refused.
    let other = hsm.path("other-keys");
    ok(keys(&hsm, &["init", &other]));
    let stray = hsm.path("stray.img");
    ok(keys(
        &hsm,
        &[
            "sign-image",
            "--key",
            &format!("{other}/keys/firmware-1.key"),
            "--hardware-id",
            "hsm-board",
            "--version",
            "1.0.1",
            &firmware,
            "-o",
            &stray,
        ],
    ));
    refused(keys(&hsm, &["inspect", &stray, "--trust", &bundle]));
}

#[test]
fn a_rollout_key_in_the_token_signs_policies_that_verify() {
    let Some(hsm) = SoftHsm::start() else { return };
    let keydir = hsm.path("vendor-keys");
    ok(keys(&hsm, &["init", &keydir]));
    ok(keys(
        &hsm,
        &["rotate-rollout-key", &keydir, "--pkcs11", &uri("rollout")],
    ));
    let policy = hsm.path("policy.json");
    ok(keys(
        &hsm,
        &[
            "sign-rollout",
            "--key",
            &uri("rollout"),
            "--rollout-id",
            "rol_1",
            "--image-sha256",
            &"ab".repeat(32),
            "--hardware-id",
            "hsm-board",
            "--ceiling",
            "10%",
            "-o",
            &policy,
        ],
    ));
    let signed: Signed<RolloutPolicy> =
        serde_json::from_str(&std::fs::read_to_string(&policy).unwrap()).unwrap();
    let set = KeySet::open(Path::new(&keydir)).unwrap();
    let trusted = set.rollout_public_keys().unwrap();
    assert_eq!(trusted.len(), 2, "rollout-1 (file) and rollout-2 (token)");
    let verified = signed.verify_authentic(&trusted[1..]).unwrap();
    assert_eq!(verified.rollout_id, "rol_1");
    assert!(
        signed.verify_authentic(&trusted[..1]).is_err(),
        "signed by the token key"
    );
}

#[test]
fn wrong_pins_tokens_keys_and_modules_get_clear_errors() {
    let Some(hsm) = SoftHsm::start() else { return };
    let keydir = hsm.path("vendor-keys");
    ok(keys(&hsm, &["init", &keydir]));
    ok(keys(
        &hsm,
        &["rotate-firmware-key", &keydir, "--pkcs11", &uri("fw")],
    ));
    let inspect = |pin: &str, key: &str| keys_with_pin(&hsm, pin, &["inspect-key", key]);

    let e = refused(inspect("00000000", &uri("fw")));
    assert!(e.contains(&format!("token {TOKEN:?}: wrong PIN")), "{e}");
    let e = refused(inspect(PIN, &uri("nope")));
    assert!(
        e.contains(&format!("token {TOKEN:?} has no key labelled \"nope\"")),
        "{e}"
    );
    let e = refused(inspect(PIN, "pkcs11:token=nope;object=fw"));
    assert!(
        e.contains(&format!(
            "no token labelled \"nope\" (tokens present: [{TOKEN:?}])"
        )),
        "{e}"
    );
    let e = refused(inspect(PIN, &format!("{}?pin-value={PIN}", uri("fw"))));
    assert!(e.contains("no PIN in the URI"), "{e}");
    let e = refused(inspect(
        PIN,
        &format!("{}?module-path=/no/such/module.so", uri("fw")),
    ));
    assert!(e.contains("PKCS#11 module /no/such/module.so"), "{e}");
    let e = refused(keys(
        &hsm,
        &["rotate-firmware-key", &keydir, "--pkcs11", &uri("fw")],
    ));
    assert!(e.contains("already has a key labelled \"fw\""), "{e}");
    let no_module = Command::new(env!("CARGO_BIN_EXE_otter-keys"))
        .args(["inspect-key", &uri("fw")])
        .env_remove("OTTER_PKCS11_MODULE")
        .env("OTTER_PKCS11_PIN", PIN)
        .output()
        .unwrap();
    let e = refused(no_module);
    assert!(
        e.contains("no PKCS#11 module: set OTTER_PKCS11_MODULE"),
        "{e}"
    );
    // Signing with a wrong PIN writes no image.
    let image = hsm.path("fw.img");
    std::fs::write(hsm.path("fw.bin"), b"payload").unwrap();
    let e = refused(keys_with_pin(
        &hsm,
        "00000000",
        &[
            "sign-image",
            "--key",
            &uri("fw"),
            "--hardware-id",
            "b",
            "--version",
            "1.0.0",
            "--security-counter",
            "0",
            &hsm.path("fw.bin"),
            "-o",
            &image,
        ],
    ));
    assert!(e.contains("wrong PIN"), "{e}");
    assert!(!Path::new(&image).exists());
}

fn hex_key(text: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).unwrap();
    key
}

#[test]
fn a_whole_key_set_made_in_the_token_leaves_no_private_key_on_disk() {
    let Some(hsm) = SoftHsm::start() else { return };
    let keydir = hsm.path("vendor-keys");
    let made = ok(keys(
        &hsm,
        &[
            "init",
            &keydir,
            "--pkcs11",
            &format!("pkcs11:token={TOKEN}"),
        ],
    ));
    assert!(made.contains("can not leave it"), "{made}");
    let set = KeySet::open(Path::new(&keydir)).unwrap();
    let key_files = Path::new(&keydir).join("keys");
    let files: Vec<String> = std::fs::read_dir(&key_files)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!files.iter().any(|f| f.ends_with(".key")), "{files:?}");
    let m = set.manifest();
    let names = [&m.targets, &m.snapshot, &m.timestamp, &m.director]
        .into_iter()
        .chain(&m.root.keys)
        .chain(&m.firmware)
        .chain(&m.rollout);
    for name in names {
        let uri = std::fs::read_to_string(set.token_record_path(name)).unwrap();
        let audit = ok(keys(&hsm, &["inspect-key", uri.trim()]));
        assert!(
            audit.contains(&public_key(Path::new(&keydir), name)),
            "{name}: {audit}"
        );
        assert!(
            audit.contains("sensitive and not extractable: yes"),
            "{name}: {audit}"
        );
    }

    // The root it signed verifies; a device bundle names the director's token key.
    let root1: tough::schema::Signed<tough::schema::Root> =
        serde_json::from_slice(&std::fs::read(Path::new(&keydir).join("1.root.json")).unwrap())
            .unwrap();
    root1.signed.verify_role(&root1).unwrap();
    let (bundle, made) = trust_bundle(&hsm, &keydir);
    let director = public_key(Path::new(&keydir), &m.director);
    assert!(made.contains(&format!("director key {director}")), "{made}");

    // Images signed with its firmware key verify on such a device.
    let firmware_uri = std::fs::read_to_string(set.token_record_path(&m.firmware[0])).unwrap();
    std::fs::write(hsm.path("fw.bin"), vec![7u8; 1024]).unwrap();
    let image = hsm.path("fw.img");
    ok(keys(
        &hsm,
        &[
            "sign-image",
            "--key",
            firmware_uri.trim(),
            "--hardware-id",
            "hsm-board",
            "--version",
            "1.0.0",
            "--log",
            &format!("{keydir}/signed-images.json"),
            &hsm.path("fw.bin"),
            "-o",
            &image,
        ],
    ));
    ok(keys(&hsm, &["inspect", &image, "--trust", &bundle]));

    // Root rotation signs with the token's root key and makes the new one there too.
    ok(keys(&hsm, &["rotate-root", &keydir, "--replace", "root-1"]));
    let set = KeySet::open(Path::new(&keydir)).unwrap();
    let new_root = &set.manifest().root.keys[0];
    assert_ne!(new_root, "root-1");
    assert!(
        set.token_record_path(new_root).exists(),
        "{new_root} is in the token"
    );
    assert!(!set.key_path(new_root).exists());
    let root2: tough::schema::Signed<tough::schema::Root> =
        serde_json::from_slice(&std::fs::read(Path::new(&keydir).join("2.root.json")).unwrap())
            .unwrap();
    root1.signed.verify_role(&root2).unwrap();
    root2.signed.verify_role(&root2).unwrap();
}

#[test]
fn init_takes_the_module_from_its_uri_and_records_never_name_it() {
    let Some(hsm) = SoftHsm::start() else { return };
    let keydir = hsm.path("vendor-keys");
    let token = format!("pkcs11:token={TOKEN}?module-path={}", hsm.module.display());
    let out = hsm
        .command(Path::new(env!("CARGO_BIN_EXE_otter-keys")))
        .env_remove("OTTER_PKCS11_MODULE")
        .args(["init", &keydir, "--pkcs11", &token])
        .output()
        .unwrap();
    ok(out);
    let set = KeySet::open(Path::new(&keydir)).unwrap();
    let record = std::fs::read_to_string(set.token_record_path(&set.manifest().director)).unwrap();
    assert!(!record.contains("module-path"), "{record}");
    assert!(
        !set.manifest()
            .pkcs11
            .as_deref()
            .unwrap()
            .contains("module-path")
    );
}

#[test]
fn an_imported_key_is_not_trusted_and_two_tokens_of_one_label_are_refused() {
    let Some(hsm) = SoftHsm::start() else { return };
    // A key made outside and imported with softhsm2-util: sensitive now, but a copy may
    // exist wherever it was made.
    let pem = hsm.path("imported.pem");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", &pem])
        .output()
        .expect("openssl (Debian package openssl) makes the key to import");
    assert!(made.status.success(), "{made:?}");
    let imported = hsm
        .command(Path::new("softhsm2-util"))
        .args(["--import", &pem, "--token", TOKEN, "--label", "imported"])
        .args(["--id", "7f", "--pin", PIN])
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let audit = keys(&hsm, &["inspect-key", &uri("imported")]);
    let printed = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(
        printed.contains("generated in the token, never exportable: NO"),
        "{printed}"
    );
    let e = refused(audit);
    assert!(e.contains("or was made outside it"), "{e}");

    // A second token with the vendor token's label: which one would sign is unclear.
    hsm.add_token(TOKEN, PIN);
    let e = refused(keys(&hsm, &["inspect-key", &uri("imported")]));
    assert!(
        e.contains(&format!("2 tokens are labelled {TOKEN:?}")),
        "{e}"
    );
}
