//! An attacker who holds the server: its database and its online keys (snapshot,
//! timestamp, director, and the deltas key of offline release signing), but none of the
//! vendor's offline keys. It writes whatever metadata it likes straight into the database,
//! signed with whatever key it has, then a snapshot and timestamp that list it, as the
//! honest writer would (so nothing of the server's own checks applies).

use std::collections::HashMap;
use std::num::NonZeroU64;

use otter_keys::keyset::{KeySet, Role as KeyRole};
use otter_keys::signer::Signer;
use otter_keys::tuf::tuf_key_id;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tough::schema::{Hashes, Metafile, Role, Signature, Signed, Snapshot, Targets, Timestamp};

use super::Fleet;

/// Far enough ahead for any test.
fn expires() -> jiff::Timestamp {
    jiff::Timestamp::from_second(4_000_000_000).unwrap()
}

/// `doc` signed by `keys` (no check that the keys may sign it: that is the point).
pub fn sign<T: Role + Serialize>(doc: T, keys: &[&dyn Signer]) -> Signed<T> {
    let data = doc.canonical_form().unwrap();
    Signed {
        signatures: keys
            .iter()
            .map(|k| Signature {
                keyid: tuf_key_id(*k).unwrap(),
                sig: k.sign(&data).unwrap().to_vec().into(),
            })
            .collect(),
        signed: doc,
    }
}

/// The newest stored `role` metadata: version and body.
pub async fn newest(fleet: &Fleet, role: &str) -> Option<(u64, String)> {
    let row = sqlx::query(
        "SELECT version, body FROM tuf_metadata WHERE role = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(role)
    .fetch_optional(fleet.state.db.pool())
    .await
    .unwrap()?;
    let version: i64 = row.get(0);
    Some((version as u64, row.get(1)))
}

/// The newest stored `role` metadata, parsed.
pub async fn newest_targets(fleet: &Fleet, role: &str) -> Signed<Targets> {
    serde_json::from_str(&newest(fleet, role).await.unwrap().1).unwrap()
}

async fn insert(fleet: &Fleet, role: &str, version: u64, body: &str) {
    sqlx::query(
        "INSERT INTO tuf_metadata (role, version, body, sha256, expires, created_at) \
         VALUES ($1, $2, $3, $4, $5, 0)",
    )
    .bind(role)
    .bind(version as i64)
    .bind(body)
    .bind(hex::encode(Sha256::digest(body.as_bytes())))
    .bind(expires().as_second())
    .execute(fleet.state.db.pool())
    .await
    .unwrap();
}

/// Stores `targets` as the next version of `role` (targets, release or deltas) signed by
/// `key`, then a snapshot and a timestamp over it signed with the server's online keys.
pub async fn publish_forged(fleet: &Fleet, role: &str, mut targets: Targets, key: &dyn Signer) {
    let version = newest(fleet, role).await.map_or(1, |(v, _)| v + 1);
    targets.version = NonZeroU64::new(version).unwrap();
    targets.expires = expires();
    let body = serde_json::to_string(&sign(targets, &[key])).unwrap();
    insert(fleet, role, version, &body).await;

    let set = KeySet::open(&fleet.state.keys.dir).unwrap();
    let snapshot_key = set.role_signer(KeyRole::Snapshot).unwrap();
    let timestamp_key = set.role_signer(KeyRole::Timestamp).unwrap();
    let snapshot_version = newest(fleet, "snapshot").await.map_or(1, |(v, _)| v + 1);
    let mut snapshot = Snapshot::new(
        "1.0.0".into(),
        NonZeroU64::new(snapshot_version).unwrap(),
        expires(),
    );
    for listed in ["targets", "release", "deltas"] {
        if let Some((v, body)) = newest(fleet, listed).await {
            snapshot
                .meta
                .insert(format!("{listed}.json"), metafile(v, &body));
        }
    }
    let body = serde_json::to_string(&sign(snapshot, &[snapshot_key.as_ref()])).unwrap();
    insert(fleet, "snapshot", snapshot_version, &body).await;

    let timestamp_version = newest(fleet, "timestamp").await.map_or(1, |(v, _)| v + 1);
    let mut timestamp = Timestamp::new(
        "1.0.0".into(),
        NonZeroU64::new(timestamp_version).unwrap(),
        expires(),
    );
    timestamp
        .meta
        .insert("snapshot.json".into(), metafile(snapshot_version, &body));
    let body = serde_json::to_string(&sign(timestamp, &[timestamp_key.as_ref()])).unwrap();
    insert(fleet, "timestamp", timestamp_version, &body).await;
}

fn metafile(version: u64, body: &str) -> Metafile {
    Metafile {
        length: Some(body.len() as u64),
        hashes: Some(Hashes {
            sha256: Sha256::digest(body.as_bytes()).to_vec().into(),
            _extra: HashMap::new(),
        }),
        version: NonZeroU64::new(version).unwrap(),
        _extra: HashMap::new(),
    }
}
