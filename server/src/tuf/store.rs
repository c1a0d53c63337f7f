//! Database access of the TUF repository: the writer lock, signed roots and metadata, and
//! the release and delta rows that become targets.

use sqlx::{Any, AnyConnection, Executor, Row};

use super::TufError;

/// The first statement of every metadata write. Updating the single `tuf_writer` row takes
/// its row lock (PostgreSQL) or the database write lock (SQLite) until the transaction ends,
/// so exactly one transaction writes metadata at a time, across all server processes.
pub(super) async fn lock(conn: &mut AnyConnection) -> Result<(), TufError> {
    sqlx::query("UPDATE tuf_writer SET generation = generation + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

/// A metadata role the server stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RoleName {
    /// `targets`
    Targets,
    /// `release` (delegated, signed offline by the vendor)
    Release,
    /// `deltas` (delegated, signed by the server)
    Deltas,
    /// `snapshot`
    Snapshot,
    /// `timestamp`
    Timestamp,
}

impl RoleName {
    /// The roles a snapshot lists.
    pub(super) const LISTED: [Self; 3] = [Self::Targets, Self::Release, Self::Deltas];

    /// The file name a snapshot lists it under.
    pub(super) fn file(self) -> String {
        format!("{}.json", self.as_str())
    }

    /// The name stored in `tuf_metadata.role` (and the TUF role name).
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Targets => "targets",
            Self::Release => "release",
            Self::Deltas => "deltas",
            Self::Snapshot => "snapshot",
            Self::Timestamp => "timestamp",
        }
    }
}

/// The newest version of a role, without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Head {
    /// Its version.
    pub(super) version: u64,
    /// SHA-256 of the body (hex).
    pub(super) sha256: String,
    /// Expiry, Unix seconds.
    pub(super) expires: i64,
}

/// The newest version of `role`, if any.
pub(super) async fn head<'e>(
    db: impl Executor<'e, Database = Any>,
    role: RoleName,
) -> Result<Option<Head>, TufError> {
    let row = sqlx::query(
        "SELECT version, sha256, expires FROM tuf_metadata WHERE role = $1 \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(role.as_str())
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(Head {
            version: version(row.try_get(0)?, role.as_str())?,
            sha256: row.try_get(1)?,
            expires: row.try_get(2)?,
        })
    })
    .transpose()
}

/// A stored metadata file: its exact bytes and SHA-256 (hex).
#[derive(Clone, Debug)]
pub(super) struct Stored {
    /// The signed file as served.
    pub(super) body: String,
    /// SHA-256 of `body` (hex).
    pub(super) sha256: String,
}

/// Version `version` of `role`, or the newest when `None`.
pub(super) async fn metadata<'e>(
    db: impl Executor<'e, Database = Any>,
    role: RoleName,
    version: Option<u64>,
) -> Result<Option<Stored>, TufError> {
    let query = match version {
        Some(v) => {
            sqlx::query("SELECT body, sha256 FROM tuf_metadata WHERE role = $1 AND version = $2")
                .bind(role.as_str())
                .bind(db_version(v)?)
        }
        None => sqlx::query(
            "SELECT body, sha256 FROM tuf_metadata WHERE role = $1 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(role.as_str()),
    };
    let row = query.fetch_optional(db).await?;
    row.map(|row| {
        Ok(Stored {
            body: row.try_get(0)?,
            sha256: row.try_get(1)?,
        })
    })
    .transpose()
}

/// A freshly signed metadata file to store.
pub(super) struct NewMetadata<'a> {
    /// Which role.
    pub(super) role: RoleName,
    /// Its version.
    pub(super) version: u64,
    /// The signed file.
    pub(super) body: &'a str,
    /// SHA-256 of `body` (hex).
    pub(super) sha256: &'a str,
    /// Expiry, Unix seconds.
    pub(super) expires: i64,
    /// Signing time, Unix seconds.
    pub(super) created_at: i64,
}

