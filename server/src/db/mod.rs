//! The database: one query layer over SQLite (the embedded default) and PostgreSQL, through
//! sqlx's `Any` driver. Queries use `$N` placeholders and portable SQL (TEXT, BIGINT), so the
//! same migrations and statements run on both; ids are random text, times are Unix seconds.

mod ids;

pub use ids::new_id;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

/// The embedded migrations (`server/migrations`), applied at start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database engine a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `sqlite://...`
    Sqlite,
    /// `postgres://...` or `postgresql://...`
    Postgres,
}

impl Engine {
    /// The engine of `url`, or `None` for an unsupported scheme.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither SQLite nor PostgreSQL.
    #[error("database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The SQLite file could not be created private (0600).
    #[error("cannot make the database file private: {0}")]
    Permissions(#[source] std::io::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A connection pool plus the engine it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
}

impl Db {
    /// Connects to `url` and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        install_default_drivers();
        let engine = Engine::of(url).ok_or_else(|| DbError::UnsupportedUrl(url.to_owned()))?;
        if engine == Engine::Sqlite {
            private_sqlite_file(url).map_err(DbError::Permissions)?;
        }
        let options = match engine {
            // WAL lets readers proceed during a write; writers wait up to 10 s for the lock.
            // `synchronous = FULL` syncs the WAL at every commit: a commit that returned (a
            // TUF version that may have been served) survives a power loss, so the same
            // version number is never reissued with other content. NORMAL could lose it.
            Engine::Sqlite => AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
            Engine::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(DbError::Connect)?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, engine })
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind the pool.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Closes every connection (at shutdown, and before a test drops its database).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the SQLite file of `url` readable by this user only (0600), or makes an existing
/// one so; SQLite gives its `-wal` and `-shm` files the same mode.
fn private_sqlite_file(url: &str) -> std::io::Result<()> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = std::path::Path::new(path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Current time in Unix seconds.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Whether a database error is a unique-constraint violation (a duplicate insert).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}
