//! hyper answers a request it cannot parse (400), a URI that is too long (414) or too many or
//! too large headers (431) by itself, with an empty body, before any of our code runs. The API
//! promises `{"error", "message"}` on every error, so the connection's writer swaps those
//! canned answers for JSON ones. They are recognisable: a 4xx head with `content-length: 0`
//! and no body, which no route of ours sends (every `ApiError` has a JSON body).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pin_project_lite::pin_project! {
    /// A connection whose canned hyper errors are rewritten as JSON.
    pub struct JsonErrors<T> {
        #[pin]
        inner: T,
        // Replacement bytes not yet written, and how many of them were.
        pending: Vec<u8>,
        written: usize,
    }
}

impl<T> JsonErrors<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite> JsonErrors<T> {
    fn poll_drain(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        while *this.written < this.pending.len() {
            let n = ready!(
                this.inner
                    .as_mut()
                    .poll_write(cx, &this.pending[*this.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *this.written += n;
        }
        this.pending.clear();
        *this.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead> AsyncRead for JsonErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.as_mut().poll_drain(cx))?;
        if let Some(replacement) = json_error_for(buf) {
            let this = self.as_mut().project();
            *this.pending = replacement;
            // The bytes are ours now; they go out here or on the next write, flush or shutdown.
            if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_drain(cx))?;
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_drain(cx))?;
        self.project().inner.poll_shutdown(cx)
    }
}

/// The JSON answer replacing `written`, if `written` is one of hyper's canned errors: exactly
/// one response head, status 4xx, `content-length: 0`.
fn json_error_for(written: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(written).ok()?;
    let rest = head.strip_prefix("HTTP/1.1 4")?;
    if !head.ends_with("\r\n\r\n") || head.matches("\r\n\r\n").count() != 1 {
        return None;
    }
    let empty = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("content-length: 0"));
    if !empty {
        return None;
    }
    let status: u16 = format!("4{}", rest.get(..2)?).parse().ok()?;
    let (code, message) = match status {
        414 => ("uri_too_long", "the request URI is too long"),
        431 => (
            "headers_too_large",
            "the request has too many or too large header fields",
        ),
        400 => ("bad_request", "the request is not valid HTTP/1.1"),
        _ => ("bad_request", "the request was refused by the HTTP layer"),
    };
    let reason = head.lines().next()?.get(13..).unwrap_or("");
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::json_error_for;

    #[test]
    fn canned_errors_become_json_and_real_responses_pass() {
        let canned = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
date: Tue, 01 Dec 2026 09:00:00 GMT\r\n\r\n";
        let json = String::from_utf8(json_error_for(canned).unwrap()).unwrap();
        assert!(
            json.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{json}"
        );
        let body: serde_json::Value =
            serde_json::from_str(json.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error"], "headers_too_large");
        for passed in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-length: 40\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nbody",
            b"HTTP/1.1 400 Bad Req",
        ] {
            assert_eq!(
                json_error_for(passed),
                None,
                "{}",
                String::from_utf8_lossy(passed)
            );
        }
    }
}
