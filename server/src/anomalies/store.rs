//! The flags table: one open flag per kind and subject, repeats counted, acknowledged flags
//! kept with who and when.

use serde::Serialize;
use sqlx::AnyConnection;

use super::kind::AnomalyKind;
use crate::db::{Db, new_id};

/// One flag, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Flag {
    /// Flag id (`anm_…`).
    pub id: String,
    /// What was noticed.
    pub kind: AnomalyKind,
    /// Whom it is about: a device id, or a release id for a rollback storm.
    pub subject: String,
    /// The board of the device or release.
    pub hardware_id: String,
    /// Why, with the numbers behind it (the latest occurrence's).
    pub reason: String,
    /// How many times it was noticed while open.
    pub occurrences: i64,
    /// First noticed (Unix seconds).
    pub first_at: i64,
    /// Last noticed (Unix seconds).
    pub last_at: i64,
    /// Who acknowledged it (the token's label); null while open.
    pub acknowledged_by: Option<String>,
    /// When (Unix seconds).
    pub acknowledged_at: Option<i64>,
    /// Their note.
    pub acknowledged_note: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    subject: String,
    hardware_id: String,
    reason: String,
    occurrences: i64,
    first_at: i64,
    last_at: i64,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<i64>,
    acknowledged_note: Option<String>,
}

const COLUMNS: &str = "id, kind, subject, hardware_id, reason, occurrences, first_at, last_at, \
                       acknowledged_by, acknowledged_at, acknowledged_note";

impl TryFrom<Row> for Flag {
    type Error = sqlx::Error;

    fn try_from(r: Row) -> Result<Self, Self::Error> {
        let kind = AnomalyKind::parse(&r.kind).ok_or_else(|| {
            sqlx::Error::Decode(format!("anomaly flag {}: unknown kind {:?}", r.id, r.kind).into())
        })?;
        Ok(Self {
            id: r.id,
            kind,
            subject: r.subject,
            hardware_id: r.hardware_id,
            reason: r.reason,
            occurrences: r.occurrences,
            first_at: r.first_at,
            last_at: r.last_at,
            acknowledged_by: r.acknowledged_by,
            acknowledged_at: r.acknowledged_at,
            acknowledged_note: r.acknowledged_note,
        })
    }
}

/// What is being flagged.
#[derive(Clone, Copy, Debug)]
pub struct Notice<'a> {
    /// The kind.
    pub kind: AnomalyKind,
    /// The device or release id.
    pub subject: &'a str,
    /// Its board.
    pub hardware_id: &'a str,
    /// Why.
    pub reason: &'a str,
}

/// Raises `notice` at `now`: a new open flag, or one more occurrence of the open one (its
/// reason replaced by the latest). Returns whether the flag is new.
pub async fn raise(
    conn: &mut AnyConnection,
    notice: Notice<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let (occurrences,): (i64,) = sqlx::query_as(
        "INSERT INTO anomaly_flags (id, kind, subject, hardware_id, reason, occurrences, \
         first_at, last_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6) \
         ON CONFLICT (kind, subject) WHERE acknowledged_at IS NULL DO UPDATE SET \
         occurrences = anomaly_flags.occurrences + 1, last_at = excluded.last_at, \
         reason = excluded.reason RETURNING occurrences",
    )
    .bind(new_id("anm"))
    .bind(notice.kind.as_str())
    .bind(notice.subject)
    .bind(notice.hardware_id)
    .bind(notice.reason)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(occurrences == 1)
}

/// Which flags to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only open ones (not acknowledged).
    pub open_only: bool,
    /// Only this kind.
    pub kind: Option<AnomalyKind>,
    /// Only about this device or release.
    pub subject: Option<String>,
    /// At most this many, newest (last noticed) first.
    pub limit: i64,
}

/// The flags matching `filter`, most recently noticed first.
pub async fn list(db: &Db, filter: &Filter) -> Result<Vec<Flag>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM anomaly_flags WHERE ($1 = 0 OR acknowledged_at IS NULL) \
         AND ($2 = '' OR kind = $2) AND ($3 = '' OR subject = $3) \
         ORDER BY last_at DESC, id LIMIT $4"
    ))
    .bind(i64::from(filter.open_only))
    .bind(filter.kind.map_or("", AnomalyKind::as_str))
    .bind(filter.subject.as_deref().unwrap_or(""))
    .bind(filter.limit)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(Flag::try_from).collect()
}

/// One flag by id.
pub async fn load(db: &Db, id: &str) -> Result<Option<Flag>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM anomaly_flags WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.map(Flag::try_from).transpose()
}

/// What acknowledging a flag did.
#[derive(Debug, PartialEq, Eq)]
pub enum Acknowledged {
    /// Done; the flag as it is now.
    Now(Flag),
    /// Someone did it before; the flag as they left it.
    Already(Flag),
    /// No such flag.
    Missing,
}

/// Acknowledges flag `id` by `by` with `note`: it is closed, and the next occurrence of the
/// same anomaly opens a new flag.
pub async fn acknowledge(
    db: &Db,
    id: &str,
    by: &str,
    note: &str,
    now: i64,
) -> Result<Acknowledged, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE anomaly_flags SET acknowledged_by = $2, acknowledged_at = $3, \
         acknowledged_note = $4 WHERE id = $1 AND acknowledged_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .bind(now)
    .bind(note)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(match (done, load(db, id).await?) {
        (_, None) => Acknowledged::Missing,
        (0, Some(flag)) => Acknowledged::Already(flag),
        (_, Some(flag)) => Acknowledged::Now(flag),
    })
}
