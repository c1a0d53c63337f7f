//! End-to-end tests that cross crates (server + agent + bootloader on simulated flash).
//!
//! Not built yet: they arrive with the server and agent.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
