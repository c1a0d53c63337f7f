//! Building the response for one GET or HEAD of a representation.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio_util::io::ReaderStream;

use super::conditional::{if_none_match_hits, if_range_allows};
use super::range::{RangeRequest, parse_range};
use crate::error::ApiError;
use crate::storage::{BlobStore, Sha256};

/// How long caches may keep a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePolicy {
    /// The URL always names the same bytes (versioned metadata, hash-prefixed targets): keep
    /// it for a year without asking again.
    Immutable,
    /// The URL names whatever is current (`timestamp.json`, `root.json`, unversioned names):
    /// caches must revalidate (cheap, thanks to the `ETag`).
    Revalidate,
}

impl CachePolicy {
    /// The `Cache-Control` value.
    pub fn header(self) -> &'static str {
        match self {
            Self::Immutable => "public, max-age=31536000, immutable",
            Self::Revalidate => "no-cache",
        }
    }
}

/// Where the bytes come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Already in memory (metadata).
    Bytes(Bytes),
    /// The blob named by the entity's SHA-256 (blobs are content-addressed), streamed.
    Blob(Arc<dyn BlobStore>),
}

/// One representation to serve.
#[derive(Clone, Debug)]
pub struct Entity {
    /// Its length in bytes.
    pub len: u64,
    /// Its SHA-256: the strong `ETag`, and the blob name for [`Source::Blob`].
    pub sha256: Sha256,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Cache-Control`.
    pub cache: CachePolicy,
    /// The bytes.
    pub source: Source,
}

/// The strong entity tag of bytes with this SHA-256: the quoted hex digest.
pub fn etag(sha256: &Sha256) -> String {
    format!("\"{}\"", hex::encode(sha256))
}

/// Answers a GET or HEAD of `entity`: 304 when `If-None-Match` matches, 206 for a
/// satisfiable single `Range` (unless `If-Range` names other bytes), 416 for an
/// unsatisfiable one, else 200 with everything. HEAD gets the same headers and no body
/// (a blob is not even opened).
pub async fn respond(
    method: &Method,
    headers: &HeaderMap,
    entity: Entity,
) -> Result<Response, ApiError> {
    let tag = etag(&entity.sha256);
    let common = [
        (ETAG, header_value(&tag)?),
        (
            CACHE_CONTROL,
            HeaderValue::from_static(entity.cache.header()),
        ),
        (ACCEPT_RANGES, HeaderValue::from_static("bytes")),
    ];
    if if_none_match_hits(headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let requested = if if_range_allows(headers, &tag) {
        parse_range(headers.get(RANGE).and_then(|v| v.to_str().ok()), entity.len)
    } else {
        RangeRequest::Full
    };
    let (status, range, content_range) = match requested {
        RangeRequest::Full => (StatusCode::OK, 0..entity.len, None),
        RangeRequest::Partial(range) => {
            let content_range = format!(
                "bytes {}-{}/{}",
                range.start,
                range.end.saturating_sub(1),
                entity.len
            );
            (StatusCode::PARTIAL_CONTENT, range, Some(content_range))
        }
        RangeRequest::Unsatisfiable => {
            let unsatisfied = header_value(&format!("bytes */{}", entity.len))?;
            let error = ApiError::RangeNotSatisfiable(format!(
                "the requested range lies outside the {} bytes of this file",
                entity.len
            ));
            return Ok((common, [(CONTENT_RANGE, unsatisfied)], error).into_response());
        }
    };
    let length = range.end - range.start;
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        match entity.source {
            Source::Bytes(bytes) => {
                let (start, end) = (index(range.start)?, index(range.end)?);
                if end > bytes.len() {
                    return Err(ApiError::internal(format_args!(
                        "entity length {} exceeds its {} bytes",
                        entity.len,
                        bytes.len()
                    )));
                }
                Body::from(bytes.slice(start..end))
            }
            Source::Blob(store) => {
                let reader = store
                    .read_range(&entity.sha256, range)
                    .await
                    .map_err(ApiError::internal)?;
                Body::from_stream(ReaderStream::new(reader))
            }
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, entity.content_type)
        .header(CONTENT_LENGTH, length);
    if let Some(content_range) = content_range {
        response = response.header(CONTENT_RANGE, content_range);
    }
    if let Some(map) = response.headers_mut() {
        map.extend(common);
    }
    response.body(body).map_err(ApiError::internal)
}

fn header_value(text: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(text).map_err(ApiError::internal)
}

fn index(offset: u64) -> Result<usize, ApiError> {
    usize::try_from(offset).map_err(ApiError::internal)
}
