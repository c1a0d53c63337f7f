//! The HTTP listener: an accept loop over hyper with timeouts on every phase a client
//! controls, a connection limit with a small reserve for health checks, and a shutdown
//! deadline. axum's own `serve` has none of these, so one idle or trickling socket per file
//! descriptor could hold the server.
//!
//! - request head: [`ServeLimits::header_read_timeout`] (hyper's timer, which also closes idle
//!   keep-alive connections);
//! - request body: a minimum rate after a grace period ([`body_rate`]), answered 408;
//! - response: a write that makes no progress for [`ServeLimits::write_timeout`] closes the
//!   connection ([`write_stall`]), so a client that stops reading lets go of its place;
//! - connections: at most [`ServeLimits::max_connections`] with the full API, and at most
//!   [`ServeLimits::max_connections_per_host`] of them from one host ([`per_peer`]); past
//!   that a reserve answers only `/healthz` and `/metrics`; past that a connection gets a
//!   canned 503 and is closed at once, so the accept queue never backs up;
//! - errors hyper answers itself (400, 414, 431) get the API's JSON body ([`json_errors`]);
//! - shutdown: in-flight requests get [`ServeLimits::shutdown_timeout`], then their
//!   connections are dropped.

pub mod body_rate;
mod fds;
mod json_errors;
mod limits;
mod per_peer;
mod tls;
mod write_stall;

pub use fds::raise_fd_limit;
pub use limits::ServeLimits;
pub use tls::{TlsError, acceptor};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The body a connection over every limit is sent before it is closed.
const REFUSED: &str =
    r#"{"error":"unavailable","message":"the server is at its connection limit; retry later"}"#;

/// The routers a connection may get: everything, or only the operational routes.
#[derive(Clone)]
pub struct Routers {
    /// The full API.
    pub full: Router,
    /// What a reserve connection is served: `/healthz`, `/metrics`, 503 for the rest.
    pub reserve: Router,
}

/// Serves `routers` on `listener` (over TLS when `tls` is given) under `limits` until
/// `shutdown`, then waits at most `limits.shutdown_timeout` for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routers: Routers,
    limits: ServeLimits,
    shutdown: CancellationToken,
) {
    let full = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(limits.reserve_connections));
    let per_peer = per_peer::PerPeer::new(limits.max_connections_per_host);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // little instead of spinning, then go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (router, keep_alive, places) = match admit(&full, &reserve, &per_peer, peer.ip()) {
            Some(places @ Places::Full { .. }) => (routers.full.clone(), true, places),
            Some(places @ Places::Reserve { .. }) => (routers.reserve.clone(), false, places),
            None => {
                refuse(&stream);
                continue;
            }
        };
        let connection = Connection {
            router,
            keep_alive,
            limits,
            tls: tls.clone(),
            watcher: graceful.watcher(),
        };
        connections.spawn(connection.run(stream, places));
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "shutdown deadline of {:?} passed: closing the remaining connections",
            limits.shutdown_timeout
        );
    }
    connections.shutdown().await;
}

/// The places a connection holds until it closes (dropping them gives them back).
enum Places {
    Full {
        _overall: OwnedSemaphorePermit,
        _host: per_peer::PeerPermit,
    },
    Reserve {
        _reserve: OwnedSemaphorePermit,
    },
}

/// A full place when one is free and the peer is under its own cap, else a reserve place.
fn admit(
    full: &Arc<Semaphore>,
    reserve: &Arc<Semaphore>,
    per_peer: &per_peer::PerPeer,
    ip: std::net::IpAddr,
) -> Option<Places> {
    if let Some(peer) = per_peer.admit(ip)
        && let Ok(permit) = full.clone().try_acquire_owned()
    {
        return Some(Places::Full {
            _overall: permit,
            _host: peer,
        });
    }
    reserve
        .clone()
        .try_acquire_owned()
        .ok()
        .map(|permit| Places::Reserve { _reserve: permit })
}

/// Tells a connection over every limit so, without waiting for it (a full send buffer just
/// loses the answer), and closes it.
fn refuse(stream: &TcpStream) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         connection: close\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{REFUSED}",
        REFUSED.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

struct Connection {
    router: Router,
    keep_alive: bool,
    limits: ServeLimits,
    tls: Option<TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    async fn run(self, stream: TcpStream, places: Places) {
        let _places = places;
        let _ = stream.set_nodelay(true);
        let stream = write_stall::WriteStall::new(stream, self.limits.write_timeout);
        match self.tls.clone() {
            None => self.http(stream).await,
            Some(acceptor) => {
                // The handshake is part of reading the request head.
                let timeout = self.limits.header_read_timeout;
                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => self.http(stream).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    async fn http<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(self.keep_alive);
        let service = TowerToHyperService::new(self.router);
        let io = TokioIo::new(json_errors::JsonErrors::new(io));
        let connection = builder.serve_connection(io, service);
        if let Err(e) = self.watcher.watch(connection).await {
            tracing::debug!(error = %e, "connection closed with an error");
        }
    }
}
