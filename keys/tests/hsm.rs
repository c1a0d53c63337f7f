//! Keys kept in a hardware security module: SoftHSM2 stands in for the vendor's HSM, with a
//! token initialised in a temporary dir for each test, and every step runs through the real
//! `otter-keys` binary. A key made in the token signs images and rollout policies that
//! devices verify, is sensitive and not extractable, and the token refuses to export it;
//! every way of naming it wrongly gets a clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use otter_keys::keyset::KeySet;
use otter_keys::wire::{RolloutPolicy, Signed};

const TOKEN: &str = "otter-vendor";
const PIN: &str = "12345678";
const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/// A SoftHSM2 configuration with one initialised token, all in a temporary dir.
struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    module: PathBuf,
}

impl SoftHsm {
    /// `None` (with the reason printed) when SoftHSM2 is not installed, unless
    /// `OTTER_REQUIRE_ALL=1`, where that fails the test.
    fn start() -> Option<Self> {
        let module = MODULES.iter().map(PathBuf::from).find(|m| m.exists());
        let util = Command::new("softhsm2-util").arg("--version").output();
        let (Some(module), Ok(_)) = (module, util) else {
            assert!(
                std::env::var("OTTER_REQUIRE_ALL").as_deref() != Ok("1"),
                "OTTER_REQUIRE_ALL=1 but SoftHSM2 is not installed (apt-get install softhsm2)"
            );
            eprintln!("skipping: SoftHSM2 is not installed (apt-get install softhsm2)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", TOKEN])
            .args(["--so-pin", "87654321", "--pin", PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
        Some(Self { dir, conf, module })
    }

    /// `otter-keys ARGS` with the module, the token's configuration and `pin`.
    fn keys_with_pin(&self, pin: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_otter-keys"))
            .args(args)
            .current_dir(self.dir.path())
            .env("SOFTHSM2_CONF", &self.conf)
            .env("OTTER_PKCS11_MODULE", &self.module)
            .env("OTTER_PKCS11_PIN", pin)
            .output()
            .unwrap()
    }

    fn keys(&self, args: &[&str]) -> Output {
        self.keys_with_pin(PIN, args)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
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
    ok(hsm.keys(&["init", &keydir]));
    let made = ok(hsm.keys(&["rotate-firmware-key", &keydir, "--pkcs11", &uri("fw")]));
    assert!(made.contains("new firmware-2"), "{made}");
    let keys = Path::new(&keydir).join("keys");
    assert!(keys.join("firmware-2.pkcs11").exists());
    assert!(!keys.join("firmware-2.key").exists(), "no private key file");
    let fw2 = public_key(Path::new(&keydir), "firmware-2");

    // The token says the key can sign and nothing more.
    let audit = ok(hsm.keys(&["inspect-key", &uri("fw")]));
    assert!(audit.contains(&format!("public key {fw2}")), "{audit}");
    assert!(
        audit.contains("sensitive and not extractable: yes"),
        "{audit}"
    );
    assert!(
        audit.contains("the token refuses to export it: yes"),
        "{audit}"
    );

    // A device's trust bundle trusts it; an image it signs verifies as a device checks it.
    let bundle = hsm.path("bundle");
    ok(hsm.keys(&[
        "trust-bundle",
        &keydir,
        "--hardware-id",
        "hsm-board",
        "-o",
        &bundle,
    ]));
    let firmware = hsm.path("fw.bin");
    std::fs::write(&firmware, vec![0x5a; 4096]).unwrap();
    let image = hsm.path("fw.img");
    let signed = ok(hsm.keys(&[
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
    ]));
    let fw2_id = otter_boot::trust::KeyId::of(&hex_key(&fw2)).to_string();
    assert!(signed.contains(&fw2_id), "{signed}");
    let inspected = ok(hsm.keys(&["inspect", &image, "--trust", &bundle]));
    assert!(inspected.contains("OK"), "{inspected}");
    // The signing history for a token key is kept in the current dir.
    assert!(hsm.dir.path().join("signed-images.json").exists());

    // The same bytes signed by a key the bundle does not know are refused.
    let other = hsm.path("other-keys");
    ok(hsm.keys(&["init", &other]));
    let stray = hsm.path("stray.img");
    ok(hsm.keys(&[
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
    ]));
    refused(hsm.keys(&["inspect", &stray, "--trust", &bundle]));
}

#[test]
fn a_rollout_key_in_the_token_signs_policies_that_verify() {
    let Some(hsm) = SoftHsm::start() else { return };
    let keydir = hsm.path("vendor-keys");
    ok(hsm.keys(&["init", &keydir]));
    ok(hsm.keys(&["rotate-rollout-key", &keydir, "--pkcs11", &uri("rollout")]));
    let policy = hsm.path("policy.json");
    ok(hsm.keys(&[
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
    ]));
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
    ok(hsm.keys(&["init", &keydir]));
    ok(hsm.keys(&["rotate-firmware-key", &keydir, "--pkcs11", &uri("fw")]));
    let inspect = |pin: &str, key: &str| hsm.keys_with_pin(pin, &["inspect-key", key]);

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
    let e = refused(hsm.keys(&["rotate-firmware-key", &keydir, "--pkcs11", &uri("fw")]));
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
    let e = refused(hsm.keys_with_pin(
        "00000000",
        &[
            "sign-image",
            "--key",
            &uri("fw"),
            "--hardware-id",
            "b",
            "--version",
            "1.0.0",
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
