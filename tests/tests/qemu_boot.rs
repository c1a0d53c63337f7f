//! Boots the real bootloader firmware (`bootloader/firmware`, Cortex-M4) in QEMU's
//! `mps2-an386` with signed images in its simulated flash, and checks the decision it
//! prints and its exit status.
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` Rust target. Without them each
//! test prints `skipped: <reason>` and passes, unless `OTTER_REQUIRE_ALL=1`, where a
//! missing tool fails the test.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, SigningKey};
use otter_boot::image::{self, HardwareId, Header, Version};
use otter_boot::trust::TrustedKey;
use sha2::{Digest as _, Sha256};

// DEMO_SEED and DEMO_HARDWARE_ID: the key and board the firmware trusts by default.
include!("../../bootloader/firmware/demo_key.rs");

/// Where the firmware looks for the slots and the boot state.
mod flash_map {
    include!("../../bootloader/firmware/flash_map.rs");
}

/// Generous: a run takes well under a second.
const QEMU_TIMEOUT: Duration = Duration::from_secs(60);

/// Writes a line to stderr directly: unlike `println!`, not captured by the test harness,
/// so the QEMU results show in a plain `cargo test`.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Why the tests cannot run here, or the firmware ELF.
enum Setup {
    Ready(PathBuf),
    Missing(String),
}

/// Builds the firmware (with the DEMO ONLY anchors) once for all tests in this file.
fn firmware() -> Option<&'static Path> {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    ready(SETUP.get_or_init(|| setup(None)))
}

/// Passes a built firmware on, or reports why the tools are missing.
fn ready(setup: &Setup) -> Option<&Path> {
    match setup {
        Setup::Ready(elf) => Some(elf),
        Setup::Missing(reason) => {
            assert!(
                std::env::var("OTTER_REQUIRE_ALL").as_deref() != Ok("1"),
                "OTTER_REQUIRE_ALL=1 but {reason}"
            );
            report(&format!("skipped: {reason}"));
            None
        }
    }
}

/// Checks for the tools, then builds the firmware (a failed build fails the test). With
/// `anchors`, the build trusts that file (`OTTER_TRUST_ANCHORS`) and goes to its own target
/// directory, so it never replaces the demo build other tests boot.
fn setup(anchors: Option<&Path>) -> Setup {
    if !Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Setup::Missing(
            "qemu-system-arm not found (apt-get install qemu-system-arm)".into(),
        );
    }
    if let Some(reason) = target_missing() {
        return Setup::Missing(reason);
    }

    // The firmware is its own cargo workspace with its own target dir, so this does not
    // wait on the outer cargo's lock. Its .cargo/config.toml (target, linker script) is
    // found from the working directory; variables that would override it are dropped.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bootloader/firmware");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let target = match anchors {
        Some(_) => dir.join("target/trust-bundle"),
        None => dir.join("target"),
    };
    let mut build = Command::new(cargo);
    build
        .current_dir(&dir)
        .args(["build", "--release", "--target-dir"])
        .arg(&target);
    match anchors {
        Some(path) => build
            .env("OTTER_TRUST_ANCHORS", path)
            .env_remove("OTTER_DEMO_KEY"),
        // A release build trusts the DEMO ONLY key only when asked to.
        None => build
            .env_remove("OTTER_TRUST_ANCHORS")
            .env("OTTER_DEMO_KEY", "1"),
    };
    let out = build
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "firmware build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report(&format!(
        "qemu_boot: firmware built in {:.1?}",
        started.elapsed()
    ));
    Setup::Ready(target.join("thumbv7em-none-eabihf/release/otter-boot-firmware"))
}

/// Why the firmware cannot be built here (the Rust target is missing), if it cannot.
fn target_missing() -> Option<String> {
    let installed = Command::new("rustc")
        .args([
            "--print",
            "target-libdir",
            "--target",
            "thumbv7em-none-eabihf",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_dir());
    (!installed).then(|| {
        "Rust target thumbv7em-none-eabihf not installed (rustup target add thumbv7em-none-eabihf)"
            .to_owned()
    })
}

/// A signed image: `payload_len` bytes of pseudo-firmware at `version`, signed by `seed`.
fn signed_image(seed: &[u8; 32], version: Version, payload_len: u32) -> Vec<u8> {
    let key = SigningKey::from_bytes(seed);
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31 + 7) as u8).collect();
    let payload_sha256: [u8; 32] = Sha256::digest(&payload).into();
    let header = Header {
        flags: 0,
        hardware_id: HardwareId::new(DEMO_HARDWARE_ID).unwrap(),
        version,
        security_counter: 1,
        payload_len,
        key_id: TrustedKey::new(key.verifying_key().to_bytes()).id,
        payload_sha256,
    };
    let message = image::signed_message(&header.encode(), &payload_sha256);
    let signature = key.sign(&message).to_bytes();
    let mut buf = vec![0u8; header.image_len().unwrap() as usize];
    image::encode_image(&header, &payload, &signature, &mut buf).unwrap();
    buf
}

/// What the firmware printed and its exit code.
struct Run {
    stdout: String,
    status: Option<i32>,
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
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args(["-M", "mps2-an386", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(elf);
    for loader in &loaders {
        cmd.args(["-device", loader]);
    }
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > QEMU_TIMEOUT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "QEMU timed out after {QEMU_TIMEOUT:?}; output:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        status: out.status.code(),
    };
    report(&format!(
        "qemu_boot: exit {:?} after {:.2?}: {}{}",
        run.status,
        started.elapsed(),
        run.stdout.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    ));
    run
}

#[test]
fn release_build_refuses_the_demo_key_unless_asked_for() {
    if let Some(reason) = target_missing() {
        ready(&Setup::Missing(reason));
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bootloader/firmware");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // `check` runs the build script like `build` does, without linking the firmware.
    let check = |demo_opt_in: Option<&str>| {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&dir)
            .args(["check", "--release", "--target-dir"])
            .arg(dir.join("target/demo-key-check"))
            .env_remove("OTTER_TRUST_ANCHORS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET");
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
    assert_eq!(run.status, Some(0));
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
    assert_eq!(run.status, Some(0));
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
    assert_eq!(run.status, Some(0));
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
    assert_eq!(run.status, Some(1));
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
    assert_eq!(run.status, Some(0));

    // The demo key is no longer trusted by this build.
    let demo_image = signed_image(&DEMO_SEED, Version::new(1, 0, 0), 4 * 1024);
    let run = boot(elf, &demo_image, &[]);
    assert!(run.stdout.contains("untrusted key"), "{}", run.stdout);
    assert_eq!(run.status, Some(1));
}
