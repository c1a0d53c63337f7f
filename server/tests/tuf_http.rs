//! The public TUF routes over HTTP: URL layout, `ETag`/`If-None-Match`, `Range`/`If-Range`
//! (resumable downloads), lengths, types, cache headers and JSON 404s.

mod common;

use common::{TestServer, databases, expect_error};
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    IF_RANGE, RANGE,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// Publishes one release straight into the database and blob store; returns its target
/// name and bytes.
async fn publish(s: &TestServer) -> (String, Vec<u8>) {
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let image = s.sign_image("acme-1", "1.0.0", 1, &payload);
    let sha: [u8; 32] = Sha256::digest(&image).into();
    let staged = s.data_dir.path().join("staged");
    std::fs::write(&staged, &image).unwrap();
    s.state.blobs.put_file(&sha, &staged).await.unwrap();
    let name = "firmware/acme-1/1.0.0.img".to_owned();
    sqlx::query(
        "INSERT INTO releases (id, hardware_id, version, major, minor, patch, security_counter, \
         key_id, sha256, length, target_name, created_at) \
         VALUES ('r1', 'acme-1', '1.0.0', 1, 0, 0, 1, 'k', $1, $2, $3, 0)",
    )
    .bind(hex::encode(sha))
    .bind(image.len() as i64)
    .bind(&name)
    .execute(s.state.db.pool())
    .await
    .unwrap();
    s.state.tuf.targets_changed().await.unwrap();
    (name, image)
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    r.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn targets_are_served_with_validators_ranges_and_cache_headers() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let (name, image) = publish(&s).await;
        let len = image.len();
        let hash = hex::encode(Sha256::digest(&image));
        let etag = format!("\"{hash}\"");
        let spec_url = s.at(&format!("/tuf/targets/firmware/acme-1/{hash}.1.0.0.img"));
        let tough_url = s.at(&format!("/tuf/targets/{hash}.{name}"));
        let plain_url = s.at(&format!("/tuf/targets/{name}"));
        let get = |url: &str| s.client.get(url);

        // Every name form: the full file with its validators and the right cache policy.
        for (url, cache) in [
            (&spec_url, IMMUTABLE),
            (&tough_url, IMMUTABLE),
            (&plain_url, NO_CACHE),
        ] {
            let r = get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{url}");
            assert_eq!(header(&r, ETAG), etag);
            assert_eq!(header(&r, ACCEPT_RANGES), "bytes");
            assert_eq!(header(&r, CONTENT_TYPE), "application/octet-stream");
            assert_eq!(header(&r, CONTENT_LENGTH), len.to_string());
            assert_eq!(header(&r, CACHE_CONTROL), cache, "{url}");
            assert_eq!(r.bytes().await.unwrap(), image);
        }

        // If-None-Match: 304 without a body for our tag (also weak, also in a list).
        for tag in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
            let r = get(&spec_url)
                .header(IF_NONE_MATCH, &tag)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{tag}");
            assert_eq!(header(&r, ETAG), etag);
            assert!(r.bytes().await.unwrap().is_empty());
        }
        let r = get(&spec_url)
            .header(IF_NONE_MATCH, "\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);

        // Ranges: closed, open, suffix, clamped.
        for (range, start, end) in [
            ("bytes=10-19", 10, 20),
            ("bytes=1000-", 1000, len),
            ("bytes=-77", len - 77, len),
            ("bytes=40000-999999", 40000, len),
        ] {
            let r = get(&spec_url).header(RANGE, range).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(
                header(&r, CONTENT_RANGE),
                format!("bytes {start}-{}/{len}", end - 1)
            );
            assert_eq!(header(&r, CONTENT_LENGTH), (end - start).to_string());
            assert_eq!(header(&r, ETAG), etag);
            assert_eq!(r.bytes().await.unwrap(), image[start..end], "{range}");
        }

        // A resumed download: If-Range with our tag honours the range, another tag (or a
        // date) gets the whole file.
        let r = get(&tough_url)
            .header(RANGE, "bytes=100-")
            .header(IF_RANGE, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.bytes().await.unwrap(), image[100..]);
        for validator in ["\"stale\"", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            let r = get(&tough_url)
                .header(RANGE, "bytes=100-")
                .header(IF_RANGE, validator)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{validator}");
            assert_eq!(header(&r, CONTENT_LENGTH), len.to_string());
            assert_eq!(r.bytes().await.unwrap(), image);
        }

        // Unsatisfiable: 416 with the length; multi-range and garbage: the full file.
        for range in [format!("bytes={len}-"), "bytes=-0".to_owned()] {
            let r = get(&spec_url).header(RANGE, &range).send().await.unwrap();
            assert_eq!(
                header(&r, CONTENT_RANGE),
                format!("bytes */{len}"),
                "{range}"
            );
            expect_error(r, 416, "range_not_satisfiable").await;
        }
        for range in ["bytes=0-1,5-6", "bytes=9-1", "pages=1-2"] {
            let r = get(&spec_url).header(RANGE, range).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{range}");
            assert_eq!(r.bytes().await.unwrap(), image);
        }

        // HEAD: the headers of a GET, no body.
        let r = s.client.head(&spec_url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, CONTENT_LENGTH), len.to_string());
        assert_eq!(header(&r, ETAG), etag);
        let r = s
            .client
            .head(&spec_url)
            .header(RANGE, "bytes=0-9")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&r, CONTENT_LENGTH), "10");

        // Only targets are served, and a hash prefix must be the target's hash.
        let wrong = "00".repeat(32);
        for path in [
            format!("/tuf/targets/firmware/acme-1/{wrong}.1.0.0.img"),
            format!("/tuf/targets/{wrong}.{name}"),
            "/tuf/targets/firmware/acme-1/9.9.9.img".to_owned(),
            format!("/tuf/targets/sha256/{}/{hash}", &hash[..2]),
            "/tuf/targets/".to_owned(),
        ] {
            let r = get(&s.at(&path)).send().await.unwrap();
            expect_error(r, 404, "not_found").await;
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn metadata_is_served_by_version_and_as_newest() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        publish(&s).await;
        let get = |file: String| {
            let request = s.client.get(s.at(&format!("/tuf/metadata/{file}")));
            async move { request.send().await.unwrap() }
        };

        let timestamp = get("timestamp.json".into()).await;
        assert_eq!(timestamp.status(), StatusCode::OK);
        assert_eq!(header(&timestamp, CONTENT_TYPE), "application/json");
        assert_eq!(header(&timestamp, CACHE_CONTROL), NO_CACHE);
        let etag = header(&timestamp, ETAG).to_owned();
        let body = timestamp.bytes().await.unwrap();
        assert_eq!(etag, format!("\"{}\"", hex::encode(Sha256::digest(&body))));
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["signed"]["_type"], "timestamp");
        let snapshot_version = json["signed"]["meta"]["snapshot.json"]["version"]
            .as_u64()
            .unwrap();

        let snapshot = get(format!("{snapshot_version}.snapshot.json")).await;
        assert_eq!(header(&snapshot, CACHE_CONTROL), IMMUTABLE);
        let snapshot_body = snapshot.bytes().await.unwrap();
        assert_eq!(
            json["signed"]["meta"]["snapshot.json"]["hashes"]["sha256"],
            hex::encode(Sha256::digest(&snapshot_body))
        );
        let snapshot: Value = serde_json::from_slice(&snapshot_body).unwrap();
        let targets_version = snapshot["signed"]["meta"]["targets.json"]["version"]
            .as_u64()
            .unwrap();
        let targets = get(format!("{targets_version}.targets.json")).await;
        assert_eq!(header(&targets, CACHE_CONTROL), IMMUTABLE);
        let targets: Value = targets.json().await.unwrap();
        assert!(targets["signed"]["targets"]["firmware/acme-1/1.0.0.img"].is_object());

        // Unversioned names are the newest; root.json is the newest root.
        for (file, version) in [
            ("snapshot.json", snapshot_version),
            ("targets.json", targets_version),
            ("root.json", 1),
        ] {
            let r = get(file.into()).await;
            assert_eq!(header(&r, CACHE_CONTROL), NO_CACHE, "{file}");
            let json: Value = r.json().await.unwrap();
            assert_eq!(json["signed"]["version"], version, "{file}");
        }
        let root = get("1.root.json".into()).await;
        assert_eq!(header(&root, CACHE_CONTROL), IMMUTABLE);
        assert_eq!(
            root.bytes().await.unwrap(),
            std::fs::read(s.state.keys.dir.join("1.root.json")).unwrap()
        );

        // Validators and ranges work on metadata too.
        let url = s.at("/tuf/metadata/timestamp.json");
        let r = s
            .client
            .get(&url)
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = s
            .client
            .get(&url)
            .header(RANGE, "bytes=0-0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.bytes().await.unwrap(), body[..1]);

        for file in [
            "2.root.json",
            "99.snapshot.json",
            "99.targets.json",
            "1.timestamp.json",
            "0.targets.json",
            "mirrors.json",
            "keyset.json",
            // Versions past what the database stores: nothing, not a server error.
            "9223372036854775808.root.json",
            "18446744073709551615.snapshot.json",
            "9223372036854775808.targets.json",
        ] {
            let r = get(file.into()).await;
            expect_error(r, 404, "not_found").await;
        }

        let doc: Value = s
            .client
            .get(s.at("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for path in ["/tuf/metadata/{file}", "/tuf/targets/{path}"] {
            assert_eq!(doc["paths"][path]["get"]["tags"][0], "tuf", "{path}");
        }
        s.stop().await;
    }
}
