//! `otter-boot-firmware`: the otter-boot core on a Cortex-M4, built for the QEMU
//! `mps2-an386` demo board (`mcu/board`). At reset it decides which slot to boot (verifying
//! it and recording the attempt in the boot state), prints its choice over semihosting, and
//! jumps to the application in that slot (`jump`). It also serves as the code-size probe
//! for a minimal build that links decide + verify + state.
//!
//! Flash map (`mcu/board/flash_map.rs`, `memory.x`): the bootloader at 0x0000_0000
//! (64 KiB), then the simulated NOR flash at 0x0001_0000 holding slot A, slot B and the
//! boot state. It exits (status 1) only when it does not jump: no bootable image, an image
//! that is not an application for its slot, or a setup error.
//!
//! With the default `report` feature it prints the decision or the error in full. Without
//! it (`--no-default-features`) it is the minimal code-size probe: the same decision, but
//! only fixed strings are printed and panics halt, so no formatting code is linked.

#![no_std]
#![no_main]

mod jump;
#[cfg(feature = "measure")]
mod measure;

use core::cell::RefCell;
use core::fmt::Display;

use cortex_m_rt::entry;
use otter_boot::BootDecision;
use otter_mcu_board::{self as board, RamNor};
#[cfg(not(feature = "report"))]
use panic_halt as _;
#[cfg(feature = "report")]
use panic_semihosting as _;

/// Exit status when nothing is started.
const NO_BOOT: u32 = 1;

#[entry]
fn main() -> ! {
    match run() {
        Some(entry) => jump::start(&entry),
        None => board::exit(NO_BOOT),
    }
}

/// Decides which slot to boot and prints it; the application's entry if one was chosen
/// and is an application for its slot.
fn run() -> Option<jump::Entry> {
    let Some(nor) = RamNor::take() else {
        return fail("flash", "already taken");
    };
    // All three partitions are on the one device: share it between three handles.
    let nor = RefCell::new(nor);
    let keys = board::trusted_keys();
    let mut boot = match board::boot_control(&nor, &keys) {
        Ok(boot) => boot,
        Err(e) => return fail("setup", e),
    };
    #[cfg(feature = "measure")]
    measure::verify_cost(&mut boot);
    // decide() falls back by itself: a slot or boot-state fault only changes which verified
    // image boots. It fails only when no image verifies. The attempt of a trial is on flash
    // before it returns.
    let decision = match boot.decide() {
        Ok(d) => d,
        Err(e) => return fail("no boot", e),
    };
    if let Some(e) = decision.state_error {
        warn("boot state (booting a verified image anyway)", e);
    }
    report_boot(&decision);
    // `boot` is done with the flash. It is taken back, and released (with its host file)
    // before the jump: the application takes it.
    let mut nor = nor.into_inner();
    match jump::find(&mut nor, decision.slot, &decision.header) {
        Ok(entry) => Some(entry),
        Err(e) => fail("not an application", e),
    }
}

/// Prints the slot to boot, its version, and whether it boots on trial.
#[cfg(feature = "report")]
fn report_boot(d: &BootDecision) {
    let trial = if d.trial { " (trial)" } else { "" };
    cortex_m_semihosting::hprintln!(
        "otter-boot: boot slot {} version {}{}",
        d.slot,
        d.header.version,
        trial
    );
}

/// Prints a fault that did not stop the boot.
#[cfg(feature = "report")]
fn warn(what: &str, why: impl Display) {
    cortex_m_semihosting::hprintln!("otter-boot: {}: {}", what, why);
}

/// Prints why booting stopped; returns `None`: nothing to start.
#[cfg(feature = "report")]
fn fail<T>(what: &str, why: impl Display) -> Option<T> {
    cortex_m_semihosting::hprintln!("otter-boot: {}: {}", what, why);
    None
}

/// Probe build: prints the slot only.
#[cfg(not(feature = "report"))]
fn report_boot(d: &BootDecision) {
    say(match d.slot {
        otter_boot::Slot::A => "otter-boot: boot slot A\n",
        otter_boot::Slot::B => "otter-boot: boot slot B\n",
    });
}

/// Probe build: prints what failed, not why.
#[cfg(not(feature = "report"))]
fn warn(what: &str, _why: impl Display) {
    say("otter-boot: ");
    say(what);
    say("\n");
}

/// Probe build: prints what failed, not why; returns `None`: nothing to start.
#[cfg(not(feature = "report"))]
fn fail<T>(what: &str, _why: impl Display) -> Option<T> {
    say("otter-boot: ");
    say(what);
    say("\n");
    None
}

/// Writes a fixed string to the semihosting console, without `core::fmt`.
#[cfg(not(feature = "report"))]
fn say(s: &str) {
    if let Ok(mut out) = cortex_m_semihosting::hio::hstdout() {
        let _ = out.write_all(s.as_bytes());
    }
}
