//! Staged rollouts: the pure engine that decides which device gets a release when, and
//! when a rollout advances, pauses itself or completes. No HTTP, no database, no clock:
//! callers pass the rollout, its progress, its members and `now`, and store what comes
//! back, timeline entries included.
//!
//! In data-flow order: [`model`] (a rollout checked against its signed policy), [`bucket`]
//! (a device's place in the fleet, shared with the device), [`state`] (the rollout state
//! machine and device states), [`progress`] (stage, members and their counts),
//! [`admission`] (may this device be admitted now), [`engine`] (advance, auto-pause,
//! completion, operator commands), [`timeline`] (who changed what, and why).
//!
//! Around the pure engine, the adapters: [`store`] (the database, compare-and-swap),
//! [`reports`] (device reports as member states), [`ticker`] (the background evaluation),
//! [`routes`] (the HTTP API), [`text`] (the API's view drawn for a terminal). The director is
//! `devices::assign`.

pub mod admission;
pub mod bucket;
pub mod engine;
pub mod model;
pub mod progress;
pub mod reports;
pub mod routes;
pub mod state;
pub mod store;
pub mod text;
pub mod ticker;
pub mod timeline;

pub use admission::{Admission, Hold, admission};
pub use engine::{Command, CommandError, Evaluation, Wait, command, evaluate};
pub use model::{
    Cohort, DeviceFacts, FailureThreshold, ModelError, ReleaseRef, Rollout, RolloutSpec, Stage,
};
pub use progress::{Member, Progress, Tally};
pub use state::{DeviceState, IllegalTransition, RolloutState};
pub use timeline::{Actor, Change, TimelineEntry};
