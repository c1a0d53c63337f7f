//! Boots the real bootloader firmware (`bootloader/firmware`, Cortex-M4) in QEMU's
//! `mps2-an386` with signed images in its simulated flash, and checks the decision it
//! prints and its exit status. The payloads here are not applications, so after printing
//! its decision the bootloader refuses to jump (`mcu_boot.rs` boots real applications).
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` Rust target. Without them each
//! test prints `skipped: <reason>` and passes, unless `OTTER_REQUIRE_ALL=1`, where a
//! missing tool fails the test.

mod qemu;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use otter_boot::image::{self, HardwareId, Version};
use qemu::{DEMO_HARDWARE_ID, DEMO_SEED, Run, Setup, flash_map, ready};

/// Generous: a run takes well under a second.
const QEMU_TIMEOUT: Duration = Duration::from_secs(60);

/// The bootloader's exit status when it starts nothing.
const NO_BOOT: Option<i32> = Some(1);

/// Builds the firmware (with the DEMO ONLY anchors) once for all tests in this file.
fn firmware() -> Option<&'static Path> {
    static SETUP: OnceLock<Setup<PathBuf>> = OnceLock::new();
    ready(SETUP.get_or_init(|| setup(None))).map(PathBuf::as_path)
}

/// Checks for the tools, then builds the firmware (a failed build fails the test). With
/// `anchors`, the build trusts that file (`OTTER_TRUST_ANCHORS`) and goes to its own target
/// directory, so it never replaces the demo build other tests boot.
fn setup(anchors: Option<&Path>) -> Setup<PathBuf> {
    if let Some(reason) = qemu::tools_missing() {
        return Setup::Missing(reason);
    }
    let Some(path) = anchors else {
        return Setup::Ready(qemu::build_demo_firmware());
    };
    let dir = qemu::repo_dir("bootloader/firmware");
    let mut cmd = qemu::cargo_in(&dir);
    cmd.env("OTTER_TRUST_ANCHORS", path)
        .env_remove("OTTER_DEMO_KEY");
    Setup::Ready(qemu::build(
        cmd,
        &[],
        &dir.join("target/trust-bundle"),
        "otter-boot-firmware",
        "firmware (trust bundle)",
    ))
}

/// A signed image: `payload_len` bytes of pseudo-firmware at `version`, signed by `seed`.
fn signed_image(seed: &[u8; 32], version: Version, payload_len: u32) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31 + 7) as u8).collect();
    qemu::sign(seed, version, &payload)
}

/// Boots the firmware with these slot contents (erased flash after them) and an erased
/// state partition. QEMU's RAM starts as zeros, so the erased bytes (0xff) are loaded too.
fn boot(elf: &Path, slot_a: &[u8], slot_b: &[u8]) -> Run {
    boot_with_state(elf, slot_a, slot_b, &[])
}

/// [`boot`] with these bytes at the start of the state partition (erased after them).
fn boot_with_state(elf: &Path, slot_a: &[u8], slot_b: &[u8], state: &[u8]) -> Run {
    use flash_map::{NOR_BASE, NOR_LEN, SLOT_A, SLOT_B, SLOT_LEN, STATE, STATE_LEN};
    let dir = tempfile::tempdir().unwrap();
    let region = |name: &str, content: &[u8], offset: u32, len: u32| {
        assert!(offset + len <= NOR_LEN && content.len() <= len as usize);
        let mut bytes = content.to_vec();
        bytes.resize(len as usize, 0xff);
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let addr = NOR_BASE + offset;
        format!("loader,file={},addr={addr:#x},force-raw=on", path.display())
    };
    let loaders = [
        region("slot_a.bin", slot_a, SLOT_A, SLOT_LEN),
        region("slot_b.bin", slot_b, SLOT_B, SLOT_LEN),
        region("state.bin", state, STATE, STATE_LEN),
    ];
    // No otter-flash.bin in QEMU's working directory: the flash lasts this run only.
    let mut cmd = qemu::qemu(elf);
    cmd.current_dir(dir.path());
    for loader in &loaders {
        cmd.args(["-device", loader]);
    }
    qemu::run(cmd, QEMU_TIMEOUT, "qemu_boot")
}

/// After its decision, the bootloader refused to jump into a payload that is no application
/// (pseudo-firmware has no stack pointer in RAM) and exited.
fn assert_not_started(run: &Run) {
    assert!(
        run.stdout
            .contains("otter-boot: not an application: initial stack pointer"),
        "{}",
        run.stdout
    );
    assert_eq!(run.status, NO_BOOT);
}

#[test]
fn release_build_refuses_the_demo_key_unless_asked_for() {
    if let Some(reason) = qemu::target_missing() {
        ready(&Setup::<()>::Missing(reason));
        return;
    }
    let dir = qemu::repo_dir("bootloader/firmware");
    // `check` runs the build scripts like `build` does, without linking the firmware.
    let check = |demo_opt_in: Option<&str>| {
        let mut cmd = qemu::cargo_in(&dir);
        cmd.args(["check", "--release", "--target-dir"])
            .arg(dir.join("target/demo-key-check"))
            .env_remove("OTTER_TRUST_ANCHORS");
        match demo_opt_in {
            Some(v) => cmd.env("OTTER_DEMO_KEY", v),
            None => cmd.env_remove("OTTER_DEMO_KEY"),
        };
        let out = cmd.output().expect("run cargo");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for refused in [None, Some("0"), Some("yes")] {
        let (ok, stderr) = check(refused);
        assert!(
            !ok && stderr.contains("refusing a release build that trusts the DEMO ONLY key")
                && stderr.contains("OTTER_TRUST_ANCHORS"),
            "OTTER_DEMO_KEY={refused:?}: a release build without trust anchors must fail:\n{stderr}"
        );
    }
    let (ok, stderr) = check(Some("1"));
    assert!(
        ok && stderr.contains("warning") && stderr.contains("trusts the DEMO ONLY key"),
        "OTTER_DEMO_KEY=1 builds, with a warning:\n{stderr}"
    );
}

#[test]
fn boots_a_valid_image_in_slot_a() {
    let Some(elf) = firmware() else { return };
    let a = signed_image(&DEMO_SEED, Version::new(1, 0, 0), 16 * 1024);
    let run = boot(elf, &a, &[]);
    assert!(
        run.stdout
            .contains("otter-boot: boot slot A version 1.0.0\n"),
        "{}",
        run.stdout
    );
    assert_not_started(&run);
}

#[test]
fn falls_back_to_slot_b_when_slot_a_is_corrupted() {
    let Some(elf) = firmware() else { return };
    let mut a = signed_image(&DEMO_SEED, Version::new(1, 0, 0), 16 * 1024);
    a[image::HEADER_LEN + 100] ^= 0x01;
    let b = signed_image(&DEMO_SEED, Version::new(1, 1, 0), 12 * 1024);
    let run = boot(elf, &a, &b);
    assert!(
        run.stdout
            .contains("otter-boot: boot slot B version 1.1.0 (trial)\n"),
        "{}",
        run.stdout
    );
    assert_not_started(&run);
}

#[test]
fn boots_the_best_verified_image_and_reports_a_corrupt_boot_state() {
    let Some(elf) = firmware() else { return };
    let a = signed_image(&DEMO_SEED, Version::new(1, 0, 0), 8 * 1024);
    let b = signed_image(&DEMO_SEED, Version::new(1, 1, 0), 8 * 1024);
    // Garbage over the whole state partition: page markers and items are unreadable.
    let garbage: Vec<u8> = (0..flash_map::STATE_LEN)
        .map(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
        .collect();
    let run = boot_with_state(elf, &a, &b, &garbage);
    assert!(
        run.stdout
            .contains("otter-boot: boot state (booting a verified image anyway): ")
            && run
                .stdout
                .contains("otter-boot: boot slot B version 1.1.0\n"),
        "{}",
        run.stdout
    );
    assert_not_started(&run);
}

#[test]
fn refuses_images_signed_by_an_untrusted_key() {
    let Some(elf) = firmware() else { return };
    let rogue = [0x42u8; 32];
    let a = signed_image(&rogue, Version::new(1, 0, 0), 4 * 1024);
    let b = signed_image(&rogue, Version::new(2, 0, 0), 4 * 1024);
    let run = boot(elf, &a, &b);
    assert!(
        run.stdout.contains("no bootable image")
            && run.stdout.matches("untrusted key").count() == 2,
        "{}",
        run.stdout
    );
    assert_eq!(run.status, NO_BOOT);
}

#[test]
fn boots_an_image_signed_with_keys_from_otter_keys_init() {
    use otter_keys::image::{ImageSpec, sign_image};
    use otter_keys::keyset::KeySet;
    use otter_keys::trust_bundle::TrustBundle;
    // A vendor key directory and the trust bundle for this board, as the CLI makes them.
    let tmp = tempfile::tempdir().unwrap();
    let set = KeySet::create(&tmp.path().join("keys"), 1, 1).unwrap();
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    otter_keys::tuf::write_initial_root(&set, expires).unwrap();
    let hw = HardwareId::new(DEMO_HARDWARE_ID).unwrap();
    let bundle = tmp.path().join("bundle");
    TrustBundle::write(&set, hw, &bundle).unwrap();

    // The bootloader built with the generated anchors.rs.
    let setup = setup(Some(&bundle.join("anchors.rs")));
    let Some(elf) = ready(&setup) else { return };

    let spec = ImageSpec {
        hardware_id: hw,
        version: Version::new(3, 0, 0),
        security_counter: 1,
    };
    let key = set.signing_firmware_key().unwrap();
    let vendor_image = sign_image(&[0x5a; 8 * 1024], &spec, &key).unwrap();
    let run = boot(elf, &vendor_image, &[]);
    assert!(
        run.stdout
            .contains("otter-boot: boot slot A version 3.0.0\n"),
        "{}",
        run.stdout
    );
    assert_not_started(&run);

    // The demo key is no longer trusted by this build.
    let demo_image = signed_image(&DEMO_SEED, Version::new(1, 0, 0), 4 * 1024);
    let run = boot(elf, &demo_image, &[]);
    assert!(run.stdout.contains("untrusted key"), "{}", run.stdout);
    assert_eq!(run.status, NO_BOOT);
}

#[test]
fn does_not_jump_into_a_payload_that_ends_before_the_vector_table() {
    let Some(elf) = firmware() else { return };
    // Signed and verified, but 64 bytes: the vector table's place (slot + 0x400) is past it.
    let a = signed_image(&DEMO_SEED, Version::new(1, 0, 0), 64);
    let run = boot(elf, &a, &[]);
    assert!(
        run.stdout.contains("otter-boot: boot slot A version 1.0.0\n")
            && run.stdout.contains(
                "otter-boot: not an application: payload of 64 bytes ends before the vector table at offset 0x400"
            ),
        "{}",
        run.stdout
    );
    assert_eq!(run.status, NO_BOOT);
}
