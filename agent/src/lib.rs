//! `otter-agent`: the on-device client. It checks in, refreshes and verifies TUF metadata,
//! downloads a delta, patches the inactive slot with bounded memory, asks `otter-boot` for a
//! trial boot, confirms after a health check and reports.
//!
//! Built so far, the two low-level blocks of an install:
//! - [`patch`]: applies a zstd-compressed `bsdiff` delta streaming, reading the old image at
//!   random offsets and writing the new one sequentially, with fixed buffers;
//! - [`flash`]: `embedded-storage` NOR flash over a file ([`flash::FileFlash`]) and the
//!   sequential writer that fills an A/B slot ([`flash::SlotWriter`]).
//!
//! A typical install: [`patch::decompressor`] over the download, a [`patch::FlashRegion`]
//! on the running slot as the old image, a [`flash::SlotWriter`] on the other slot as the
//! sink, and [`patch::apply`] between them.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod flash;
pub mod patch;
