//! `otter-boot`: the core of an A/B bootloader, `#![no_std]` and without an allocator.
//!
//! It decides which of two firmware slots to boot, and boots nothing it has not verified:
//! the SHA-256 and ed25519 signature of the image, the board's hardware id, and an
//! anti-rollback security counter. A new image boots on trial a limited number of times and
//! is abandoned if the running system does not confirm it. All state lives in one record on
//! a small flash partition written with `sequential-storage`, so a power cut at any flash
//! write leaves the device able to boot a verified image.
//!
//! The same code serves both sides: the signer (`otter-keys`) and the agent use [`image`]
//! and [`verify`]; the agent asks for trials and confirms through [`BootControl`], whose
//! [`BootControl::decide`] is what the bootloader runs at reset.
//!
//! Main types, in data-flow order: [`image::Header`] (the signed image format),
//! [`trust::Anchors`] (keys and board), [`verify::verify`] (streaming check),
//! [`layout::Layout`] (where the slots are), [`BootControl`] (boot state and decision).
//! With the `sim` feature, [`sim::SimFlash`] is a NOR flash that can lose power inside
//! any write or erase, and whose chosen ranges can fail reads, programs or erases.
//!
//! Building firmware: set `--cfg sha2_backend_soft="compact"` in the firmware's rustflags
//! (sha2's unrolled code costs ~30 KiB of flash) and leave ed25519-dalek's `fast` feature
//! off (its precomputed tables are large). `bootloader/firmware` does both and fits in
//! 32 KiB.

#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

#[cfg(feature = "std")]
extern crate std;

pub mod flash;
pub mod image;
pub mod layout;
#[cfg(feature = "sim")]
pub mod sim;
pub mod state;
pub mod trust;
pub mod verify;

pub use layout::{Layout, Partition, Slot};
pub use state::{BootConfig, BootControl, BootDecision, BootError, BootState, Outcome};
pub use verify::{VerifyError, verify, verify_bytes};
