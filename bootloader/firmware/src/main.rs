//! `otter-boot-firmware`: the otter-boot core on a Cortex-M4, built for the QEMU
//! `mps2-an386` demo board. It serves as the end-to-end test target and as the code-size
//! probe for a minimal build that links decide + verify + state. It is not a product
//! bootloader yet: it prints its decision over semihosting and exits instead of jumping.
//!
//! Flash map (`flash_map.rs`, `memory.x`): the bootloader at 0x0000_0000 (64 KiB), then
//! the simulated NOR flash at 0x0001_0000 holding slot A, slot B and the boot state.
//! Exit status: 0 when a slot was chosen, 1 otherwise (no bootable image, or any error).
//!
//! With the default `report` feature it prints the decision or the error in full. Without
//! it (`--no-default-features`) it is the minimal code-size probe: the same decision, but
//! only fixed strings are printed and panics halt, so no formatting code is linked.

#![no_std]
#![no_main]

mod board;

/// Where the slots and the boot state are (shared with the QEMU test).
mod flash_map {
    include!("../flash_map.rs");
}

/// Trust anchors written by `build.rs` (the DEMO ONLY key unless `OTTER_TRUST_ANCHORS`).
mod anchors {
    include!(concat!(env!("OUT_DIR"), "/anchors.rs"));
}

use core::cell::RefCell;
use core::fmt::Display;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use otter_boot::flash::Shared;
use otter_boot::image::HardwareId;
use otter_boot::trust::{Anchors, TrustedKey};
use otter_boot::{BootConfig, BootControl, BootDecision, Layout, Partition};
#[cfg(not(feature = "report"))]
use panic_halt as _;
#[cfg(feature = "report")]
use panic_semihosting as _;

// The partitions, all on device 0 (the simulated NOR flash).
const SLOT_A: Partition = Partition::new(0, flash_map::SLOT_A, flash_map::SLOT_LEN);
const SLOT_B: Partition = Partition::new(0, flash_map::SLOT_B, flash_map::SLOT_LEN);
const STATE: Partition = Partition::new(0, flash_map::STATE, flash_map::STATE_LEN);

#[entry]
fn main() -> ! {
    let status = if run() {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    };
    debug::exit(status);
    // Only reached without a semihosting host (on real hardware without a debugger).
    loop {
        cortex_m::asm::wfi();
    }
}

/// Decides which slot to boot and prints it; `true` if one was chosen.
fn run() -> bool {
    let Some(nor) = board::RamNor::take() else {
        return fail("flash", "already taken");
    };
    // All three partitions are on the one device: share it between three handles.
    let nor = RefCell::new(nor);
    let keys = anchors::PUBLIC_KEYS.map(TrustedKey::new);
    let hardware_id = match HardwareId::new(anchors::HARDWARE_ID) {
        Ok(id) => id,
        Err(e) => return fail("hardware id", e),
    };
    let anchors = Anchors {
        hardware_id,
        keys: &keys,
    };
    let layout = match Layout::new(SLOT_A, SLOT_B, STATE) {
        Ok(layout) => layout,
        Err(e) => return fail("layout", e),
    };
    let (a, b, state) = (Shared::new(&nor), Shared::new(&nor), Shared::new(&nor));
    let mut boot = match BootControl::new(layout, a, b, state, anchors, BootConfig::default()) {
        Ok(boot) => boot,
        Err(e) => return fail("layout", e),
    };
    // decide() falls back by itself: a slot or boot-state fault only changes which verified
    // image boots. It fails only when no image verifies.
    match boot.decide() {
        Ok(d) => {
            if let Some(e) = d.state_error {
                warn("boot state (booting a verified image anyway)", e);
            }
            report_boot(&d);
            // A real board jumps here: set VTOR to the payload's vector table (slot start +
            // 128-byte header), load its stack pointer and branch to its reset handler.
            true
        }
        Err(e) => fail("no boot", e),
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

/// Prints why booting stopped; returns `false` for the exit status.
#[cfg(feature = "report")]
fn fail(what: &str, why: impl Display) -> bool {
    cortex_m_semihosting::hprintln!("otter-boot: {}: {}", what, why);
    false
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

/// Probe build: prints what failed, not why; returns `false` for the exit status.
#[cfg(not(feature = "report"))]
fn fail(what: &str, _why: impl Display) -> bool {
    say("otter-boot: ");
    say(what);
    say("\n");
    false
}

/// Writes a fixed string to the semihosting console, without `core::fmt`.
#[cfg(not(feature = "report"))]
fn say(s: &str) {
    if let Ok(mut out) = cortex_m_semihosting::hio::hstdout() {
        let _ = out.write_all(s.as_bytes());
    }
}
