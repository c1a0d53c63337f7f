//! End-to-end tests that cross crates (server + agent + bootloader on simulated flash).
//!
//! Not built yet: they arrive with the server and agent.
