//! A minimum rate for request bodies: after a grace period a body must keep averaging a
//! minimum number of bytes per second, else it fails and the request is answered 408 with the
//! connection closed. A per-frame timeout alone would let a body trickle at one byte a second
//! forever; this bound does not.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::ServeLimits;
use crate::error::ApiError;

/// The error a too-slow body fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than {min_rate} bytes/s after {grace:?}")]
pub struct BodyTooSlow {
    min_rate: u64,
    grace: Duration,
}

pin_project_lite::pin_project! {
    /// A request body held to [`ServeLimits::body_timeout`] and [`ServeLimits::body_min_rate`].
    pub struct MinRateBody {
        #[pin]
        inner: Body,
        #[pin]
        sleep: Sleep,
        start: Instant,
        received: u64,
        grace: Duration,
        min_rate: u64,
        timed_out: Arc<AtomicBool>,
    }
}

impl MinRateBody {
    fn new(inner: Body, limits: &ServeLimits, timed_out: Arc<AtomicBool>) -> Self {
        let start = Instant::now();
        Self {
            inner,
            sleep: tokio::time::sleep_until(start + limits.body_timeout),
            start,
            received: 0,
            grace: limits.body_timeout,
            min_rate: limits.body_min_rate.max(1),
            timed_out,
        }
    }
}

/// When the next byte is due: the grace period plus the time `received` bytes take at the
/// minimum rate.
fn due(start: Instant, grace: Duration, received: u64, min_rate: u64) -> Instant {
    let earned = Duration::from_secs_f64(received as f64 / min_rate as f64);
    start + grace.saturating_add(earned)
}

impl HttpBody for MinRateBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.received += data.len() as u64;
                    let next = due(*this.start, *this.grace, *this.received, *this.min_rate);
                    this.sleep.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                ready!(this.sleep.poll(cx));
                this.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow {
                    min_rate: *this.min_rate,
                    grace: *this.grace,
                }))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: wraps the body in a [`MinRateBody`]; if it timed out, whatever the handler
/// answered is replaced by a JSON 408 and the connection is closed (the rest of the body is
/// never read).
pub async fn enforce(State(limits): State<ServeLimits>, request: Request, next: Next) -> Response {
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| Body::new(MinRateBody::new(body, &limits, timed_out.clone())));
    let response = next.run(request).await;
    if !timed_out.load(Ordering::Relaxed) {
        return response;
    }
    let mut response = ApiError::RequestTimeout(format!(
        "the request body must arrive within {:?}, or at {} bytes/s or more after that",
        limits.body_timeout, limits.body_min_rate
    ))
    .into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
