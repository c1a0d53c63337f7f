//! otter-boot boots a real application on QEMU's Cortex-M4 (`mps2-an386`): the bootloader
//! (`bootloader/firmware`) verifies the chosen slot, records the attempt and jumps to the
//! demo application (`mcu/app`), which prints its version, runs its self-test and confirms
//! its trial through the same boot state. The flash persists across QEMU runs in a host file
//! (`otter-flash.bin`), so each scenario is several runs (power cycles) on one device, with
//! updates written between runs through otter-boot's host-side API, as the agent would.
//!
//! Same skip rule as `qemu_boot.rs`: without `qemu-system-arm`, the thumb target or an
//! objcopy, each test prints `skipped: <reason>` and passes, unless `OTTER_REQUIRE_ALL=1`.

mod qemu;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use otter_boot::flash::Shared;
use otter_boot::image::{HardwareId, Version};
use otter_boot::sim::SimFlash;
use otter_boot::trust::{Anchors, TrustedKey};
use otter_boot::{BootConfig, BootControl, BootState, Layout, Outcome, Partition, Slot};
use qemu::{DEMO_HARDWARE_ID, DEMO_SEED, Run, Setup, flash_map, ready};

/// A run takes well under a second; a hang (a jump into garbage) ends here.
const QEMU_TIMEOUT: Duration = Duration::from_secs(20);

/// Exit statuses: the application's (mcu/app `Status`) and the bootloader's.
const HEALTHY: Option<i32> = Some(0);
const NO_BOOT: Option<i32> = Some(1);
const SELF_TEST_FAILED: Option<i32> = Some(3);

/// The NOR flash as the host sees it: the board's word size and 4 KiB sectors.
type Nor = SimFlash<4, 4096>;

/// The built firmware and application variants.
struct Built {
    firmware: PathBuf,
    /// Payloads (padding + application binary) by build.
    app_a: Vec<u8>,
    app_b: Vec<u8>,
    app_a_failing: Vec<u8>,
}

/// Builds the bootloader and the three application builds once for all tests here.
fn built() -> Option<&'static Built> {
    static SETUP: OnceLock<Setup<Built>> = OnceLock::new();
    ready(SETUP.get_or_init(setup))
}

fn setup() -> Setup<Built> {
    if let Some(reason) = qemu::tools_missing() {
        return Setup::Missing(reason);
    }
    let Some(objcopy) = ["arm-none-eabi-objcopy", "llvm-objcopy", "rust-objcopy"]
        .into_iter()
        .find(|tool| Command::new(tool).arg("--version").output().is_ok())
    else {
        return Setup::Missing(
            "no objcopy (apt-get install binutils-arm-none-eabi, or llvm)".into(),
        );
    };
    let firmware = qemu::build_demo_firmware();
    let app = |slot: &str, failing: bool| {
        let dir = qemu::repo_dir("mcu/app");
        let mut cmd = qemu::cargo_in(&dir);
        cmd.env("OTTER_APP_SLOT", slot)
            .env("OTTER_DEMO_KEY", "1")
            .env_remove("OTTER_TRUST_ANCHORS");
        let mut name = format!("slot-{}", slot.to_lowercase());
        let mut features: &[&str] = &[];
        if failing {
            features = &["--features", "fail-self-test"];
            name.push_str("-failing");
        }
        let target = dir.join("target").join(&name);
        let what = format!("app ({name})");
        let elf = qemu::build(cmd, features, &target, "otter-mcu-app", &what);
        payload(objcopy, &elf)
    };
    Setup::Ready(Built {
        firmware,
        app_a: app("A", false),
        app_b: app("B", false),
        app_a_failing: app("A", true),
    })
}

/// The payload of an application ELF: padding up to the vector table's place in the slot,
/// then the flash image (`objcopy -O binary`: vector table, code, constants, .data).
fn payload(objcopy: &str, elf: &Path) -> Vec<u8> {
    let bin = elf.with_extension("bin");
    let out = Command::new(objcopy)
        .args(["-O", "binary"])
        .arg(elf)
        .arg(&bin)
        .output()
        .expect("run objcopy");
    assert!(out.status.success(), "{objcopy}: {out:?}");
    let padding = flash_map::APP_VECTOR_OFFSET as usize - otter_boot::image::HEADER_LEN;
    let mut payload = vec![0u8; padding];
    payload.extend(std::fs::read(&bin).unwrap());
    payload
}

