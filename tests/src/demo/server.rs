//! The demo's server: the real `otter-server` application in this process, on SQLite in a
//! data dir, with development keys, listening on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use otter_server::auth::{Scope, token};
use otter_server::{App, Config};
use tokio_util::sync::CancellationToken;

use super::DemoError;

/// A running server.
pub struct Server {
    /// Its base URL.
    pub url: String,
    /// The development key directory (what a vendor keeps offline in production).
    pub keys_dir: PathBuf,
    db: otter_server::db::Db,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Opens a server in `data_dir` and serves it on `listen`; when that port is taken (and
    /// it was not port 0), on a free port instead. Rollouts are evaluated every `tick`.
    pub async fn start(
        data_dir: &Path,
        listen: SocketAddr,
        tick: Duration,
    ) -> Result<Self, DemoError> {
        let mut config = Config::with_data_dir(data_dir);
        config.rollout_tick = tick;
        let app = (App::open(config).await).map_err(|e| DemoError::new(format!("server: {e}")))?;
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) if listen.port() != 0 => {
                eprintln!("{listen} is taken ({e}); using a free port");
                (tokio::net::TcpListener::bind(SocketAddr::new(listen.ip(), 0)).await)
                    .map_err(|e| DemoError::new(format!("listen: {e}")))?
            }
            Err(e) => return Err(DemoError::new(format!("listen on {listen}: {e}"))),
        };
        let addr = (listener.local_addr()).map_err(|e| DemoError::new(format!("listen: {e}")))?;
        let keys_dir = app.state.keys.dir.clone();
        let db = app.state.db.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                if let Err(e) = app.serve(listener, shutdown).await {
                    eprintln!("server: {e}");
                }
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            keys_dir,
            db,
            shutdown,
            task,
        })
    }

    /// A new token with `scopes`, as `otter-server token create` makes one.
    pub async fn token(&self, scopes: &[Scope], label: &str) -> Result<String, DemoError> {
        let new = (token::create(&self.db, scopes, label).await)
            .map_err(|e| DemoError::new(format!("token: {e}")))?;
        Ok(new.token)
    }

    /// Stops serving (in-flight requests finish first).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
