//! The `measure` feature: what verifying a slot costs on the core, for the figures.
//!
//! QEMU has no cycle model (and does not implement the DWT cycle counter), but with
//! `-icount shift=0` its virtual clock advances exactly 1 ns per executed instruction, and
//! SysTick on its 1 MHz reference clock counts that virtual time. So SysTick ticks count
//! instructions; a calibration loop of known length (two instructions per turn) gives the
//! ratio instead of assuming it. Printed as one line the QEMU test parses.

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use otter_boot::Slot;
use otter_mcu_board::Control;

/// Turns of the calibration loop (two instructions each).
const CALIBRATION_TURNS: u32 = 5_000_000;

/// Times `verify_slot(A)` and a calibration loop, and prints both in SysTick ticks.
pub fn verify_cost(boot: &mut Control<'_, '_>) {
    let Some(mut core) = cortex_m::Peripherals::take() else {
        return;
    };
    let syst = &mut core.SYST;
    syst.set_clock_source(SystClkSource::External);
    syst.set_reload(0x00ff_ffff);
    syst.clear_current();
    syst.enable_counter();

    let start = SYST::get_current();
    spin(CALIBRATION_TURNS);
    let calibration = elapsed(start);

    let start = SYST::get_current();
    let verified = boot.verify_slot(Slot::A, 0);
    let verify = elapsed(start);
    syst.disable_counter();

    let payload_len = verified.map(|h| h.payload_len).unwrap_or(0);
    cortex_m_semihosting::hprintln!(
        "otter-boot: measure: calibration {} instructions in {} ticks; verify slot A ({} payload bytes, {}) in {} ticks",
        2 * CALIBRATION_TURNS,
        calibration,
        payload_len,
        if verified.is_ok() { "ok" } else { "failed" },
        verify
    );
}

/// SysTick ticks since `start` (it counts down, 24 bits: 16.7 s of virtual time).
fn elapsed(start: u32) -> u32 {
    start.wrapping_sub(SYST::get_current()) & 0x00ff_ffff
}

/// Runs `turns` turns of a two-instruction loop.
fn spin(turns: u32) {
    // SAFETY: a register-only countdown loop: no memory access, no stack use.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) turns => _,
            options(nomem, nostack),
        );
    }
}
