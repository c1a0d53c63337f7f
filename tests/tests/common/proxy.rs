//! A man in the middle between device and server, for the failure paths. It logs every
//! request, can rewrite the director's assignment and re-sign it with the director key (a
//! compromised or confused director), and injects network faults per route: a cut, a stall
//! after the headers, a trickle, bytes past the signed length, a `206` from the wrong
//! offset, flipped bytes, an error status, an endless body, a lost answer. It counts the
//! target bytes it really sent, so a test can prove no byte was downloaded twice.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use otter_keys::signer::FileKey;
use otter_keys::wire::{Assignment, Signed};
use tokio_util::sync::CancellationToken;

type Rewrite = Arc<dyn Fn(&mut Assignment) + Send + Sync>;

/// Which requests a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Any target (full image or delta).
    Targets,
    /// Full images only.
    Full,
    /// Deltas only.
    Delta,
    /// `timestamp.json`.
    Timestamp,
    /// Check-ins.
    CheckIn,
    /// Reports.
    Reports,
}

impl Route {
    fn matches(self, path: &str) -> bool {
        match self {
            Self::Targets => path.starts_with("/tuf/targets/"),
            Self::Full => path.starts_with("/tuf/targets/firmware/"),
            Self::Delta => path.starts_with("/tuf/targets/deltas/"),
            Self::Timestamp => {
                path.starts_with("/tuf/metadata/") && path.ends_with("timestamp.json")
            }
            Self::CheckIn => path.ends_with("/checkin"),
            Self::Reports => path.ends_with("/reports"),
        }
    }
}

/// A network fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Declare the full length, send this many bytes, then drop the connection.
    Cut(usize),
    /// Declare the full length, send this many bytes, then send nothing, forever.
    Stall(usize),
    /// Send the answer one byte per interval.
    Trickle(Duration),
    /// Send this many junk bytes after the real body, in the same chunk.
    Extra(usize),
    /// Answer a `Range: bytes=N-` request with the range from N + this, as a `206` whose
    /// `Content-Range` says so.
    ShiftRange(u64),
    /// Flip the byte at this offset of the body.
    Flip(usize),
    /// Answer this status without asking the server.
    Status(u16),
    /// Answer 200 with a JSON body that never ends, without asking the server.
    Endless,
    /// Forward the request, then lose the answer (the connection drops before its body).
    LoseAnswer,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
    faults: Arc<Mutex<Vec<(Route, Fault, usize)>>>,
    rewrite: Arc<Mutex<Option<Rewrite>>>,
    director: Arc<FileKey>,
    target_bytes: Arc<AtomicU64>,
    stalls: Arc<AtomicUsize>,
}

impl Shared {
    /// Takes one use of the first fault for `path`.
    fn fault_for(&self, path: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap();
        let i = faults.iter().position(|(r, _, _)| r.matches(path))?;
        let fault = faults[i].1;
        faults[i].2 -= 1;
        if faults[i].2 == 0 {
            faults.remove(i);
        }
        Some(fault)
    }
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
            faults: Arc::default(),
            rewrite: Arc::default(),
            director: Arc::new(director),
            target_bytes: Arc::default(),
            stalls: Arc::default(),
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

    /// The next target download is cut after `bytes` bytes.
    pub fn cut_next_target_after(&self, bytes: usize) {
        self.inject(Route::Targets, Fault::Cut(bytes), 1);
    }

