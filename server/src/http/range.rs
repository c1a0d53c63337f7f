//! The `Range` request header (RFC 9110 §14.2), single byte ranges only.

use std::ops::Range;

/// What a `Range` header asks of a representation of known length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Send everything with 200: no header, another unit, a malformed or a multi-range
    /// request (answering those with the full body is allowed and keeps clients simple).
    Full,
    /// Send these bytes (end exclusive) with 206.
    Partial(Range<u64>),
    /// No requested byte exists: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets `header` (the value of `Range`) against a representation of `len` bytes.
///
/// Accepts `bytes=a-b` (b clamped to the last byte), `bytes=a-` and `bytes=-n` (the last n
/// bytes, all of them if n ≥ len).
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Full;
    };
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (number(first), number(last)) {
        // bytes=-n: a suffix.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(len.saturating_sub(n)..len)
            }
        }
        // bytes=a-
        (Some(a), None) if last.is_empty() => {
            if a >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(a..len)
            }
        }
        // bytes=a-b
        (Some(a), Some(b)) if a <= b => {
            if a >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(a..b.saturating_add(1).min(len))
            }
        }
        _ => RangeRequest::Full,
    }
}

/// A non-empty run of ASCII digits as a number (`None` for anything else, or on overflow).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(header: &str, len: u64) -> RangeRequest {
        parse_range(Some(header), len)
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(p("bytes=0-9", 100), RangeRequest::Partial(0..10));
        assert_eq!(p("bytes=90-200", 100), RangeRequest::Partial(90..100));
        assert_eq!(p("bytes=99-99", 100), RangeRequest::Partial(99..100));
        assert_eq!(p("bytes=40-", 100), RangeRequest::Partial(40..100));
        assert_eq!(p("bytes=-10", 100), RangeRequest::Partial(90..100));
        assert_eq!(p("bytes=-1000", 100), RangeRequest::Partial(0..100));
        assert_eq!(p(" Bytes = 1 - 2 ", 100), RangeRequest::Partial(1..3));
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(p("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=100-200", 100), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=-0", 100), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn anything_else_gets_the_full_body() {
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
        for header in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-4",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes 0-1",
            "bytes=99999999999999999999999-",
            "",
        ] {
            assert_eq!(p(header, 100), RangeRequest::Full, "{header:?}");
        }
    }

    proptest::proptest! {
        /// Whatever a client sends, the answer is the whole body, a 416, or a non-empty
        /// range inside the file: never a panic, never a byte past the end.
        #[test]
        fn any_header_gets_a_sane_answer(
            header in proptest::prop_oneof![
                ".{0,30}",
                "(bytes|BYTES|items)= ?[0-9]{0,21} ?- ?[0-9]{0,21}",
            ],
            len in proptest::prop_oneof![0u64..4, 0u64..1 << 40, proptest::prelude::Just(u64::MAX)],
        ) {
            match parse_range(Some(&header), len) {
                RangeRequest::Full | RangeRequest::Unsatisfiable => {}
                RangeRequest::Partial(range) => {
                    proptest::prop_assert!(range.start < range.end && range.end <= len, "{range:?}");
                }
            }
        }
    }
}
