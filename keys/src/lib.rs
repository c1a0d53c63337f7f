//! `otter-keys`: all trust code of Otter — key files, the TUF root, image signing, the
//! device trust bundle, and the signed wire messages exchanged by server and agent.
//!
//! Not built yet: a placeholder so the workspace has the layout of `DESIGN.md`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