/// One emulated device: its persisted flash file, booted by QEMU run after run.
struct Device {
    dir: tempfile::TempDir,
    firmware: PathBuf,
}

impl Device {
    /// A factory-fresh device: `factory` in slot A, the rest erased.
    fn new(built: &Built, factory: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut flash = vec![0xff; flash_map::NOR_LEN as usize];
        flash[..factory.len()].copy_from_slice(factory);
        std::fs::write(dir.path().join(flash_file()), flash).unwrap();
        Self {
            dir,
            firmware: built.firmware.clone(),
        }
    }

    fn flash_path(&self) -> PathBuf {
        self.dir.path().join(flash_file())
    }

    /// QEMU's `-device` argument that loads the flash file into the flash region.
    fn loader(&self) -> String {
        format!(
            "loader,file={},addr={:#x},force-raw=on",
            self.flash_path().display(),
            flash_map::NOR_BASE
        )
    }

    /// One power cycle: QEMU loads the flash file, the bootloader and the application run
    /// and write through to it.
    fn boot(&self) -> Run {
        let mut cmd = qemu::qemu(&self.firmware);
        cmd.current_dir(self.dir.path())
            .args(["-device", &self.loader()]);
        qemu::run(cmd, QEMU_TIMEOUT, "mcu_boot")
    }

    /// Runs `op` on otter-boot's boot control over the flash file, as the agent on the
    /// device would, and saves what it wrote.
    fn with_control<T>(&self, op: impl FnOnce(&mut Control<'_, '_>) -> T) -> T {
        let bytes = std::fs::read(self.flash_path()).unwrap();
        let mut nor = Nor::new(bytes.len() / 4096);
        nor.bytes_mut().copy_from_slice(&bytes);
        let nor = RefCell::new(nor);
        let keys = [TrustedKey::new(
            SigningKey::from_bytes(&DEMO_SEED)
                .verifying_key()
                .to_bytes(),
        )];
        let anchors = Anchors {
            hardware_id: HardwareId::new(DEMO_HARDWARE_ID).unwrap(),
            keys: &keys,
        };
        let part = |offset, size| Partition::new(0, offset, size);
        let layout = Layout::new(
            part(flash_map::SLOT_A, flash_map::SLOT_LEN),
            part(flash_map::SLOT_B, flash_map::SLOT_LEN),
            part(flash_map::STATE, flash_map::STATE_LEN),
        )
        .unwrap();
        let (a, b, s) = (Shared::new(&nor), Shared::new(&nor), Shared::new(&nor));
        let mut control =
            BootControl::new(layout, a, b, s, anchors, BootConfig::default()).unwrap();
        let result = op(&mut control);
        std::fs::write(self.flash_path(), nor.borrow().bytes()).unwrap();
        result
    }

    fn status(&self) -> BootState {
        self.with_control(|c| c.status().unwrap())
    }

    /// The agent's update: writes `image` to the inactive `slot` and requests its trial.
    fn update(&self, slot: Slot, image: &[u8]) {
        self.write_slot(slot, image);
        self.with_control(|c| c.request_trial(slot).unwrap());
    }

    /// Erases `slot` and programs `image` into it.
    fn write_slot(&self, slot: Slot, image: &[u8]) {
        use embedded_storage::nor_flash::NorFlash as _;
        let offset = slot_offset(slot);
        let mut padded = image.to_vec();
        padded.resize(image.len().next_multiple_of(4), 0xff);
        let bytes = std::fs::read(self.flash_path()).unwrap();
        let mut nor = Nor::new(bytes.len() / 4096);
        nor.bytes_mut().copy_from_slice(&bytes);
        nor.erase(offset, offset + flash_map::SLOT_LEN).unwrap();
        nor.write(offset, &padded).unwrap();
        std::fs::write(self.flash_path(), nor.bytes()).unwrap();
    }

