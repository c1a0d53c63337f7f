//! What the QEMU tests (`qemu_boot.rs`, `mcu_boot.rs`) share: the tool checks and their skip
//! rule, building the no_std crates (each its own cargo workspace), signing images for the
//! demo board, and running QEMU `mps2-an386` under a timeout.
//!
//! Without `qemu-system-arm` or the `thumbv7em-none-eabihf` target a test prints
//! `skipped: <reason>` and passes, unless `OTTER_REQUIRE_ALL=1`, where it fails.

#![allow(dead_code)] // each test file uses its own part

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, SigningKey};
use otter_boot::image::{self, HardwareId, Header, Version};
use otter_boot::trust::TrustedKey;
use sha2::{Digest as _, Sha256};

// DEMO_SEED and DEMO_HARDWARE_ID: the key and board the firmware trusts by default.
include!("../../../mcu/board/demo_key.rs");

/// The demo board's memory map (slots, boot state, vector table offset).
pub mod flash_map {
    include!("../../../mcu/board/flash_map.rs");
}

/// Writes a line to stderr directly: unlike `println!`, not captured by the test harness,
/// so the QEMU results show in a plain `cargo test`.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Why the tests cannot run here, or what was built.
pub enum Setup<T> {
    Ready(T),
    Missing(String),
}

/// Passes what was built on, or reports why the tools are missing (failing under
/// `OTTER_REQUIRE_ALL=1`).
pub fn ready<T>(setup: &Setup<T>) -> Option<&T> {
    match setup {
        Setup::Ready(built) => Some(built),
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

/// Why QEMU tests cannot run here (no qemu-system-arm, or no thumb target), if they cannot.
pub fn tools_missing() -> Option<String> {
    if !Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("qemu-system-arm not found (apt-get install qemu-system-arm)".into());
    }
    target_missing()
}

/// Why the firmware cannot be built here (the Rust target is missing), if it cannot.
pub fn target_missing() -> Option<String> {
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

/// A directory of the repository, from its path relative to the root.
pub fn repo_dir(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// A cargo command in one of the no_std crates (`dir`, its own workspace). Its
/// .cargo/config.toml (target, linker script) is found from the working directory;
/// variables that would override it are dropped.
pub fn cargo_in(dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    cmd
}

/// Runs a release build with `extra` arguments (a failed build fails the test) and returns
/// the ELF `bin` in `target_dir`.
pub fn build(
    mut cmd: Command,
    extra: &[&str],
    target_dir: &Path,
    bin: &str,
    what: &str,
) -> PathBuf {
    let started = Instant::now();
    let out = cmd
        .args(["build", "--release", "--target-dir"])
        .arg(target_dir)
        .args(extra)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "{what} build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report(&format!("{what} built in {:.1?}", started.elapsed()));
    target_dir.join("thumbv7em-none-eabihf/release").join(bin)
}

/// The bootloader firmware built with the DEMO ONLY anchors, into its default target dir.
pub fn build_demo_firmware() -> PathBuf {
    let dir = repo_dir("bootloader/firmware");
    let mut cmd = cargo_in(&dir);
    // A release build trusts the DEMO ONLY key only when asked to.
    cmd.env_remove("OTTER_TRUST_ANCHORS")
        .env("OTTER_DEMO_KEY", "1");
    build(
        cmd,
        &[],
        &dir.join("target"),
        "otter-boot-firmware",
        "firmware",
    )
}

/// A signed image of `payload` at `version` (security counter 1) for the demo board,
/// signed by `seed`.
pub fn sign(seed: &[u8; 32], version: Version, payload: &[u8]) -> Vec<u8> {
    let key = SigningKey::from_bytes(seed);
    let payload_sha256: [u8; 32] = Sha256::digest(payload).into();
    let header = Header {
        flags: 0,
        hardware_id: HardwareId::new(DEMO_HARDWARE_ID).unwrap(),
        version,
        security_counter: 1,
        payload_len: payload.len() as u32,
        key_id: TrustedKey::new(key.verifying_key().to_bytes()).id,
        payload_sha256,
    };
    let message = image::signed_message(&header.encode(), &payload_sha256);
    let signature = key.sign(&message).to_bytes();
    let mut buf = vec![0u8; header.image_len().unwrap() as usize];
    image::encode_image(&header, payload, &signature, &mut buf).unwrap();
    buf
}

/// What a QEMU run printed, its exit code, and how long it took.
pub struct Run {
    pub stdout: String,
    pub status: Option<i32>,
    pub elapsed: Duration,
}

/// `qemu-system-arm` for the demo board booting `elf`, with semihosting; add loaders.
pub fn qemu(elf: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args(["-M", "mps2-an386", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(elf);
    cmd
}

/// Runs QEMU to its exit, killing it (and failing the test) after `timeout`.
pub fn run(mut cmd: Command, timeout: Duration, label: &str) -> Run {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "QEMU timed out after {timeout:?}; output:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        status: out.status.code(),
        elapsed: started.elapsed(),
    };
    report(&format!(
        "{label}: exit {:?} after {:.2?}: {}{}",
        run.status,
        run.elapsed,
        run.stdout.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    ));
    run
}
