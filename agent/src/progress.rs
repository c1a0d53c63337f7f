//! Download progress: a line every few seconds (or at each 10 %) in the log, so a terminal or
//! a journal both show a long download moving.

use std::time::{Duration, Instant};

/// Throttled progress lines for one download.
pub struct Progress {
    name: String,
    total: u64,
    last: Instant,
    last_tenth: u64,
}

impl Progress {
    /// Starts reporting for `name` of `total` bytes.
    pub fn new(name: &str, total: u64) -> Self {
        tracing::info!(target_name = name, total, "downloading");
        Self {
            name: name.to_owned(),
            total,
            last: Instant::now(),
            last_tenth: 0,
        }
    }

    /// Records `have` bytes on disk.
    pub fn update(&mut self, have: u64, total: u64) {
        let tenth = have.saturating_mul(10) / total.max(1);
        if tenth > self.last_tenth || self.last.elapsed() >= Duration::from_secs(5) {
            self.last_tenth = tenth;
            self.last = Instant::now();
            tracing::info!(
                target_name = %self.name,
                "{have}/{total} bytes ({}%)",
                have.saturating_mul(100) / total.max(1)
            );
        }
    }

    /// The download completed.
    pub fn finish(self) {
        tracing::info!(target_name = %self.name, bytes = self.total, "download complete");
    }
}
