//! What the newest signed targets metadata lists. The director assigns only these, so a
//! release whose row committed but whose metadata was never signed (a crash in between) is
//! invisible to devices until TUF lists it.

use std::collections::HashMap;

use tough::schema::{Signed, Targets};

use super::TufError;
use super::store::{self, RoleName};
use crate::db::Db;

/// The targets of the newest signed targets metadata: name → (SHA-256, length).
#[derive(Debug, Default)]
pub struct SignedTargets(HashMap<String, (Vec<u8>, u64)>);

impl SignedTargets {
    /// Whether `name` is listed with exactly this SHA-256 (hex) and length.
    pub fn lists(&self, name: &str, sha256_hex: &str, length: i64) -> bool {
        self.0.get(name).is_some_and(|(sha, len)| {
            hex::decode(sha256_hex).is_ok_and(|want| want == *sha)
                && u64::try_from(length).is_ok_and(|l| l == *len)
        })
    }
}

/// Loads what the newest signed targets metadata lists (empty before the first signing):
/// top-level targets, and with offline release signing the release and deltas roles.
pub async fn signed_targets(db: &Db) -> Result<SignedTargets, TufError> {
    let mut listed = HashMap::new();
    for role in RoleName::LISTED {
        let Some(stored) = store::metadata(db.pool(), role, None).await? else {
            continue;
        };
        let targets: Signed<Targets> =
            serde_json::from_str(&stored.body).map_err(|e| TufError::Stored {
                what: format!("newest {}", role.file()),
                why: e.to_string(),
            })?;
        listed.extend(
            (targets.signed.targets.iter())
                .map(|(name, t)| (name.raw().to_owned(), (t.hashes.sha256.to_vec(), t.length))),
        );
    }
    Ok(SignedTargets(listed))
}
