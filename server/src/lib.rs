//! `otter-server`: the TUF repository, release publishing with server-built deltas, the
//! vendor, fleet and device APIs, and staged rollouts.
//!
//! Not built yet: this crate is a placeholder so the workspace has the layout of
//! `DESIGN.md`. Its issue says what it will hold.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
