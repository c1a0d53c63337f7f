//! `otter-agent`: the on-device client. It checks in, refreshes and verifies TUF metadata,
//! downloads a delta, patches the inactive slot with bounded memory, asks `otter-boot` for a
//! trial boot, confirms after a health check and reports.
//!
//! The cycle reads like the list of its steps (see [`cycle`]): signed check-in
//! ([`messages`]), the director's assignment and the rollout policy that must allow it
//! ([`rollout_policy`]), TUF refresh ([`tuf_client`]), choosing the
//! target and a delta ([`select`]), resumable download ([`download`]), streaming install
//! and verification of the inactive slot ([`install`], [`patch`], [`flash`], [`device`],
//! [`header_policy`]),
//! trial request and reboot; after the reboot, health checks and confirmation
//! ([`after_boot`], [`health`]); images that failed are never installed again
//! ([`rejected`]). [`boot_state`] rebuilds a damaged boot state, [`provision`] registers a
//! device, [`status`] shows it, [`sim`] stands in for the factory and the bootloader on the
//! simulated device. Every request keeps to [`http`]'s limits, reports wait in the
//! [`outbox`] until the server has them, and [`lock`] keeps a second agent off the state dir.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod after_boot;
pub mod agent;
pub mod boot_state;
pub mod config;
pub mod cycle;
mod daemon;
pub mod device;
pub mod download;
pub mod flash;
pub mod header_policy;
pub mod health;
pub mod http;
pub mod install;
pub mod lock;
pub mod messages;
pub mod outbox;
pub mod patch;
mod progress;
pub mod provision;
pub mod rejected;
pub mod rollout_policy;
pub mod select;
pub mod sim;
pub mod state_dir;
pub mod status;
pub mod tuf;
pub mod tuf_client;
pub mod tuf_transport;

pub use after_boot::AfterBoot;
pub use agent::Agent;
pub use cycle::Outcome;
