// DEMO ONLY: the seed of the development signing key the QEMU demo board trusts by default.
// It is public (it is in this repository), so anything it signs is worthless as proof of
// origin. Never build a real device with it: set OTTER_TRUST_ANCHORS instead.
// Shared by build.rs (which derives the public key) and tests/tests/qemu_boot.rs (which
// signs the test images), so the two cannot drift.
/// Seed of the DEMO ONLY ed25519 signing key.
pub const DEMO_SEED: [u8; 32] = *b"otter-boot DEMO ONLY seed 000001";
/// Hardware id of the QEMU demo board.
pub const DEMO_HARDWARE_ID: &str = "qemu-mps2-an386";
