//! Flash storage for the agent, behind `embedded-storage`'s `NorFlash` traits so that
//! `otter-boot` (verifier, boot state) and the patch applier run unchanged on any backend.
//!
//! Backends: [`FileFlash`], a NOR flash kept in a file (the simulated device, and any
//! device whose slots are plain files or block devices). A raw-NAND/NOR MTD backend
//! (`/dev/mtdN` with `MEMERASE`) would be another type implementing the same traits; code
//! written against `NorFlash` does not change.
//!
//! [`SlotWriter`] fills a slot from a byte stream on any backend. [`PowerCut`] makes a
//! [`FileFlash`] lose power at a chosen operation, for the power-failure sweeps.

mod file;
mod power_cut;
mod slot_writer;

pub use file::{ERASED, FileFlash, FileFlashError};
pub use power_cut::{PowerCut, Tear};
pub use slot_writer::{MAX_WRITE_SIZE, SlotWriteError, SlotWriter};
