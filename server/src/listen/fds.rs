//! File descriptors: raise the soft limit to the hard one at start-up, and cap the
//! connection limit below it, so that accepting connections never starves the database, the
//! blob store or `/healthz` of descriptors.

use super::ServeLimits;

/// Descriptors kept for everything but client connections (database, blobs, staging, logs).
const HEADROOM: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` as far as allowed and lowers the connection limits in
/// `limits` if they would not fit below it, returning the soft limit now in force (`None`
/// where the platform has no such limit).
pub fn raise_fd_limit(limits: &mut ServeLimits) -> Option<u64> {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the file descriptor limit");
            return None;
        }
    };
    let available = usize::try_from(soft.saturating_sub(HEADROOM)).unwrap_or(usize::MAX);
    let wanted = limits.max_connections + limits.reserve_connections;
    if wanted > available {
        let reserve = limits.reserve_connections.min(available / 8).max(1);
        let max = available.saturating_sub(reserve).max(1);
        tracing::warn!(
            soft_limit = soft,
            "the file descriptor limit allows {max} connections (+{reserve} reserved), fewer \
             than the {} (+{}) configured; raise `ulimit -n` to serve more",
            limits.max_connections,
            limits.reserve_connections
        );
        limits.max_connections = max;
        limits.reserve_connections = reserve;
    }
    Some(soft)
}
