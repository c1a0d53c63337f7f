//! `otter-mcu-app`: the demo application otter-boot starts on the QEMU `mps2-an386` board.
//!
//! It prints its version (from the image header the bootloader verified), runs a self-test
//! (which the `fail-self-test` feature makes fail), and then, if it runs on trial, confirms
//! itself through otter-boot's state API on the same flash and boot state partition as the
//! bootloader (`otter-mcu-board`). A failed self-test does not confirm: the run ends, and
//! the bootloader counts the next boot against the trial's attempts.
//!
//! Each QEMU run is one power cycle: the application ends it with an exit status ([`Status`])
//! instead of resetting (a QEMU reset would reload the flash region from the files it was
//! started with, undoing what this run wrote).

#![no_std]
#![no_main]

use core::cell::RefCell;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use embedded_storage::nor_flash::ReadNorFlash;
use otter_boot::image::{HEADER_LEN, Header};
use otter_boot::{BootState, Slot};
use otter_mcu_board::{self as board, RamNor, flash_map};
use panic_semihosting as _;

/// The slot this build is linked for (`OTTER_APP_SLOT`, set by build.rs).
const SLOT: Slot = match env!("OTTER_APP_SLOT").as_bytes() {
    b"B" => Slot::B,
    _ => Slot::A,
};

/// How a run ends: QEMU's exit status, which the tests read.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Status {
    /// Healthy: the trial was confirmed now, or the image already was the confirmed one.
    Healthy = 0,
    /// The flash or the boot state could not be used.
    Fault = 2,
    /// The self-test failed; the image was not confirmed.
    SelfTestFailed = 3,
}

#[entry]
fn main() -> ! {
    board::exit(run() as u32)
}

fn run() -> Status {
    let Some(nor) = RamNor::take() else {
        hprintln!("app: flash already taken");
        return Status::Fault;
    };
    let nor = RefCell::new(nor);
    let version = match own_header(&nor) {
        Ok(header) => header.version,
        Err(why) => {
            hprintln!("app: cannot read my image header: {}", why);
            return Status::Fault;
        }
    };
    hprintln!("app: version {} in slot {}", version, SLOT);

    let keys = board::trusted_keys();
    let mut boot = match board::boot_control(&nor, &keys) {
        Ok(boot) => boot,
        Err(e) => {
            hprintln!("app: boot state: {}", e);
            return Status::Fault;
        }
    };
    let state = match boot.status() {
        Ok(state) => state,
        Err(e) => {
            hprintln!("app: boot state: {}", e);
            return Status::Fault;
        }
    };
    if let Err(why) = self_test(&state) {
        hprintln!("app: self-test failed: {}; not confirming", why);
        return Status::SelfTestFailed;
    }
    hprintln!("app: self-test passed");

    let on_trial = state.trial.is_some_and(|t| t.started && t.slot == SLOT);
    if !on_trial {
        hprintln!("app: version {} is the confirmed image", version);
        return Status::Healthy;
    }
    match boot.confirm() {
        Ok(header) => {
            hprintln!("app: confirmed version {}", header.version);
            Status::Healthy
        }
        Err(e) => {
            hprintln!("app: confirm failed: {}", e);
            Status::Fault
        }
    }
}

/// The header of the image this code runs from (just verified by the bootloader).
fn own_header(nor: &RefCell<RamNor>) -> Result<Header, &'static str> {
    let offset = board::slot_address(SLOT) - flash_map::NOR_BASE;
    let mut raw = [0u8; HEADER_LEN];
    let mut nor = nor.try_borrow_mut().map_err(|_| "flash busy")?;
    nor.read(offset, &mut raw)
        .map_err(|_| "flash read failed")?;
    Header::decode(&raw).map_err(|_| "malformed header")
}

/// The health check a real product would run before confirming an update (peripherals,
/// a link to its server, ...). Here: the boot state agrees that this slot is running, and
/// the `fail-self-test` feature forces a failure for the rollback test.
fn self_test(state: &BootState) -> Result<(), &'static str> {
    if cfg!(feature = "fail-self-test") {
        return Err("forced by the fail-self-test feature");
    }
    if state.running() != SLOT {
        return Err("the boot state says another slot is running");
    }
    Ok(())
}
