//! Serving bytes the way download clients expect: strong `ETag`s, `If-None-Match` → 304,
//! single `Range` requests → 206 (so an interrupted firmware download resumes where it
//! stopped), `If-Range`, correct `Content-Length`/`Content-Type` and cache headers.
//!
//! Used by the public TUF routes for metadata (bytes in memory) and targets (streamed from the
//! blob store); any route serving immutable, content-addressed bytes can use it.

mod conditional;
mod range;
mod serve;

pub use conditional::{if_none_match_hits, if_range_allows};
pub use range::{RangeRequest, parse_range};
pub use serve::{CachePolicy, Entity, Source, etag, respond};
