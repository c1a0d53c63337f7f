//! The agent's TUF client workflow against the real server, seen from the wire: what it
//! fetches on a refresh when nothing changed, and what it keeps on disk.

mod common;

use bytes::Bytes;
use common::hostile::{Mirror, Reply};
use common::{Fleet, firmware};
use otter_agent::http::HttpConfig;
use otter_agent::tuf_client::TufClient;
use otter_agent::tuf_transport::MetadataTransport;

fn client(dir: &std::path::Path, fleet: &Fleet, server: &str) -> TufClient {
    let root = std::fs::read(fleet.state.keys.dir.join("1.root.json")).unwrap();
    let config = HttpConfig::default();
    let http = otter_agent::http::client(&config).unwrap();
    // Separate metadata and target base URLs, as any TUF repository may lay them out.
    let metadata = url::Url::parse(&format!("{server}/tuf/metadata/")).unwrap();
    let targets = url::Url::parse(&format!("{server}/tuf/targets/")).unwrap();
    let transport = MetadataTransport::new(http, config);
    TufClient::with_urls(dir, &root, (metadata, targets), transport).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_timestamp_fetches_nothing_more_and_files_are_kept_as_received() {
    let fleet = Fleet::start().await;
    fleet
        .publish(fleet.image("1.0.0", &firmware(32 * 1024, 5)))
        .await;
    let mirror = Mirror::start(&fleet.url).await;
    let dir = tempfile::tempdir().unwrap();
    let tuf = client(dir.path(), &fleet, &mirror.url);

    let repo = tuf.refresh().await.unwrap();
    assert!(repo.target("firmware/e2e-board/1.0.0.img").is_ok());
    let first: Vec<String> = mirror.log();
    for file in [
        "2.root.json",
        "timestamp.json",
        ".snapshot.json",
        ".targets.json",
    ] {
        assert!(
            first.iter().any(|r| r.ends_with(file)),
            "{file} fetched: {first:?}"
        );
    }
    // Each trusted file is the bytes the server sent, not a re-serialisation.
    let path = |suffix: &str| {
        let request = first.iter().find(|r| r.ends_with(suffix)).unwrap();
        request.trim_start_matches("GET ").to_owned()
    };
    for (stored, served) in [
        ("timestamp.json", path("/timestamp.json")),
        ("snapshot.json", path(".snapshot.json")),
        ("targets.json", path(".targets.json")),
    ] {
        let sent = mirror.seen(&served);
        let on_disk = std::fs::read(dir.path().join(stored)).unwrap();
        assert_eq!(
            sent.last().map(|b| b.to_vec()),
            Some(on_disk),
            "{stored} kept as received"
        );
    }

    // Nothing changed: the next root is looked for and the timestamp fetched, nothing else.
    mirror.clear_log();
    let again = tuf.refresh().await.unwrap();
    assert!(again.target("firmware/e2e-board/1.0.0.img").is_ok());
    let second = mirror.log();
    assert_eq!(
        second,
        [
            "GET /tuf/metadata/2.root.json",
            "GET /tuf/metadata/timestamp.json"
        ],
        "{second:?}"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_403_for_the_next_root_ends_the_root_chain_as_a_404_does() {
    let fleet = Fleet::start().await;
    let mirror = Mirror::start(&fleet.url).await;
    // An object store or CDN answers 403 for a file it does not have.
    mirror.tamper(|x| {
        x.path
            .ends_with("/2.root.json")
            .then(|| Reply::Body(403, Bytes::from_static(b"<Error>AccessDenied</Error>")))
    });
    let dir = tempfile::tempdir().unwrap();
    let tuf = client(dir.path(), &fleet, &mirror.url);
    tuf.refresh().await.unwrap();
    // Anything else stays an error: a 403 for the timestamp is no timestamp.
    mirror.tamper(|x| {
        x.path
            .ends_with("/timestamp.json")
            .then(|| Reply::Body(403, Bytes::new()))
    });
    let err = tuf.refresh().await.unwrap_err().to_string();
    assert!(err.contains("timestamp.json is missing"), "{err}");
    fleet.stop().await;
}
