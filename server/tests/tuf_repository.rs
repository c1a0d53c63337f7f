//! The TUF repository as clients see it: tough's `RepositoryLoader` and python-tuf's
//! `Updater` load the served metadata and verify every target; the refresher keeps the
//! timestamp fresh; concurrent writers in two processes keep versions gap-free.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestServer, databases};
use otter_keys::targets::{
    DELTA_COMPRESSION, DELTA_ZSTD_WINDOW_LOG, TargetInfo, delta_target_name, image_target_name,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tough::{IntoVec, RepositoryLoader, TargetName};
use url::Url;

/// A target the test put into the database and the blob store.
#[derive(Clone, Debug)]
struct Published {
    id: String,
    name: String,
    version: String,
    bytes: Vec<u8>,
}

impl Published {
    fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }
}

/// Stores `bytes` as a blob the way a publish does.
async fn put_blob(s: &TestServer, bytes: &[u8]) -> [u8; 32] {
    let sha: [u8; 32] = Sha256::digest(bytes).into();
    let staged = s
        .data_dir
        .path()
        .join(format!("staged-{}", hex::encode(sha)));
    std::fs::write(&staged, bytes).unwrap();
    s.state.blobs.put_file(&sha, &staged).await.unwrap();
    sha
}

/// A signed release of `hardware_id`, as a row in `releases` and a blob.
async fn release(s: &TestServer, hardware_id: &str, version: &str, counter: u32) -> Published {
    let payload: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(31) ^ counter) as u8)
        .collect();
    let image = s.sign_image(hardware_id, version, counter, &payload);
    let sha = put_blob(s, &image).await;
    let name = image_target_name(hardware_id, version.parse().unwrap());
    let id = otter_server::db::new_id("rel");
    let parts: Vec<i64> = version.split('.').map(|p| p.parse().unwrap()).collect();
    sqlx::query(
        "INSERT INTO releases (id, hardware_id, version, major, minor, patch, security_counter, \
         key_id, sha256, length, target_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&id)
    .bind(hardware_id)
    .bind(version)
    .bind(parts[0])
    .bind(parts[1])
    .bind(parts[2])
    .bind(i64::from(counter))
    .bind("test-key")
    .bind(hex::encode(sha))
    .bind(image.len() as i64)
    .bind(&name)
    .bind(otter_server::db::now())
    .execute(s.state.db.pool())
    .await
    .unwrap();
    Published {
        id,
        name,
        version: version.to_owned(),
        bytes: image,
    }
}

/// A release row without a blob (enough for signing metadata).
async fn insert_row(state: &otter_server::state::AppState, version: &str) {
    let parts: Vec<i64> = version.split('.').map(|p| p.parse().unwrap()).collect();
    sqlx::query(
        "INSERT INTO releases (id, hardware_id, version, major, minor, patch, security_counter, \
         key_id, sha256, length, target_name, created_at) \
         VALUES ($1, 'acme-1', $2, $3, $4, $5, 1, 'k', $6, 1, $7, 0)",
    )
    .bind(otter_server::db::new_id("rel"))
    .bind(version)
    .bind(parts[0])
    .bind(parts[1])
    .bind(parts[2])
    .bind("ab".repeat(32))
    .bind(image_target_name("acme-1", version.parse().unwrap()))
    .execute(state.db.pool())
    .await
    .unwrap();
}

