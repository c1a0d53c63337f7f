//! Opening the server (data dir, database, keys, storage, TUF) and serving it until shutdown.

use axum::Router;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Scope;
use crate::auth::token::{self, NewToken, TokenError};
use crate::config::Config;
use crate::db::{Db, DbError};
use crate::keys::{KeysError, ServerKeys};
use crate::metrics::Metrics;
use crate::state::{AppState, Shared};
use crate::storage::{FsStore, StorageError};
use crate::tuf::{Repository, TufError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir cannot be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database is unusable.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The keys are unusable.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// Blob storage is unusable.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The TUF repository could not be initialised.
    #[error("TUF repository: {0}")]
    Tuf(#[from] TufError),
    /// The first admin token could not be created.
    #[error("initial admin token: {0}")]
    Token(#[from] TokenError),
    /// Binding or serving failed.
    #[error("serving on {addr}: {source}")]
    Serve {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// An opened server, ready to serve.
#[derive(Debug)]
pub struct App {
    /// Shared state (also what tests inspect).
    pub state: AppState,
    /// The admin token created because none existed; its secret is shown once.
    pub first_admin_token: Option<NewToken>,
}

impl App {
    /// Opens everything `config` names, creating what a first start needs.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        crate::storage::create_private_dirs(&config.data_dir).map_err(|source| {
            StartError::DataDir {
                path: config.data_dir.clone(),
                source,
            }
        })?;
        let db = Db::open(&config.database_url).await?;
        let keys = ServerKeys::load_or_create(config.keys_dir.as_deref(), &config.data_dir)?;
        let blobs = Arc::new(FsStore::open(&config.data_dir.join("blobs"))?);
        let left = crate::storage::clean_staging(&crate::storage::staging_dir(&config.data_dir))
            .map_err(StorageError::Io)?;
        if left > 0 {
            tracing::warn!(
                files = left,
                "removed partial uploads left by a stopped server"
            );
        }
        let tuf = Repository::new(db.clone(), keys.clone(), &config);
        tuf.init().await?;
        let first_admin_token = if token::has_admin(&db).await.map_err(TokenError::Db)? {
            None
        } else {
            Some(token::create(&db, &[Scope::Admin], "initial admin token").await?)
        };
        let state = AppState::new(Shared {
            config,
            db,
            blobs,
            keys,
            tuf,
            metrics: Metrics::default(),
            delta_wakeup: tokio::sync::Notify::new(),
        });
        Ok(Self {
            state,
            first_admin_token,
        })
    }

    /// The HTTP router.
    pub fn router(&self) -> Router {
        crate::api::router(self.state.clone())
    }

    /// Serves plain HTTP on `listener` (directly, or behind a TLS-terminating proxy) with the
    /// background tasks, until `shutdown`; in-flight requests get the configured shutdown
    /// deadline.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        self.serve_with(listener, None, shutdown).await;
        Ok(())
    }

    /// Serves HTTPS with rustls on `listener` until `shutdown`.
    pub async fn serve_tls(
        self,
        listener: std::net::TcpListener,
        cert: PathBuf,
        key: PathBuf,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        let addr = local_addr(listener.local_addr());
        let serve_err = |source| StartError::Serve {
            addr: addr.clone(),
            source,
        };
        let tls = crate::listen::acceptor(&cert, &key)
            .map_err(|e| serve_err(std::io::Error::other(e)))?;
        let listener = TcpListener::from_std(listener).map_err(serve_err)?;
        self.serve_with(listener, Some(tls), shutdown).await;
        Ok(())
    }

    async fn serve_with(
        self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: CancellationToken,
    ) {
        let tasks = self.spawn_background(&shutdown);
        let routers = crate::listen::Routers {
            full: self.router(),
            reserve: crate::api::reserve_router(self.state.clone()),
        };
        let limits = self.state.config.serve;
        crate::listen::serve(listener, tls, routers, limits, shutdown.clone()).await;
        self.wind_down(&shutdown, tasks).await;
    }

    /// After the listener stopped: stops the background tasks, waits for them, closes the
    /// database.
    async fn wind_down(
        &self,
        shutdown: &CancellationToken,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    ) {
        shutdown.cancel();
        for task in tasks {
            let _ = task.await;
        }
        self.state.db.close().await;
    }

    fn spawn_background(&self, shutdown: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            crate::tuf::spawn_refresher(self.state.clone(), shutdown.clone()),
            crate::deltas::spawn_worker(self.state.clone(), shutdown.clone()),
            crate::anomalies::spawn_sweeper(self.state.clone(), shutdown.clone()),
            crate::rollouts::ticker::spawn(self.state.clone(), shutdown.clone()),
        ]
    }
}

fn local_addr(addr: std::io::Result<SocketAddr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}

/// Binds `addr` for [`App::serve`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Serve {
            addr: addr.to_string(),
            source,
        })
}
