//! `otter-keys`: all trust code of Otter — key files, the TUF root, image signing, the
//! device trust bundle, and the signed wire messages exchanged by server and agent.
//!
//! In data-flow order: [`signer`] (keys behind one trait), [`hsm`] (keys that stay in a
//! PKCS#11 token), [`keyset`] (the key directory a vendor creates once), [`tuf`] (the signed TUF root and its rotation), [`image`] (signing
//! and inspecting firmware images with otter-boot's format), [`trust_bundle`] (what a device
//! is provisioned with), [`rollout`] (bucket and maintenance window, shared by server and
//! device), [`wire`] (check-in, report, assignment and the signed rollout policy),
//! [`targets`] (the custom fields of TUF targets: images and deltas).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod hsm;
pub mod image;
pub mod keyset;
pub mod rollout;
pub mod signer;
pub mod signing_log;
pub mod targets;
pub mod trust_bundle;
pub mod tuf;
pub mod wire;