    /// Flips one bit of the slot's bytes at `at` (from the slot start), behind the back of
    /// every check already made (corruption at rest, or an attacker with flash access).
    fn flip(&self, slot: Slot, at: usize) {
        let mut bytes = std::fs::read(self.flash_path()).unwrap();
        bytes[slot_offset(slot) as usize + at] ^= 0x01;
        std::fs::write(self.flash_path(), bytes).unwrap();
    }
}

type Control<'k, 'a> = BootControl<'k, Shared<'a, Nor>, Shared<'a, Nor>, Shared<'a, Nor>>;

/// The file name the board opens (the constant ends with the NUL semihosting needs).
fn flash_file() -> &'static str {
    flash_map::FLASH_FILE.trim_end_matches('\0')
}

fn slot_offset(slot: Slot) -> u32 {
    match slot {
        Slot::A => flash_map::SLOT_A,
        Slot::B => flash_map::SLOT_B,
    }
}

fn v(major: u32) -> Version {
    Version::new(major, 0, 0)
}

fn sign(version: Version, payload: &[u8]) -> Vec<u8> {
    qemu::sign(&DEMO_SEED, version, payload)
}

/// Asserts that `text` is in the run's output.
#[track_caller]
fn printed(run: &Run, text: &str) {
    assert!(
        run.stdout.contains(text),
        "expected {text:?} in:\n{}",
        run.stdout
    );
}

/// A device that booted v1 from slot A once (and so holds its first boot record).
fn device_on_v1(built: &Built) -> Device {
    let device = Device::new(built, &sign(v(1), &built.app_a));
    let run = device.boot();
    printed(&run, "otter-boot: boot slot A version 1.0.0\n");
    printed(&run, "app: version 1.0.0 in slot A\n");
    printed(&run, "app: self-test passed\n");
    printed(&run, "app: version 1.0.0 is the confirmed image\n");
    assert_eq!(run.status, HEALTHY);
    device
}

/// [`device_on_v1`], then the update to v2 in slot B, booted on trial and confirmed.
fn device_on_v2(built: &Built) -> Device {
    let device = device_on_v1(built);
    device.update(Slot::B, &sign(v(2), &built.app_b));
    let run = device.boot();
    printed(&run, "otter-boot: boot slot B version 2.0.0 (trial)\n");
    printed(&run, "app: version 2.0.0 in slot B\n");
    printed(&run, "app: confirmed version 2.0.0\n");
    assert_eq!(run.status, HEALTHY);
    device
}

#[test]
fn v1_boots_and_confirms() {
    let Some(built) = built() else { return };
    let device = device_on_v1(built);
    let state = device.status();
    assert_eq!((state.confirmed, state.trial), (Slot::A, None));
    assert_eq!(state.min_security_counter, 1);
    // The next power cycle finds the record the first one wrote, and boots the same.
    let run = device.boot();
    printed(&run, "otter-boot: boot slot A version 1.0.0\n");
    printed(&run, "app: version 1.0.0 is the confirmed image\n");
    assert_eq!(run.status, HEALTHY);
    assert_eq!(device.status(), state);
}

#[test]
fn an_update_to_v2_boots_on_trial_and_is_confirmed() {
    let Some(built) = built() else { return };
    let device = device_on_v2(built);
    let state = device.status();
    assert_eq!((state.confirmed, state.trial), (Slot::B, None));
    assert_eq!(state.last_outcome, Outcome::Confirmed { version: v(2) });
    // Confirmed: no longer a trial, and it stays.
    let run = device.boot();
    printed(&run, "otter-boot: boot slot B version 2.0.0\n");
    printed(&run, "app: version 2.0.0 is the confirmed image\n");
    assert_eq!(run.status, HEALTHY);
}

