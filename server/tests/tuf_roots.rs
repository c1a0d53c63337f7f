//! Root versions: imported from the key directory at start, served for the client's chain
//! walk, never overwritten; a root that does not list the server's online keys stops the
//! start with an error naming the role.

mod common;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use common::{TestServer, databases};
use otter_keys::signer::FileKey;
use otter_keys::tuf::{SignerKeySource, current_root, rotate_root, tuf_key, tuf_key_id};
use otter_server::App;
use sqlx::Row;
use tough::RepositoryLoader;
use tough::editor::signed::SignedRole;
use tough::key_source::KeySource;
use tough::schema::{KeyHolder, RoleType};
use url::Url;

fn in_a_year() -> jiff::Timestamp {
    jiff::Timestamp::from_second(otter_server::db::now() + 365 * 86_400).unwrap()
}

async fn stored_root_versions(s: &TestServer) -> Vec<i64> {
    sqlx::query("SELECT version FROM tuf_roots ORDER BY version")
        .fetch_all(s.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn start_error(s: &TestServer) -> String {
    match App::open(s.state.config.clone()).await {
        Ok(_) => panic!("the server started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_rotated_root_is_imported_served_and_walked_by_clients() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        assert_eq!(stored_root_versions(&s).await, [1]);

        // Rotate the root key offline; the next start (here: a replica) imports version 2.
        let mut set = s.keyset();
        let old_key = set.manifest().root.keys[0].clone();
        rotate_root(&mut set, &[old_key], None, in_a_year()).unwrap();
        let replica = s.replica().await;
        assert_eq!(stored_root_versions(&s).await, [1, 2]);

        let served = s
            .client
            .get(s.at("/tuf/metadata/2.root.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            served,
            std::fs::read(s.state.keys.dir.join("2.root.json")).unwrap()
        );
        let newest: serde_json::Value = s
            .client
            .get(s.at("/tuf/metadata/root.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(newest["signed"]["version"], 2);

        // A client that shipped with root 1 walks to root 2 and still verifies everything.
        let datastore = tempfile::tempdir().unwrap();
        let root = std::fs::read(s.state.keys.dir.join("1.root.json")).unwrap();
        let repo = RepositoryLoader::new(
            &root,
            Url::parse(&s.at("/tuf/metadata/")).unwrap(),
            Url::parse(&s.at("/tuf/targets/")).unwrap(),
        )
        .datastore(datastore.path())
        .load()
        .await
        .unwrap();
        assert_eq!(repo.root().signed.version.get(), 2);

        // A stored version is never overwritten: a different file for it stops the start.
        // (Same content, other formatting: still validly signed, but not the served bytes.)
        let path = s.state.keys.dir.join("2.root.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let err = start_error(&s).await;
        assert!(
            err.contains("root version 2") && err.contains("differs"),
            "{err}"
        );
        assert_eq!(
            served,
            s.client
                .get(s.at("/tuf/metadata/2.root.json"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        );

        replica.state.db.close().await;
        s.stop().await;
    }
}

#[tokio::test]
async fn a_root_without_the_server_timestamp_key_stops_the_start() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let set = s.keyset();
        let (version, old) = current_root(set.dir()).unwrap();

        // Root 2 hands the timestamp role to a key the server does not hold.
        let other_dir = tempfile::tempdir().unwrap();
        let other = FileKey::generate_at(&other_dir.path().join("t.key")).unwrap();
        let mut root = old.signed.clone();
        root.version = (version + 1).try_into().unwrap();
        let id = tuf_key_id(&other).unwrap();
        root.keys.insert(id.clone(), tuf_key(&other));
        root.roles.get_mut(&RoleType::Timestamp).unwrap().keyids = vec![id];
        let root_keys: Vec<Box<dyn KeySource>> = set
            .root_keys()
            .unwrap()
            .into_iter()
            .map(|k| Box::new(SignerKeySource::new(Arc::new(k))) as Box<dyn KeySource>)
            .collect();
        let signed = SignedRole::new(
            root,
            &KeyHolder::Root(old.signed.clone()),
            &root_keys,
            &SystemRandom::new(),
        )
        .await
        .unwrap();
        std::fs::write(set.dir().join("2.root.json"), signed.buffer()).unwrap();

        let err = start_error(&s).await;
        assert!(
            err.contains("root version 2") && err.contains("timestamp"),
            "{err}"
        );
        // Nothing was imported: the failed start rolled back.
        assert_eq!(stored_root_versions(&s).await, [1]);
        s.stop().await;
    }
}
