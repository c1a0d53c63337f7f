//! Validators in conditional requests: `If-None-Match` (weak comparison, RFC 9110 §13.1.2)
//! and `If-Range` (strong comparison, §13.1.5).

use axum::http::HeaderMap;
use axum::http::header::{IF_NONE_MATCH, IF_RANGE};

/// Whether `If-None-Match` lists `etag` (or `*`): the client's copy is current, answer 304.
pub fn if_none_match_hits(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Whether a `Range` may be honoured: there is no `If-Range`, or it holds exactly our strong
/// `etag`. A date or another (or weak) tag means the client's partial copy may be of other
/// bytes, so it gets the whole representation instead.
pub fn if_range_allows(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(IF_RANGE) {
        None => true,
        Some(value) => value.to_str().is_ok_and(|v| v.trim() == etag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: axum::http::HeaderName, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name.clone(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn if_none_match_compares_weakly_across_lists() {
        let tag = "\"abc\"";
        assert!(!if_none_match_hits(&HeaderMap::new(), tag));
        assert!(if_none_match_hits(
            &headers(IF_NONE_MATCH, &["\"abc\""]),
            tag
        ));
        assert!(if_none_match_hits(
            &headers(IF_NONE_MATCH, &["W/\"abc\""]),
            tag
        ));
        assert!(if_none_match_hits(
            &headers(IF_NONE_MATCH, &["\"x\", \"abc\""]),
            tag
        ));
        assert!(if_none_match_hits(
            &headers(IF_NONE_MATCH, &["\"x\"", "\"abc\""]),
            tag
        ));
        assert!(if_none_match_hits(&headers(IF_NONE_MATCH, &["*"]), tag));
        assert!(!if_none_match_hits(
            &headers(IF_NONE_MATCH, &["\"abcd\""]),
            tag
        ));
        assert!(!if_none_match_hits(&headers(IF_NONE_MATCH, &["abc"]), tag));
    }

    #[test]
    fn if_range_needs_the_exact_strong_tag() {
        let tag = "\"abc\"";
        assert!(if_range_allows(&HeaderMap::new(), tag));
        assert!(if_range_allows(&headers(IF_RANGE, &["\"abc\""]), tag));
        assert!(!if_range_allows(&headers(IF_RANGE, &["W/\"abc\""]), tag));
        assert!(!if_range_allows(&headers(IF_RANGE, &["\"other\""]), tag));
        assert!(!if_range_allows(
            &headers(IF_RANGE, &["Wed, 21 Oct 2015 07:28:00 GMT"]),
            tag
        ));
    }
}