#[test]
fn a_v3_whose_self_test_fails_rolls_back_to_v2() {
    let Some(built) = built() else { return };
    let device = device_on_v2(built);
    device.update(Slot::A, &sign(v(3), &built.app_a_failing));
    let attempts = BootConfig::default().trial_attempts;
    for left in (0..attempts).rev() {
        let run = device.boot();
        printed(&run, "otter-boot: boot slot A version 3.0.0 (trial)\n");
        printed(&run, "app: version 3.0.0 in slot A\n");
        printed(
            &run,
            "app: self-test failed: forced by the fail-self-test feature; not confirming\n",
        );
        assert!(!run.stdout.contains("confirmed version"), "{}", run.stdout);
        assert_eq!(run.status, SELF_TEST_FAILED);
        let trial = device.status().trial.expect("still on trial");
        assert_eq!((trial.slot, trial.attempts_left), (Slot::A, left));
    }
    // Out of attempts: the bootloader rolls back to v2, which boots as the confirmed image.
    let run = device.boot();
    printed(&run, "otter-boot: boot slot B version 2.0.0\n");
    printed(&run, "app: version 2.0.0 in slot B\n");
    printed(&run, "app: version 2.0.0 is the confirmed image\n");
    assert!(!run.stdout.contains("3.0.0"), "{}", run.stdout);
    assert_eq!(run.status, HEALTHY);
    let state = device.status();
    assert_eq!((state.confirmed, state.trial), (Slot::B, None));
    assert_eq!(state.last_outcome, Outcome::RolledBack { from: v(3) });
    // v3's header was erased: it can never boot again.
    assert!(device.with_control(|c| c.verify_slot(Slot::A, 0)).is_err());
}

#[test]
fn a_tampered_slot_is_never_jumped_to() {
    let Some(built) = built() else { return };
    let device = device_on_v1(built);
    // v2 is installed and its trial requested (it verified then); one bit of its code
    // changes afterwards.
    device.update(Slot::B, &sign(v(2), &built.app_b));
    device.flip(Slot::B, flash_map::APP_VECTOR_OFFSET as usize + 0x100);
    let run = device.boot();
    assert!(!run.stdout.contains("2.0.0"), "{}", run.stdout);
    printed(&run, "otter-boot: boot slot A version 1.0.0\n");
    printed(&run, "app: version 1.0.0 in slot A\n");
    assert_eq!(run.status, HEALTHY);
    assert!(matches!(
        device.status().last_outcome,
        Outcome::TrialRejected { .. }
    ));

    // Now v1's code is tampered with too: nothing boots, and no application line appears.
    device.flip(Slot::A, flash_map::APP_VECTOR_OFFSET as usize + 0x100);
    let run = device.boot();
    printed(&run, "otter-boot: no boot: no bootable image");
    assert!(!run.stdout.contains("app:"), "{}", run.stdout);
    assert_eq!(run.status, NO_BOOT);
}

#[test]
fn an_image_linked_for_the_other_slot_is_not_started() {
    let Some(built) = built() else { return };
    let device = device_on_v1(built);
    // Correctly signed, but linked for slot A: its vector table points into slot A's code.
    device.update(Slot::B, &sign(v(2), &built.app_a));
    let run = device.boot();
    printed(&run, "otter-boot: boot slot B version 2.0.0 (trial)\n");
    printed(&run, "otter-boot: not an application: reset handler 0x0001");
    printed(
        &run,
        "is not in this slot's image (linked for another slot?)",
    );
    assert!(!run.stdout.contains("app:"), "{}", run.stdout);
    assert_eq!(run.status, NO_BOOT);
}

/// Boots `image` in slot A with the `measure` bootloader under `-icount shift=0` and returns
/// the instructions its verification took and its payload length.
fn verify_instructions(built: &Built, measuring: &Path, image: &[u8]) -> (f64, u64) {
    let device = Device::new(built, image);
    let mut cmd = qemu::qemu(measuring);
    cmd.current_dir(device.dir.path())
        .args(["-icount", "shift=0"])
        .args(["-device", &device.loader()]);
    let run = qemu::run(cmd, QEMU_TIMEOUT, "mcu_boot (measure)");
    printed(&run, "app: version 1.0.0 in slot A\n");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("otter-boot: measure: "))
        .expect("measure line");
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // calibration instructions, calibration ticks, payload bytes, verify ticks
    let [cal_insns, cal_ticks, payload_len, verify_ticks] = numbers[..] else {
        panic!("unexpected measure line: {line}");
    };
    assert!(line.contains("payload bytes, ok)"), "{line}");
    let instructions = verify_ticks as f64 * cal_insns as f64 / cal_ticks as f64;
    assert!(
        (1e5..1e9).contains(&instructions),
        "implausible: {instructions} instructions ({line})"
    );
    (instructions, payload_len)
}