    /// The next `times` requests on `route` suffer `fault` (faults apply in the order given).
    pub fn inject(&self, route: Route, fault: Fault, times: usize) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .push((route, fault, times));
    }

    /// Drops every fault not yet used: the network heals.
    pub fn heal(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// Every check-in answer is rewritten by `f` and re-signed with the director key.
    pub fn rewrite_assignments(&self, f: impl Fn(&mut Assignment) + Send + Sync + 'static) {
        *self.shared.rewrite.lock().unwrap() = Some(Arc::new(f));
    }

    /// Like [`Proxy::rewrite_assignments`], then re-signs the target's rollout policy for
    /// whatever image it now names, with the rollout key at `rollout_key`: a thief of the
    /// director key and the rollout key both, so that the device's deeper checks (TUF, the
    /// header, downgrade, board) are what refuses.
    pub fn rewrite_assignments_with_policy(
        &self,
        rollout_key: std::path::PathBuf,
        f: impl Fn(&mut Assignment) + Send + Sync + 'static,
    ) {
        self.rewrite_assignments(move |a| {
            let old = (a.target.as_ref())
                .and_then(|t| t.policy.as_ref())
                .map(|p| p.message.clone());
            f(a);
            let (Some(target), Some(old)) = (a.target.as_mut(), old) else {
                return;
            };
            let policy = otter_keys::wire::RolloutPolicy {
                image_sha256: target.sha256,
                ceiling: otter_keys::rollout::BasisPoints::FULL,
                window: None,
                ..old
            };
            let key = otter_keys::signer::FileKey::load(&rollout_key).unwrap();
            target.policy = Some(otter_keys::wire::Signed::sign(policy, &key).unwrap());
        });
    }

    /// Requests seen: `METHOD path [range]`.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Bytes of target files (real ones, not injected junk) sent to clients so far.
    pub fn target_bytes_sent(&self) -> u64 {
        self.shared.target_bytes.load(Ordering::SeqCst)
    }

    /// How many answers are stalled right now or were.
    pub fn stalls(&self) -> usize {
        self.shared.stalls.load(Ordering::SeqCst)
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
    let fault = s.fault_for(&path);
    match fault {
        Some(Fault::Status(code)) => {
            return Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"error":"injected","message":"injected by the test proxy"}"#,
                ))
                .unwrap();
        }
        Some(Fault::Endless) => {
            let open = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"["))
            });
            let rest = futures_util::stream::repeat_with(|| Ok(Bytes::from(b"0,".repeat(512))));
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(open.chain(rest)))
                .unwrap();
        }
        _ => {}
    }
    let mut upstream = s.client.request(method, format!("{}{path}", s.upstream));
    for name in ["content-type", "authorization", "if-range", "if-none-match"] {
        if let Some(value) = request.headers().get(name) {
            upstream = upstream.header(name, value.as_bytes());
        }
    }
    if let Some(range) = &range {
        let asked = match fault {
            Some(Fault::ShiftRange(by)) => shifted(range, by),
            _ => range.clone(),
        };
        upstream = upstream.header("range", asked);
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
    let counted = Route::Targets.matches(&path);
    let mut bytes = response.bytes().await.unwrap().to_vec();
    let count = |n: usize| {
        if counted {
            s.target_bytes.fetch_add(n as u64, Ordering::SeqCst);
        }
    };
    match fault {
        Some(Fault::Cut(limit)) => {
            builder = builder.header("content-length", bytes.len());
            let take = limit.min(bytes.len());
            count(take);
            bytes.truncate(take);
            // The bytes go out (and are flushed while the stream waits), then the drop.
            let stream = futures_util::stream::iter([Ok(Bytes::from(bytes))]).chain(
                futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(std::io::Error::other("cut by the test proxy"))
                }),
            );
            builder.body(Body::from_stream(stream)).unwrap()
        }
        Some(Fault::Stall(limit)) => {
            builder = builder.header("content-length", bytes.len());
            let take = limit.min(bytes.len());
            count(take);
            bytes.truncate(take);
            s.stalls.fetch_add(1, Ordering::SeqCst);
            let stream =
                futures_util::stream::once(
                    async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) },
                )
                .chain(futures_util::stream::pending());
            builder.body(Body::from_stream(stream)).unwrap()
        }
        Some(Fault::Trickle(every)) => {
            let sent = s.target_bytes.clone();
            let stream = futures_util::stream::iter(bytes).then(move |b| {
                let sent = sent.clone();
                async move {
                    tokio::time::sleep(every).await;
                    if counted {
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok::<_, std::io::Error>(Bytes::from(vec![b]))
                }
            });
            builder.body(Body::from_stream(stream)).unwrap()
        }
        Some(Fault::Extra(n)) => {
            count(bytes.len());
            bytes.extend(std::iter::repeat_n(0x5a, n));
            builder.body(Body::from(bytes)).unwrap()
        }
        Some(Fault::Flip(at)) => {
            count(bytes.len());
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 0xff;
            }
            builder.body(Body::from(bytes)).unwrap()
        }
        Some(Fault::LoseAnswer) => {
            let stream = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<Bytes, _>(std::io::Error::other("answer lost by the test proxy"))
            });
            Response::builder()
                .status(200)
                .header("content-length", 64)
                .body(Body::from_stream(stream))
                .unwrap()
        }
        _ => {
            count(bytes.len());
            builder.body(Body::from(bytes)).unwrap()
        }
    }
}

/// `bytes=N-` as `bytes=(N+by)-`.
fn shifted(range: &str, by: u64) -> String {
    let start: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    format!("bytes={}-", start + by)
}