/// Stores one signed metadata version (the primary key refuses a duplicate version).
pub(super) async fn insert_metadata(
    conn: &mut AnyConnection,
    new: &NewMetadata<'_>,
) -> Result<(), TufError> {
    sqlx::query(
        "INSERT INTO tuf_metadata (role, version, body, sha256, expires, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new.role.as_str())
    .bind(db_version(new.version)?)
    .bind(new.body)
    .bind(new.sha256)
    .bind(new.expires)
    .bind(new.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Root version `version`, or the newest when `None`: its version and body.
pub(super) async fn root<'e>(
    db: impl Executor<'e, Database = Any>,
    version: Option<u64>,
) -> Result<Option<(u64, String)>, TufError> {
    let query = match version {
        Some(v) => sqlx::query("SELECT version, body FROM tuf_roots WHERE version = $1")
            .bind(db_version(v)?),
        None => sqlx::query("SELECT version, body FROM tuf_roots ORDER BY version DESC LIMIT 1"),
    };
    let row = query.fetch_optional(db).await?;
    row.map(|row| Ok((version_of(&row, "root")?, row.try_get(1)?)))
        .transpose()
}

/// Every stored root version, ascending.
pub(super) async fn root_versions(conn: &mut AnyConnection) -> Result<Vec<u64>, TufError> {
    let rows = sqlx::query("SELECT version FROM tuf_roots ORDER BY version")
        .fetch_all(conn)
        .await?;
    rows.iter().map(|row| version_of(row, "root")).collect()
}

/// Stores a root version (the caller checked it is absent).
pub(super) async fn insert_root(
    conn: &mut AnyConnection,
    version: u64,
    body: &str,
) -> Result<(), TufError> {
    sqlx::query("INSERT INTO tuf_roots (version, body) VALUES ($1, $2)")
        .bind(db_version(version)?)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// A published release: a full-image target.
#[derive(Clone, Debug)]
pub(super) struct ReleaseRow {
    /// TUF target name.
    pub(super) target_name: String,
    /// Board.
    pub(super) hardware_id: String,
    /// `major.minor.patch`.
    pub(super) version: String,
    /// Anti-rollback counter.
    pub(super) security_counter: i64,
    /// SHA-256 of the image (hex).
    pub(super) sha256: String,
    /// Image length.
    pub(super) length: i64,
}

/// Every release.
pub(super) async fn releases(conn: &mut AnyConnection) -> Result<Vec<ReleaseRow>, TufError> {
    let rows = sqlx::query(
        "SELECT target_name, hardware_id, version, security_counter, sha256, length \
         FROM releases ORDER BY target_name",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ReleaseRow {
                target_name: row.try_get(0)?,
                hardware_id: row.try_get(1)?,
                version: row.try_get(2)?,
                security_counter: row.try_get(3)?,
                sha256: row.try_get(4)?,
                length: row.try_get(5)?,
            })
        })
        .collect()
}

/// A built patch: a delta target, with the facts of the releases on both ends.
#[derive(Clone, Debug)]
pub(super) struct DeltaRow {
    /// TUF target name.
    pub(super) target_name: String,
    /// SHA-256 of the compressed patch (hex).
    pub(super) sha256: String,
    /// Compressed patch length.
    pub(super) length: i64,
    /// Board.
    pub(super) hardware_id: String,
    /// Version the patch applies to.
    pub(super) from_version: String,
    /// SHA-256 of that image (hex).
    pub(super) from_sha256: String,
    /// Target name of the produced image.
    pub(super) to_target: String,
    /// Version produced.
    pub(super) to_version: String,
    /// SHA-256 of the produced image (hex).
    pub(super) to_sha256: String,
    /// Length of the produced image.
    pub(super) to_length: i64,
}

/// Every delta, joined with its two releases.
pub(super) async fn deltas(conn: &mut AnyConnection) -> Result<Vec<DeltaRow>, TufError> {
    let rows = sqlx::query(
        "SELECT d.target_name, d.sha256, d.length, t.hardware_id, f.version, f.sha256, \
                t.target_name, t.version, t.sha256, t.length \
         FROM deltas d \
         JOIN releases f ON f.id = d.from_release \
         JOIN releases t ON t.id = d.to_release \
         ORDER BY d.target_name",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DeltaRow {
                target_name: row.try_get(0)?,
                sha256: row.try_get(1)?,
                length: row.try_get(2)?,
                hardware_id: row.try_get(3)?,
                from_version: row.try_get(4)?,
                from_sha256: row.try_get(5)?,
                to_target: row.try_get(6)?,
                to_version: row.try_get(7)?,
                to_sha256: row.try_get(8)?,
                to_length: row.try_get(9)?,
            })
        })
        .collect()
}

/// The file of a target: SHA-256 (hex) and length, if `name` is a release or delta target.
pub(super) async fn target_file(
    db: &sqlx::AnyPool,
    name: &str,
) -> Result<Option<(String, i64)>, TufError> {
    for sql in [
        "SELECT sha256, length FROM releases WHERE target_name = $1",
        "SELECT sha256, length FROM deltas WHERE target_name = $1",
    ] {
        if let Some(row) = sqlx::query(sql).bind(name).fetch_optional(db).await? {
            return Ok(Some((row.try_get(0)?, row.try_get(1)?)));
        }
    }
    Ok(None)
}

fn version_of(row: &sqlx::any::AnyRow, what: &str) -> Result<u64, TufError> {
    version(row.try_get(0)?, what)
}

fn version(v: i64, what: &str) -> Result<u64, TufError> {
    u64::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| TufError::Stored {
            what: format!("{what} metadata"),
            why: format!("version {v} is not positive"),
        })
}

fn db_version(v: u64) -> Result<i64, TufError> {
    i64::try_from(v).map_err(|_| TufError::Stored {
        what: "metadata".into(),
        why: format!("version {v} exceeds the database's range"),
    })
}