/// Starts `cmd` and returns how long the first stdout line containing `needle` took to
/// appear (`None` if it never did) and the whole run.
fn time_to_line(mut cmd: Command, needle: &str) -> (Option<Duration>, Run) {
    use std::io::BufRead as _;
    use std::process::Stdio;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qemu-system-arm");
    let stdout = child.stdout.take().unwrap();
    let mut seen = None;
    let mut text = String::new();
    // QEMU ends by itself (the application or the bootloader exits); the timeout of the
    // other runs is not needed for a device already seen to boot.
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if seen.is_none() && line.contains(needle) {
            seen = Some(started.elapsed());
        }
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.wait().unwrap().code();
    let run = Run {
        stdout: text,
        status,
        elapsed: started.elapsed(),
    };
    (seen, run)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The figures of the issue note (bootloader/firmware/README.md, "Figures"): instructions
/// to verify a 256 KiB image, and the wall time from reset to the application's first line
/// next to QEMU's own start-up. Printed, and checked only for sanity (they vary by host).
#[test]
fn figures_for_the_issue_note() {
    let Some(built) = built() else { return };
    // A 256 KiB image (the whole slot): the application, then zeros, all signed.
    let mut payload = built.app_a.clone();
    let full = flash_map::SLOT_LEN as usize
        - otter_boot::image::HEADER_LEN
        - otter_boot::image::SIGNATURE_LEN;
    payload.resize(full, 0);
    let image = sign(v(1), &payload);
    assert_eq!(image.len(), flash_map::SLOT_LEN as usize);

    // Instructions: the `measure` build under -icount shift=0 (1 instruction = 1 ns).
    let dir = qemu::repo_dir("bootloader/firmware");
    let mut cmd = qemu::cargo_in(&dir);
    cmd.env_remove("OTTER_TRUST_ANCHORS")
        .env("OTTER_DEMO_KEY", "1");
    let measuring = qemu::build(
        cmd,
        &["--features", "measure"],
        &dir.join("target/measure"),
        "otter-boot-firmware",
        "firmware (measure)",
    );
    let (full_insns, full_len) = verify_instructions(built, &measuring, &image);
    assert_eq!(full_len, full as u64);
    // The application alone, to split the cost into a per-byte and a fixed part.
    let (small_insns, small_len) =
        verify_instructions(built, &measuring, &sign(v(1), &built.app_a));
    let per_byte = (full_insns - small_insns) / (full_len - small_len) as f64;
    let fixed = small_insns - per_byte * small_len as f64;
    assert!(per_byte > 0.0 && fixed > 0.0, "{per_byte} {fixed}");

    // Wall time: reset to the application's first line, and QEMU starting a board whose
    // bootloader finds nothing to boot (start-up plus a few thousand instructions).
    let runs = 5;
    let device = Device::new(built, &image);
    device.boot(); // the first boot writes the first record; time the steady state
    let app: Vec<Duration> = (0..runs)
        .map(|_| {
            let mut cmd = qemu::qemu(&device.firmware);
            cmd.current_dir(device.dir.path())
                .args(["-device", &device.loader()]);
            let (seen, run) = time_to_line(cmd, "app: version");
            assert_eq!(run.status, HEALTHY, "{}", run.stdout);
            seen.expect("the application's line")
        })
        .collect();
    let blank = Device::new(built, &[]);
    let startup: Vec<Duration> = (0..runs)
        .map(|_| {
            let mut cmd = qemu::qemu(&blank.firmware);
            cmd.current_dir(blank.dir.path())
                .args(["-device", &blank.loader()]);
            let (seen, run) = time_to_line(cmd, "otter-boot: no boot");
            assert_eq!(run.status, NO_BOOT, "{}", run.stdout);
            seen.expect("the bootloader's line")
        })
        .collect();
    qemu::report(&format!(
        "figures: verify of a 256 KiB image: {:.2} M instructions ({per_byte:.1} per payload \
         byte + {:.2} M fixed); reset to the app's first line: median {:.1?} of {runs}; QEMU \
         start-up to an empty board's line: median {:.1?}",
        full_insns / 1e6,
        fixed / 1e6,
        median(app),
        median(startup)
    ));
}
