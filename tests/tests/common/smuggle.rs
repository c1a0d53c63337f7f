//! A compromised server: releases and deltas inserted behind the publish API's back (as an
//! attacker holding the server's online targets key could), then TUF re-signed so the
//! repository lists them. No check of the publish path applies: the listed version, board
//! and counter are whatever the attacker writes.

use otter_boot::image::Version;

use super::{BOARD, Fleet};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Lists `image` as release `version` of [`BOARD`] and rolls it out to the whole board
/// under a policy signed with the rollout key: an attacker who holds the rollout key as well
/// as the online keys, so that the device's checks behind the policy (TUF, the vendor
/// signature, the header) are what refuses. (Without the rollout key the policy refuses
/// first: `rollout_policy.rs`.) Returns the release id.
pub async fn smuggle_release(fleet: &Fleet, version: &str, image: &[u8]) -> String {
    let id = list_release(fleet, version, image).await;
    let release = serde_json::json!({
        "id": id, "hardware_id": BOARD, "sha256": hex::encode(sha256(image)),
    });
    fleet.roll_out(&release, "100%").await;
    id
}

/// Lists `image` as release `version` of [`BOARD`], assigned to nobody; returns the
/// release id.
pub async fn list_release(fleet: &Fleet, version: &str, image: &[u8]) -> String {
    let sha = sha256(image);
    put_blob(fleet, &sha, image).await;
    let v: Version = version.parse().unwrap();
    let id = otter_server::db::new_id("rel");
    sqlx::query(
        "INSERT INTO releases (id, hardware_id, version, major, minor, patch, security_counter, \
         key_id, sha256, length, target_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, 'x', $7, $8, $9, 0)",
    )
    .bind(&id)
    .bind(BOARD)
    .bind(v.to_string())
    .bind(i64::from(v.major))
    .bind(i64::from(v.minor))
    .bind(i64::from(v.patch))
    .bind(hex::encode(sha))
    .bind(image.len() as i64)
    .bind(otter_keys::targets::image_target_name(BOARD, v))
    .execute(fleet.state.db.pool())
    .await
    .unwrap();
    fleet.state.tuf.targets_changed().await.unwrap();
    id
}

/// Lists a real bsdiff patch from the release whose image is `from` to the smuggled release
/// `to_id` (image `to`, listed as `to_version`), so a device running `from` takes the delta.
pub async fn smuggle_delta(fleet: &Fleet, from: &[u8], to_id: &str, to_version: &str, to: &[u8]) {
    let row: (String, String) =
        sqlx::query_as("SELECT id, version FROM releases WHERE sha256 = $1")
            .bind(hex::encode(sha256(from)))
            .fetch_one(fleet.state.db.pool())
            .await
            .unwrap();
    let built = otter_server::deltas::build::build_delta(from, to).unwrap();
    put_blob(fleet, &built.sha256, &built.patch).await;
    let name = otter_keys::targets::delta_target_name(
        BOARD,
        row.1.parse().unwrap(),
        to_version.parse().unwrap(),
    );
    sqlx::query(
        "INSERT INTO deltas (id, from_release, to_release, target_name, sha256, length, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(otter_server::db::new_id("dlt"))
    .bind(&row.0)
    .bind(to_id)
    .bind(name)
    .bind(hex::encode(built.sha256))
    .bind(built.patch.len() as i64)
    .execute(fleet.state.db.pool())
    .await
    .unwrap();
    fleet.state.tuf.targets_changed().await.unwrap();
}

async fn put_blob(fleet: &Fleet, sha: &[u8; 32], bytes: &[u8]) {
    let staged = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(staged.path(), bytes).unwrap();
    fleet
        .state
        .blobs
        .put_file(sha, staged.path())
        .await
        .unwrap();
}
