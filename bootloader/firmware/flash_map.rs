// Flash map of the QEMU demo board, shared by the firmware (src/main.rs, src/board.rs) and
// the QEMU test (tests/tests/qemu_boot.rs) so they cannot drift. memory.x must agree: the
// bootloader's 64 KiB end where the simulated NOR flash begins.
/// Absolute address of the simulated NOR flash: ZBT SSRAM1 (code memory, 4 MiB at 0) after
/// the bootloader's 64 KiB.
pub const NOR_BASE: u32 = 0x0001_0000;
/// Its length: the rest of SSRAM1.
pub const NOR_LEN: u32 = 0x0040_0000 - NOR_BASE;
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
