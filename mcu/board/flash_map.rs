// Memory map of the QEMU demo board, shared by the board crate (src/), the bootloader
// (bootloader/firmware), the application's build script (mcu/app/build.rs, which links the
// application into a slot) and the QEMU tests (tests/tests/qemu_boot.rs, mcu_boot.rs) so they
// cannot drift. bootloader/firmware/memory.x must agree: the bootloader's 64 KiB end where the
// simulated NOR flash begins.
/// Absolute address of the simulated NOR flash: ZBT SSRAM1 (code memory, 4 MiB at 0) after
/// the bootloader's 64 KiB.
pub const NOR_BASE: u32 = 0x0001_0000;
/// Its length: the two slots and the boot state (the rest of SSRAM1 is unused). This is
/// also the length of the host file that persists it across QEMU runs.
pub const NOR_LEN: u32 = STATE + STATE_LEN;
/// Slot A: offset in the NOR flash.
pub const SLOT_A: u32 = 0;
/// Slot B: offset in the NOR flash.
pub const SLOT_B: u32 = 0x4_0000;
/// Length of each slot (256 KiB).
pub const SLOT_LEN: u32 = 0x4_0000;
/// Boot state partition: offset in the NOR flash.
pub const STATE: u32 = 0x8_0000;
/// Its length: two 4 KiB erase sectors.
pub const STATE_LEN: u32 = 0x2000;
/// Where an application's vector table starts, from the start of its slot. The image header
/// takes the first 128 bytes; the Cortex-M4 VTOR needs the table aligned to its size rounded
/// up to a power of two (cortex-m-rt's 16 + 240 entries: 1 KiB), so the payload starts with
/// 1024 - 128 bytes of padding and the table sits at slot + 0x400.
pub const APP_VECTOR_OFFSET: u32 = 0x400;
/// Data memory (ZBT SSRAM2/3): an application's initial stack pointer must point into it.
pub const RAM_BASE: u32 = 0x2000_0000;
/// Its length (4 MiB).
pub const RAM_LEN: u32 = 0x40_0000;
/// Name of the host file (relative to QEMU's working directory) that holds the NOR flash
/// across QEMU runs, NUL-terminated for semihosting `SYS_OPEN`.
pub const FLASH_FILE: &str = "otter-flash.bin\0";
