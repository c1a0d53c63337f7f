//! The vendor's metadata under offline release signing, which the server stores and serves
//! but cannot sign: the top-level targets (imported from the key directory at start, like
//! the roots) and each release version (uploaded, and accepted only if the vendor's release
//! keys signed it, it is newer, stays inside its paths and lists only published images).

use std::path::Path;

use otter_keys::targets::{ImageInfo, TargetInfo};
use otter_keys::tuf::delegation::{RELEASE_ROLE, check_delegated, delegates_releases};
use otter_keys::tuf::{metadata_path, newest_metadata};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use tough::schema::{Root, Signed, Targets};

use super::store::{self, NewMetadata, RoleName};
use super::{Repository, TufError, Written};

/// Why an uploaded release version was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseRefused {
    /// Not TUF targets metadata.
    #[error("not TUF release metadata: {0}")]
    Malformed(String),
    /// This repository lists images with the server's targets key.
    #[error(
        "this repository does not delegate releases: the server's targets key lists images \
         (create the key directory with `otter-keys init --offline-release`)"
    )]
    NotDelegated,
    /// Signatures, threshold or paths do not verify.
    #[error("{0}")]
    Unverified(String),
    /// Not newer than the stored version.
    #[error("release metadata version {got} is not newer than the published version {current}")]
    NotNewer {
        /// The uploaded version.
        got: u64,
        /// The stored one.
        current: u64,
    },
    /// Already expired.
    #[error("release metadata expired at {0}")]
    Expired(jiff::Timestamp),
    /// It lists what the server does not have, or not as published.
    #[error("{0}")]
    Unpublished(String),
    /// The server failed.
    #[error(transparent)]
    Tuf(#[from] TufError),
}

impl From<sqlx::Error> for ReleaseRefused {
    fn from(e: sqlx::Error) -> Self {
        Self::Tuf(e.into())
    }
}

/// The newest stored top-level targets, parsed.
pub(super) async fn top_level(
    conn: &mut AnyConnection,
) -> Result<Option<Signed<Targets>>, TufError> {
    let Some(stored) = store::metadata(conn, RoleName::Targets, None).await? else {
        return Ok(None);
    };
    serde_json::from_str(&stored.body)
        .map(Some)
        .map_err(|e| TufError::Stored {
            what: "newest targets.json".into(),
            why: e.to_string(),
        })
}

/// Imports the key directory's newest `<N>.targets.json`: it must verify under `root`,
/// delegate releases, and be at least as new as the stored top-level targets (the same
/// version must be the same file).
pub(super) async fn import_targets(
    conn: &mut AnyConnection,
    dir: &Path,
    root: &Root,
) -> Result<(), TufError> {
    let Some((path, top)) = newest_metadata(dir, "targets")? else {
        return Err(TufError::NotDelegated(format!(
            "{}: no <N>.targets.json; copy the vendor's top-level targets (written by \
             `otter-keys init --offline-release`) here",
            dir.display()
        )));
    };
    let bad = |why: String| TufError::TargetsFile {
        path: path.clone(),
        why,
    };
    root.verify_role(&top)
        .map_err(|e| bad(format!("not signed by the root's targets key(s): {e}")))?;
    if !delegates_releases(&top.signed) {
        return Err(bad(format!("it delegates no {RELEASE_ROLE} role")));
    }
    let version = top.signed.version.get();
    let body = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    if let Some(head) = store::head(&mut *conn, RoleName::Targets).await? {
        if head.version > version {
            return Err(bad(format!(
                "the database serves targets version {}, newer than this file's {version}",
                head.version
            )));
        }
        if head.version == version {
            let stored = store::metadata(&mut *conn, RoleName::Targets, Some(version)).await?;
            if stored.is_some_and(|s| s.body != body) {
                return Err(bad(format!(
                    "the database serves another targets version {version}; versions are never \
                     overwritten"
                )));
            }
            return Ok(());
        }
    }
    // The release version served now must still verify under the new delegation, or every
    // device's refresh would fail from the next snapshot on.
    if let Some(stored) = store::metadata(&mut *conn, RoleName::Release, None).await? {
        let release: Signed<Targets> =
            serde_json::from_str(&stored.body).map_err(|e| bad(e.to_string()))?;
        let delegations = top.signed.delegations.as_ref();
        if let Some(Err(e)) = delegations.map(|d| check_delegated(d, RELEASE_ROLE, &release)) {
            return Err(bad(format!(
                "the release metadata served now (version {}) does not verify under it ({e}); \
                 rotating release keys is not supported yet",
                release.signed.version
            )));
        }
    }
    let now = crate::db::now();
    if top.signed.expires.as_second() <= now {
        return Err(bad(format!("it expired at {}", top.signed.expires)));
    }
    if top.signed.expires.as_second() < now + 30 * 86_400 {
        tracing::warn!(expires = %top.signed.expires, file = %metadata_path(dir, "targets", version).display(),
            "the vendor's top-level targets expires within 30 days; sign a new version offline");
    }
    store::insert_metadata(
        conn,
        &NewMetadata {
            role: RoleName::Targets,
            version,
            body: &body,
            sha256: &hex::encode(Sha256::digest(body.as_bytes())),
            expires: top.signed.expires.as_second(),
            created_at: now,
        },
    )
    .await?;
    tracing::info!(version, "imported the vendor's top-level targets");
    Ok(())
}

