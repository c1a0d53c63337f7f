//! A hostile mirror between a real agent and a real server. It forwards every request to
//! the server and records every answer; a test installs a [`Tamper`] rule that sees each
//! answer and may replace it: with other bytes (a replayed, forged or re-signed document),
//! with an endless body, or with a status of its choosing. It plays the malicious mirror,
//! the man in the middle and, given stolen keys, the compromised server of the TUF and
//! Uptane attack lists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

/// One answer of the real server, as the mirror saw it.
pub struct Exchange<'a> {
    /// Request path with query, e.g. `/tuf/metadata/timestamp.json`.
    pub path: &'a str,
    /// The server's status.
    pub status: u16,
    /// The server's body.
    pub body: &'a Bytes,
}

/// What the mirror sends instead of the server's answer.
pub enum Reply {
    /// This status and body.
    Body(u16, Bytes),
    /// A 200 whose body never ends (the "endless data" attack), without a length.
    Endless,
}

/// Decides, for each answer, whether to replace it (`None`: forward it unchanged).
pub type Tamper = Arc<dyn Fn(&Exchange<'_>) -> Option<Reply> + Send + Sync>;

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    tamper: Arc<Mutex<Option<Tamper>>>,
    log: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<HashMap<String, Vec<Bytes>>>>,
}

/// A running mirror.
pub struct Mirror {
    /// Its base URL (give this to devices).
    pub url: String,
    shared: Shared,
    shutdown: CancellationToken,
}

impl Mirror {
    /// Starts a mirror of `upstream`, honest until [`Mirror::tamper`] is called.
    pub async fn start(upstream: &str) -> Self {
        let shared = Shared {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            tamper: Arc::default(),
            log: Arc::default(),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let (url, shutdown) = super::serve_router(app).await;
        Self {
            url,
            shared,
            shutdown,
        }
    }

    /// From now on every answer goes through `rule`.
    pub fn tamper(&self, rule: impl Fn(&Exchange<'_>) -> Option<Reply> + Send + Sync + 'static) {
        *self.shared.tamper.lock().unwrap() = Some(Arc::new(rule));
    }

    /// Back to forwarding everything unchanged (the network heals).
    pub fn honest(&self) {
        *self.shared.tamper.lock().unwrap() = None;
    }

    /// Every body the server sent for `path`, oldest first (what an attacker can replay).
    pub fn seen(&self, path: &str) -> Vec<Bytes> {
        self.shared
            .seen
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Requests seen, as `METHOD path`.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.shared.log.lock().unwrap().clear();
    }
}

impl Drop for Mirror {
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
    s.log.lock().unwrap().push(format!("{method} {path}"));
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
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    s.seen
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default()
        .push(body.clone());

    let rule = s.tamper.lock().unwrap().clone();
    let reply = rule.and_then(|rule| {
        rule(&Exchange {
            path: &path,
            status,
            body: &body,
        })
    });
    let mut builder = Response::builder();
    match reply {
        None => {
            builder = builder.status(status);
            for (name, value) in &headers {
                if name != "transfer-encoding" {
                    builder = builder.header(name.as_str(), value.as_bytes());
                }
            }
            builder.body(Body::from(body)).unwrap()
        }
        Some(Reply::Body(status, bytes)) => builder
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(bytes))
            .unwrap(),
        Some(Reply::Endless) => {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let stream = futures_util::stream::repeat_with(move || {
                Ok::<Bytes, std::io::Error>(chunk.clone())
            });
            builder.status(200).body(Body::from_stream(stream)).unwrap()
        }
    }
}
