//! `otter-server`: the TUF repository of signed firmware, releases with server-built bsdiff
//! deltas, device registration and signed check-ins answered by signed director assignments.
//!
//! Where things are: [`config`] (flags, env, TOML), [`app`] (start and serve), [`api`] (the
//! router, OpenAPI, extractors), [`auth`] (scoped tokens), [`db`] (SQLite/PostgreSQL),
//! [`storage`] (content-addressed blobs), [`http`] (ETag and Range for served bytes),
//! [`listen`] (the accept loop: timeouts, connection limits, shutdown deadline), [`logsafe`]
//! (escaping untrusted text in logs),
//! [`tuf`] (metadata signing and the public TUF routes), [`releases`] (publishing),
//! [`deltas`] (the background differ), [`devices`] (registration, check-in, reports, fleet
//! view), [`rollouts`] (the staged rollout engine), [`anomalies`] (what fleet managers
//! should look at: unknown images, repeated refusals, rollback storms, bad signatures,
//! silence), [`ui`] (the fleet dashboard), [`fault`] (crash points for tests).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod anomalies;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod deltas;
pub mod devices;
pub mod error;
pub mod fault;
pub mod http;
pub mod keys;
pub mod listen;
pub mod logsafe;
pub mod metrics;
pub mod releases;
pub mod rollouts;
pub mod state;
pub mod storage;
pub mod tuf;
pub mod ui;

pub use app::App;
pub use config::Config;