/// At start, when no release version is stored yet: the key directory's `1.release.json`
/// (written empty by `otter-keys init --offline-release`), so the snapshot always lists the
/// release role. It must pass every check an upload passes.
pub(super) async fn import_first_release(
    conn: &mut AnyConnection,
    dir: &Path,
    top: &Targets,
) -> Result<(), TufError> {
    if store::head(&mut *conn, RoleName::Release).await?.is_some() {
        return Ok(());
    }
    let path = metadata_path(dir, RELEASE_ROLE, 1);
    let body = match std::fs::read_to_string(&path) {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(TufError::TargetsFile {
                path,
                why: e.to_string(),
            });
        }
    };
    match store_release(conn, top, &body).await {
        Ok(_) => Ok(()),
        Err(ReleaseRefused::Tuf(e)) => Err(e),
        Err(e) => Err(TufError::TargetsFile {
            path,
            why: e.to_string(),
        }),
    }
}

/// Checks release metadata `body` against the top-level targets `top` and what is
/// published, and stores it as the next release version; returns its version.
async fn store_release(
    conn: &mut AnyConnection,
    top: &Targets,
    body: &str,
) -> Result<u64, ReleaseRefused> {
    let release: Signed<Targets> =
        serde_json::from_str(body).map_err(|e| ReleaseRefused::Malformed(e.to_string()))?;
    let delegations = (top.delegations.as_ref())
        .filter(|_| delegates_releases(top))
        .ok_or(ReleaseRefused::NotDelegated)?;
    check_delegated(delegations, RELEASE_ROLE, &release)
        .map_err(|e| ReleaseRefused::Unverified(e.to_string()))?;
    let version = release.signed.version.get();
    if let Some(head) = store::head(&mut *conn, RoleName::Release).await?
        && head.version >= version
    {
        return Err(ReleaseRefused::NotNewer {
            got: version,
            current: head.version,
        });
    }
    let now = crate::db::now();
    if release.signed.expires.as_second() <= now {
        return Err(ReleaseRefused::Expired(release.signed.expires));
    }
    check_published(&mut *conn, &release.signed).await?;
    store::insert_metadata(
        conn,
        &NewMetadata {
            role: RoleName::Release,
            version,
            body,
            sha256: &hex::encode(Sha256::digest(body.as_bytes())),
            expires: release.signed.expires.as_second(),
            created_at: now,
        },
    )
    .await?;
    Ok(version)
}

impl Repository {
    /// Publishes a release version the vendor signed offline (`body`, exactly as uploaded),
    /// then a new snapshot and timestamp that list it. Returns its version.
    pub async fn accept_release(&self, body: &str) -> Result<(u64, Written), ReleaseRefused> {
        let mut tx = self.db.pool().begin().await?;
        store::lock(&mut tx).await?;
        let top = top_level(&mut tx)
            .await?
            .ok_or(ReleaseRefused::NotDelegated)?;
        // The same file again (a retry after a lost answer) is already published.
        if let Some(stored) = store::metadata(&mut *tx, RoleName::Release, None).await?
            && stored.body == body
            && let Ok(same) = serde_json::from_str::<Signed<Targets>>(body)
        {
            return Ok((same.signed.version.get(), Written::default()));
        }
        let version = store_release(&mut tx, &top.signed, body).await?;
        // The snapshot that lists it commits with it: nobody sees one without the other.
        let written = self
            .write_locked(&mut tx, super::writer::Trigger::VendorChanged)
            .await?;
        tx.commit().await?;
        Ok((version, written))
    }
}

/// Every target of `release` is a published image, exactly as the server would list it.
async fn check_published(
    conn: &mut AnyConnection,
    release: &Targets,
) -> Result<(), ReleaseRefused> {
    let rows = store::releases(conn).await?;
    for (name, target) in &release.targets {
        let name = name.raw();
        let Some(row) = rows.iter().find(|r| r.target_name == name) else {
            return Err(ReleaseRefused::Unpublished(format!(
                "it lists {name}, which is not published here; publish the image first"
            )));
        };
        let differs = |what: &str| {
            ReleaseRefused::Unpublished(format!(
                "it lists {name} with another {what} than the published image"
            ))
        };
        if hex::encode(&target.hashes.sha256) != row.sha256 {
            return Err(differs("SHA-256"));
        }
        if i64::try_from(target.length).ok() != Some(row.length) {
            return Err(differs("length"));
        }
        let info = TargetInfo::from_custom(&target.custom).map_err(|_| differs("kind"))?;
        let published = TargetInfo::Image(ImageInfo {
            hardware_id: row.hardware_id.clone(),
            version: row.version.parse().map_err(|_| differs("version"))?,
            security_counter: u32::try_from(row.security_counter)
                .map_err(|_| differs("security counter"))?,
        });
        if info != published {
            return Err(differs("board, version or security counter"));
        }
    }
    Ok(())
}
