//! The agent's TUF client: the TUF 1.0 client workflow (specification §5, "Detailed client
//! workflow") written out step by step over `tough`'s metadata types and signature checks.
//!
//! Why not `tough`'s own loader: it rejects a whole repository when one delegated role lists
//! a target outside its paths (TUF says to ignore that entry), fetches snapshot and targets
//! again when the timestamp has not changed, and stores metadata re-serialised. Here:
//! - [`update`] walks root versions, then timestamp, snapshot, targets and every delegated
//!   role reachable from it, with the rollback, freeze, hash, length and threshold checks of
//!   the specification, and keeps each file exactly as received ([`store`]).
//! - [`resolve`] finds a target the way §5.6.7 says: preorder depth first from the top-level
//!   targets, into a delegated role only when its paths cover the name, each role once,
//!   stopping at a terminating delegation or at a role that could not be loaded.
//!
//! Clock policy: expiry is checked against the device clock at the start of the refresh,
//! as python-tuf does. A device whose clock runs behind accepts metadata that expired by
//! real time, until it runs right again; nothing here refuses because the clock went back.

mod error;
pub mod resolve;
mod store;
pub mod update;

pub use error::RefreshError;
pub use store::delegated_file;
pub use update::Trusted;
