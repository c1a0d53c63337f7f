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
    /// Time a response write may wait for the client to take a byte before the connection is
    /// closed (a client that stops reading would otherwise hold its place forever).
    pub write_timeout: Duration,
    /// Connections served with every route.
    pub max_connections: usize,
    /// Of those, connections one host (an IPv4 address or an IPv6 /64) may hold; its further
    /// connections get only the reserve.
    pub max_connections_per_host: usize,
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
            write_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_host: 256,
            reserve_connections: 32,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}
