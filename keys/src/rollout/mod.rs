//! The rules of a staged rollout that the server and the device both apply, defined once so
//! the two can not drift: a device's [`bucket`] in a rollout and the cutoffs that admit it
//! ([`BasisPoints`]), and the [`MaintenanceWindow`] updates may start in. The signed policy
//! that carries them to the device is [`wire::RolloutPolicy`](crate::wire::RolloutPolicy).

mod bucket;
mod window;

pub use bucket::{BUCKETS, BasisPoints, Bucket, ShareError, bucket};
pub use window::{ClockTime, DaySet, MAX_TIME_ZONE_LEN, MaintenanceWindow, WindowError, unix_time};
