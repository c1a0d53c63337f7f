//! The connection limits of the HTTP listener, resolved from the configuration.

use std::time::Duration;

/// How long and how many connections the listener keeps, so that no client, however slow or
/// numerous, can hold the server open or starve `/healthz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time allowed from a connection's start, or from the end of its previous response, to a
    /// complete request head (so also how long an idle keep-alive connection stays open).
    pub header_read_timeout: Duration,
    /// Time a request body may take before the minimum rate applies.
    pub body_timeout: Duration,
    /// Bytes per second a request body must average after `body_timeout`.
    pub body_min_rate: u64,
    /// Connections served with every route.
    pub max_connections: usize,
    /// Extra connections, used only when `max_connections` are open, that answer `/healthz`
    /// and `/metrics` (and 503 to anything else), with no keep-alive.
    pub reserve_connections: usize,
    /// How long shutdown waits for in-flight requests before closing their connections.
    pub shutdown_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 1024,
            max_connections: 1024,
            reserve_connections: 32,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}
