//! A man in the middle between device and server, for the failure paths: it can cut a
//! target download after N bytes (the connection drops mid-body), and rewrite the
//! director's assignment and re-sign it with the director key (a compromised or confused
//! director), while logging every request.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use otter_keys::signer::FileKey;
use otter_keys::wire::{Assignment, Signed};
use tokio_util::sync::CancellationToken;

type Rewrite = Arc<dyn Fn(&mut Assignment) + Send + Sync>;

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
    cut_after: Arc<Mutex<Option<usize>>>,
    rewrite: Arc<Mutex<Option<Rewrite>>>,
    director: Arc<FileKey>,
}

/// A running proxy.
pub struct Proxy {
    /// Its base URL (give this to devices).
    pub url: String,
    shared: Shared,
    shutdown: CancellationToken,
}

impl Proxy {
    /// Starts a proxy to `upstream`, re-signing rewritten assignments with `director`.
    pub async fn start(upstream: &str, director: FileKey) -> Self {
        let shared = Shared {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            log: Arc::default(),
            cut_after: Arc::default(),
            rewrite: Arc::default(),
            director: Arc::new(director),
        };
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await
                    .unwrap()
            }
        });
        Self {
            url,
            shared,
            shutdown,
        }
    }

    /// The next target download is cut after `bytes` bytes.
    pub fn cut_next_target_after(&self, bytes: usize) {
        *self.shared.cut_after.lock().unwrap() = Some(bytes);
    }

    /// Every check-in answer is rewritten by `f` and re-signed with the director key.
    pub fn rewrite_assignments(&self, f: impl Fn(&mut Assignment) + Send + Sync + 'static) {
        *self.shared.rewrite.lock().unwrap() = Some(Arc::new(f));
    }

    /// Requests seen: `METHOD path [range]`.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn forward(State(s): State<Shared>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let range = request
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.log.lock().unwrap().push(format!(
        "{method} {path}{}",
        range
            .as_deref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default()
    ));
    let mut upstream = s.client.request(method, format!("{}{path}", s.upstream));
    for name in [
        "range",
        "content-type",
        "authorization",
        "if-range",
        "if-none-match",
    ] {
        if let Some(value) = request.headers().get(name) {
            upstream = upstream.header(name, value.as_bytes());
        }
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let response = upstream.body(body).send().await.unwrap();
    let status = response.status();
    let mut builder = Response::builder().status(status.as_u16());
    for (name, value) in response.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
    }

    if path.ends_with("/checkin") && status.is_success() {
        let rewrite = s.rewrite.lock().unwrap().clone();
        if let Some(rewrite) = rewrite {
            let mut answer: Signed<Assignment> = response.json().await.unwrap();
            rewrite(&mut answer.message);
            let resigned = Signed::sign(answer.message, s.director.as_ref()).unwrap();
            return builder
                .body(Body::from(serde_json::to_vec(&resigned).unwrap()))
                .unwrap();
        }
    }

    let cut = if path.starts_with("/tuf/targets/") {
        s.cut_after.lock().unwrap().take()
    } else {
        None
    };
    match cut {
        Some(limit) => {
            // Declare the full length, send `limit` bytes, then fail: the client sees the
            // connection drop mid-body.
            if let Some(len) = response.content_length() {
                builder = builder.header("content-length", len);
            }
            let mut sent = 0usize;
            let stream = response.bytes_stream().map(move |chunk| {
                let chunk = chunk.map_err(std::io::Error::other)?;
                if sent >= limit {
                    return Err(std::io::Error::other("cut by the test proxy"));
                }
                let take = chunk.len().min(limit - sent);
                sent += take;
                Ok::<Bytes, std::io::Error>(chunk.slice(..take))
            });
            builder.body(Body::from_stream(stream)).unwrap()
        }
        None => {
            let bytes = response.bytes().await.unwrap();
            builder.body(Body::from(bytes)).unwrap()
        }
    }
}
