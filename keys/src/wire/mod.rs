//! The messages server and agent exchange, defined once with their signing and
//! verification so the two sides can not drift: the device's [`CheckIn`] and [`Report`]s
//! (signed with the device key), the director's [`Assignment`] (signed with the director
//! key), and the fleet manager's [`RolloutPolicy`] (signed offline with a rollout key),
//! which travels with an assignment and bounds what the server may assign.
//!
//! Each travels as JSON in a [`Signed`] envelope, `{"message": {…}, "signature": "…"}`.
//! Why it is built this way:
//!
//! - **Canonical bytes are signed, not JSON.** A JSON serializer may reorder keys or change
//!   whitespace and escapes; the signature covers a fixed binary encoding ([`canonical`])
//!   that the verifier rebuilds from the parsed message, so any JSON that parses to the
//!   same message verifies, and any change of a field fails. Each encoding starts with a
//!   per-type domain tag, so a signature for one message type never passes as another.
//! - **Nothing unsigned rides along.** Every struct and enum refuses unknown JSON fields, so
//!   whatever was parsed is exactly what was signed.
//! - **Replay protection by counter.** Each device message carries a counter that must rise
//!   strictly and a timestamp within a skew window. Check-ins and reports share one counter
//!   per device, so the server keeps a single "last accepted" value per device, and the
//!   device keeps its counter across reboots. An assignment echoes the counter of the
//!   check-in it answers and carries an expiry, so an old assignment can not be played back
//!   to the device.
//!
//! Verification authenticates first, then checks device id, counter and time, and returns
//! a typed [`WireError`] that says what was expected and what was found. A rollout policy
//! has no device or counter; after its signature the device checks board, image, expiry,
//! its own bucket and the window, each refusal a [`PolicyError`].
//!
//! The encoding, its table and the string limits are in [`canonical`].

mod assignment;
pub mod canonical;
mod checkin;
mod error;
#[cfg(test)]
mod golden;
mod report;
mod rollout;
pub(crate) mod serde_helpers;
mod signed;

pub use assignment::{AssignedTarget, Assignment};
pub use canonical::{
    MAX_DEVICE_ID_LEN, MAX_NAME_LEN, MAX_REASON_LEN, MAX_ROLLOUT_ID_LEN, MAX_STAGE_LEN, WireMessage,
};
pub use checkin::{BootOutcome, CheckIn, SlotReport, TrialReport, failure_reason};
pub use error::WireError;
pub use report::{Event, Report};
pub use rollout::{PolicyCheck, PolicyError, RolloutPolicy};
pub use signed::DeviceMessage;
pub use signed::Signed;
