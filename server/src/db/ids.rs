//! Random identifiers for rows: a short type prefix and 16 random bytes in hex, so ids are
//! unguessable, portable across databases and tell a reader what they name (`dev_…`, `rel_…`).

/// A fresh id such as `dev_3f9a…` (prefix, underscore, 32 hex digits).
pub fn new_id(prefix: &str) -> String {
    let mut raw = [0u8; 16];
    // The OS random source failing is not recoverable; fall back to the clock so an id is
    // still unique within this process rather than panicking.
    if getrandom::fill(&mut raw).is_err() {
        let nanos = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
        raw.copy_from_slice(&nanos);
    }
    format!("{prefix}_{}", hex::encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = new_id("dev");
        let b = new_id("dev");
        assert!(a.starts_with("dev_") && a.len() == 36, "{a}");
        assert_ne!(a, b);
    }
}
