//! `otter-agent`: the on-device client. It checks in, refreshes and verifies TUF metadata,
//! downloads a delta, patches the inactive slot with bounded memory, asks `otter-boot` for a
//! trial boot, confirms after a health check and reports.
//!
//! Not built yet: this crate is a placeholder so the workspace has the layout of
//! `DESIGN.md`. Its issue says what it will hold.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
