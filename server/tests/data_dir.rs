//! What the server leaves on disk: private (0700 directories, 0600 database), and committed
//! before it is served (SQLite syncs every commit).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{DbKind, TestServer};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn data_dir_database_blobs_and_staging_are_private() {
    let parent = tempfile::tempdir().unwrap();
    // A data dir the server creates itself (the test's temp dir is 0700 already).
    let data = parent.path().join("otter-data");
    let server = TestServer::start_with(DbKind::Sqlite, |c| {
        *c = otter_server::Config::with_data_dir(&data);
    })
    .await;
    let image = server.sign_image("acme-1", "1.0.0", 1, &[1u8; 4096]);
    let token = server.admin_token.clone();
    assert_eq!(server.publish(&token, image).await.status(), 201);
    for dir in ["", "blobs", "blobs/sha256", "staging", "dev-keys"] {
        assert_eq!(mode(&data.join(dir)), 0o700, "{dir:?}");
    }
    for entry in walk(&data.join("blobs/sha256")) {
        let expected = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&entry) & !expected, 0, "{}", entry.display());
    }
    for file in ["otter.db", "otter.db-wal", "otter.db-shm"] {
        let path = data.join(file);
        if path.exists() || file == "otter.db" {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn an_existing_world_readable_data_dir_is_tightened() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("otter-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("otter.db"), b"").unwrap();
    std::fs::set_permissions(
        data.join("otter.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let server = TestServer::start_with(DbKind::Sqlite, |c| {
        *c = otter_server::Config::with_data_dir(&data);
    })
    .await;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("otter.db")), 0o600);
    server.stop().await;
}

#[tokio::test]
async fn sqlite_syncs_every_commit() {
    let server = TestServer::start(DbKind::Sqlite).await;
    // Every pooled connection, not just the first: hold several at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = server.state.db.pool().acquire().await.unwrap();
        let (mode,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(mode, 2, "synchronous must be FULL (2), not NORMAL (1)");
        let (journal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        held.push(conn);
    }
    drop(held);
    server.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
