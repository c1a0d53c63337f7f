//! `otter-e2e`: the tests that cross Otter's crates (server, agent and bootloader on
//! simulated flash, the bootloader under QEMU; in `tests/`), and [`demo`], the whole system
//! in one command for a newcomer (`cargo run --release -p otter-e2e --bin otter-demo`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod demo;