/// A patch between two releases of `hardware_id`, as a row in `deltas` and a blob (the
/// bytes are arbitrary: the repository serves them, it does not apply them).
async fn delta(s: &TestServer, hardware_id: &str, from: &Published, to: &Published) -> Published {
    let bytes = format!("patch {} -> {}", from.version, to.version).repeat(100);
    let sha = put_blob(s, bytes.as_bytes()).await;
    let name = delta_target_name(
        hardware_id,
        from.version.parse().unwrap(),
        to.version.parse().unwrap(),
    );
    let id = otter_server::db::new_id("delta");
    sqlx::query(
        "INSERT INTO deltas (id, from_release, to_release, target_name, sha256, length, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&from.id)
    .bind(&to.id)
    .bind(&name)
    .bind(hex::encode(sha))
    .bind(bytes.len() as i64)
    .bind(otter_server::db::now())
    .execute(s.state.db.pool())
    .await
    .unwrap();
    Published {
        id,
        name,
        version: to.version.clone(),
        bytes: bytes.into_bytes(),
    }
}

/// Loads the served repository with tough, trusting the key directory's first root.
async fn load(s: &TestServer, datastore: &Path) -> tough::Repository {
    let root = std::fs::read(s.state.keys.dir.join("1.root.json")).unwrap();
    RepositoryLoader::new(
        &root,
        Url::parse(&s.at("/tuf/metadata/")).unwrap(),
        Url::parse(&s.at("/tuf/targets/")).unwrap(),
    )
    .datastore(datastore)
    .load()
    .await
    .unwrap()
}

async fn read_target(repo: &tough::Repository, name: &str) -> Vec<u8> {
    repo.read_target(&TargetName::new(name).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} is not a target"))
        .into_vec()
        .await
        .unwrap()
}

/// The newest version of `role` in the database.
async fn newest(s: &TestServer, role: &str) -> i64 {
    sqlx::query("SELECT MAX(version) FROM tuf_metadata WHERE role = $1")
        .bind(role)
        .fetch_one(s.state.db.pool())
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn tough_loads_the_repository_and_verifies_every_target() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let v1 = release(&s, "acme-1", "1.0.0", 1).await;
        let v2 = release(&s, "acme-1", "1.1.0", 2).await;
        let other = release(&s, "zeta-9", "2.0.0", 5).await;
        let patch = delta(&s, "acme-1", &v1, &v2).await;
        s.state.tuf.targets_changed().await.unwrap();

        let datastore = tempfile::tempdir().unwrap();
        let repo = load(&s, datastore.path()).await;
        let names: BTreeSet<String> = repo
            .targets()
            .signed
            .targets
            .keys()
            .map(|n| n.raw().to_owned())
            .collect();
        let expected: BTreeSet<String> = [&v1, &v2, &other, &patch]
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(names, expected);
        for published in [&v1, &v2, &other, &patch] {
            assert_eq!(
                read_target(&repo, &published.name).await,
                published.bytes,
                "{}",
                published.name
            );
        }

        let custom = |name: &str| {
            let target = &repo.targets().signed.targets[&TargetName::new(name).unwrap()];
            TargetInfo::from_custom(&target.custom).unwrap()
        };
        let TargetInfo::Image(image) = custom(&v2.name) else {
            panic!("{} is not an image target", v2.name)
        };
        assert_eq!(image.hardware_id, "acme-1");
        assert_eq!(image.version, "1.1.0".parse().unwrap());
        assert_eq!(image.security_counter, 2);
        let TargetInfo::Delta(info) = custom(&patch.name) else {
            panic!("{} is not a delta target", patch.name)
        };
        assert_eq!(info.hardware_id, "acme-1");
        assert_eq!(info.from_version, "1.0.0".parse().unwrap());
        assert_eq!(info.from_sha256, v1.sha256());
        assert_eq!(info.to_target, v2.name);
        assert_eq!(info.to_version, "1.1.0".parse().unwrap());
        assert_eq!(info.to_sha256, v2.sha256());
        assert_eq!(info.to_length, v2.bytes.len() as u64);
        assert_eq!(info.compression, DELTA_COMPRESSION);
        assert_eq!(info.window_log, DELTA_ZSTD_WINDOW_LOG);

        // A later publish: the same client (same datastore) updates to the new versions.
        let before = repo.targets().signed.version.get();
        let v3 = release(&s, "acme-1", "1.2.0", 3).await;
        s.state.tuf.targets_changed().await.unwrap();
        let repo = load(&s, datastore.path()).await;
        assert_eq!(repo.targets().signed.version.get(), before + 1);
        assert_eq!(read_target(&repo, &v3.name).await, v3.bytes);
        assert_eq!(
            repo.snapshot().signed.meta["targets.json"].version.get(),
            before + 1
        );
        assert_eq!(
            repo.timestamp().signed.meta["snapshot.json"].version,
            repo.snapshot().signed.version
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn the_refresher_re_signs_the_timestamp_before_it_expires() {
    for kind in databases() {
        let s = TestServer::start_with(kind, |c| c.timestamp_expiry = Duration::from_secs(4)).await;
        assert_eq!(
            otter_server::tuf::refresh_period(&s.state.config),
            Duration::from_millis(500)
        );
        let v1 = release(&s, "acme-1", "1.0.0", 1).await;
        s.state.tuf.targets_changed().await.unwrap();
        let first = newest(&s, "timestamp").await;
        let (targets, snapshot) = (newest(&s, "targets").await, newest(&s, "snapshot").await);

        // Past the first timestamp's expiry, a client still loads: it was re-signed.
        let started = Instant::now();
        while newest(&s, "timestamp").await < first + 2 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timestamp not re-signed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
        let datastore = tempfile::tempdir().unwrap();
        let repo = load(&s, datastore.path()).await;
        assert_eq!(read_target(&repo, &v1.name).await, v1.bytes);
        assert!(repo.timestamp().signed.version.get() as i64 >= first + 2);
        assert_eq!(repo.timestamp().signed.expires.subsec_nanosecond(), 0);
        // Only the timestamp was due; snapshot and targets kept their versions.
        assert_eq!(newest(&s, "targets").await, targets);
        assert_eq!(newest(&s, "snapshot").await, snapshot);
        s.stop().await;
    }
}

#[tokio::test]
async fn concurrent_writers_in_two_processes_keep_versions_gap_free_and_consistent() {
    const ROUNDS: usize = 12;
    for kind in databases() {
        let s = TestServer::start(kind).await;
        release(&s, "acme-1", "1.0.0", 1).await;
        let replica = s.replica().await;
        let mut tasks = tokio::task::JoinSet::new();
        for round in 0..ROUNDS {
            for (i, state) in [s.state.clone(), replica.state.clone()]
                .into_iter()
                .enumerate()
            {
                // Each writer adds a target, then asks for it to be signed; a writer that
                // finds its target already signed by the other writes nothing.
                tasks.spawn(async move {
                    insert_row(&state, &format!("2.{round}.{i}")).await;
                    state.tuf.targets_changed().await.unwrap()
                });
            }
            let state = replica.state.clone();
            tasks.spawn(async move {
                state.tuf.refresh().await.unwrap();
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }

        // Every role: versions 1..=N without gaps (init wrote 1, each write one more).
        let newest: i64 =
            sqlx::query("SELECT MAX(version) FROM tuf_metadata WHERE role = 'targets'")
                .fetch_one(s.state.db.pool())
                .await
                .unwrap()
                .get(0);
        assert!((2..=1 + 2 * ROUNDS as i64).contains(&newest), "{newest}");
        let expected: Vec<i64> = (1..=newest).collect();
        let mut files: BTreeMap<(String, i64), (Value, String, usize)> = BTreeMap::new();
        for role in ["targets", "snapshot", "timestamp"] {
            let rows = sqlx::query(
                "SELECT version, body, sha256 FROM tuf_metadata WHERE role = $1 ORDER BY version",
            )
            .bind(role)
            .fetch_all(s.state.db.pool())
            .await
            .unwrap();
            let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            assert_eq!(versions, expected, "{role}");
            for row in rows {
                let body: String = row.get(1);
                let sha: String = row.get(2);
                assert_eq!(sha, hex::encode(Sha256::digest(body.as_bytes())));
                let json: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(json["signed"]["version"], row.get::<i64, _>(0));
                files.insert((role.to_owned(), row.get(0)), (json, sha, body.len()));
            }
        }
        // Each snapshot names the targets written with it, each timestamp its snapshot,
        // with the stored file's hash and length.
        for (lower, upper, file) in [
            ("targets", "snapshot", "targets.json"),
            ("snapshot", "timestamp", "snapshot.json"),
        ] {
            for version in &expected {
                let (json, _, _) = &files[&(upper.to_owned(), *version)];
                let meta = &json["signed"]["meta"][file];
                let listed = meta["version"].as_i64().unwrap();
                assert_eq!(listed, *version, "{upper} {version} lists {lower} {listed}");
                let (_, sha, len) = &files[&(lower.to_owned(), listed)];
                assert_eq!(meta["hashes"]["sha256"], sha.as_str());
                assert_eq!(meta["length"], *len as u64);
            }
        }
        let datastore = tempfile::tempdir().unwrap();
        let repo = load(&s, datastore.path()).await;
        assert_eq!(repo.timestamp().signed.version.get(), newest as u64);
        // The last write lists every target, whichever writer made it.
        assert_eq!(repo.targets().signed.targets.len(), 1 + 2 * ROUNDS);
        replica.state.db.close().await;
        s.stop().await;
    }
}

#[tokio::test]
async fn python_tuf_updates_from_the_repository() {
    let required = std::env::var("OTTER_REQUIRE_ALL").as_deref() == Ok("1");
    let probe = std::process::Command::new("python3")
        .args(["-c", "import tuf.ngclient"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = match &probe {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            !required,
            "OTTER_REQUIRE_ALL=1 but python-tuf is missing (pip install tuf): {why}"
        );
        eprintln!("skipping python-tuf interop: python-tuf is missing (pip install tuf): {why}");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_tuf_client.py");
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let v1 = release(&s, "acme-1", "1.0.0", 1).await;
        let v2 = release(&s, "acme-1", "1.1.0", 2).await;
        let patch = delta(&s, "acme-1", &v1, &v2).await;
        s.state.tuf.targets_changed().await.unwrap();

        let work = tempfile::tempdir().unwrap();
        let root = s.state.keys.dir.join("1.root.json");
        let mut args = vec![
            script.display().to_string(),
            s.at("/tuf/metadata/"),
            s.at("/tuf/targets/"),
            root.display().to_string(),
            work.path().display().to_string(),
        ];
        args.extend([&v1, &v2, &patch].iter().map(|p| p.name.clone()));
        // Blocking is fine on another thread; the server runs on this test's runtime.
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3").args(&args).output()
        })
        .await
        .unwrap()
        .unwrap();
        assert!(
            out.status.success(),
            "python-tuf client failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        for published in [&v1, &v2, &patch] {
            let got = &report["targets"][&published.name];
            assert_eq!(got["sha256"], hex::encode(published.sha256()), "{got}");
            let saved = std::fs::read(got["path"].as_str().unwrap()).unwrap();
            assert_eq!(saved, published.bytes);
            let custom: std::collections::HashMap<String, Value> =
                serde_json::from_value(got["custom"].clone()).unwrap();
            TargetInfo::from_custom(&custom).unwrap();
        }
        assert_eq!(report["targets"][&patch.name]["custom"]["kind"], "delta");
        s.stop().await;
    }
}

#[tokio::test]
async fn reporting_an_already_signed_change_writes_nothing() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        release(&s, "acme-1", "1.0.0", 1).await;
        s.state.tuf.targets_changed().await.unwrap();
        let count = || async {
            let n: i64 = sqlx::query("SELECT COUNT(*) FROM tuf_metadata")
                .fetch_one(s.state.db.pool())
                .await
                .unwrap()
                .get(0);
            n
        };
        let before = count().await;
        s.state.tuf.targets_changed().await.unwrap();
        assert_eq!(count().await, before);
        release(&s, "acme-1", "1.1.0", 1).await;
        s.state.tuf.targets_changed().await.unwrap();
        assert_eq!(count().await, before + 3, "targets, snapshot and timestamp");
        s.stop().await;
    }
}
