//! The database side of rollouts (no HTTP): rollouts, their members and timelines as rows,
//! and the one write path, [`swap`], a compare-and-swap on the rollout's `revision` that
//! several server processes sharing the database can use at once. Every change of a
//! rollout (its progress, its policy, an admission) bumps the revision, so a writer that
//! read an older one retries with fresh data instead of overwriting a newer decision; the
//! rate limit holds under concurrent check-ins because every admission is such a change.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use jiff::{SignedDuration, Timestamp};
use otter_keys::wire::{RolloutPolicy, Signed};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use super::bucket::BasisPoints;
use super::model::{Cohort, FailureThreshold, ModelError, ReleaseRef, Rollout, RolloutSpec, Stage};
use super::progress::{Member, Progress};
use super::state::{DeviceState, RolloutState};
use super::timeline::TimelineEntry;
use crate::db::{Db, is_unique_violation};

/// How many times a writer re-reads and retries after losing a compare-and-swap.
pub const SWAP_ATTEMPTS: usize = 8;

/// Why a rollout could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored row does not parse (written by a broken build, or edited by hand).
    #[error("rollout {id}: bad stored {what}")]
    Corrupt {
        /// The rollout.
        id: String,
        /// The column.
        what: &'static str,
    },
    /// Another rollout of the same hardware id and cohort is running or paused.
    #[error(
        "another rollout of this hardware id and cohort is already running or paused: pause \
         is not enough, abort it (or let it complete) first"
    )]
    ActiveExists,
    /// Other writers kept changing the rollout.
    #[error("rollout {0} kept changing under concurrent updates; try again")]
    Contended(String),
}

/// A rollout row with its release.
#[derive(Clone, Debug)]
pub struct Stored {
    /// What was asked for (the release's hash comes from the release row).
    pub spec: RolloutSpec,
    /// The release's version text.
    pub release_version: String,
    /// The signed policy as uploaded; a draft may have none yet.
    pub policy: Option<Signed<RolloutPolicy>>,
    /// State, stage and acknowledged failures.
    pub progress: Progress,
    /// Compare-and-swap counter.
    pub revision: i64,
    /// When it was first started (orders rollouts for the director).
    pub started_at: Option<i64>,
    /// The token label that created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Stored {
    /// The checked rollout, or `None` while it has no policy.
    pub fn rollout(&self) -> Result<Option<Rollout>, ModelError> {
        match &self.policy {
            Some(signed) => Rollout::new(self.spec.clone(), signed.message.clone()).map(Some),
            None => Ok(None),
        }
    }
}

/// Cohort as stored (and as the API takes it): `{"tags": [...]}` or `{"devices": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CohortDoc {
    /// Devices carrying all these tags.
    Tags(BTreeSet<String>),
    /// Exactly these devices.
    Devices(BTreeSet<String>),
}

impl From<&Cohort> for CohortDoc {
    fn from(cohort: &Cohort) -> Self {
        match cohort {
            Cohort::Tagged(tags) => Self::Tags(tags.clone()),
            Cohort::Devices(ids) => Self::Devices(ids.clone()),
        }
    }
}

impl From<CohortDoc> for Cohort {
    fn from(doc: CohortDoc) -> Self {
        match doc {
            CohortDoc::Tags(tags) => Self::Tagged(tags),
            CohortDoc::Devices(ids) => Self::Devices(ids),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StageDoc {
    cutoff: BasisPoints,
    soak_secs: i64,
}

/// The cohort's stored JSON (sets are sorted, so equal cohorts give equal text).
fn cohort_text(cohort: &Cohort) -> String {
    serde_json::to_string(&CohortDoc::from(cohort)).unwrap_or_default()
}

/// The key the one-active-rollout index compares.
fn cohort_key(cohort: &Cohort) -> String {
    hex::encode(Sha256::digest(cohort_text(cohort).as_bytes()))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    release_id: String,
    hardware_id: String,
    cohort: String,
    stages: String,
    max_failures_bp: i64,
    min_devices: i64,
    rate_limit_per_minute: Option<i64>,
    device_timeout_secs: i64,
    policy: Option<String>,
    state: String,
    stage: i64,
    stage_started: Option<i64>,
    started_at: Option<i64>,
    failures_acknowledged: i64,
    revision: i64,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    image_sha256: String,
    release_version: String,
}

const SELECT: &str = "SELECT r.id, r.release_id, r.hardware_id, r.cohort, r.stages, \
    r.max_failures_bp, r.min_devices, r.rate_limit_per_minute, r.device_timeout_secs, \
    r.policy, r.state, r.stage, r.stage_started, r.started_at, r.failures_acknowledged, \
    r.revision, r.created_by, r.created_at, r.updated_at, rel.sha256 AS image_sha256, \
    rel.version AS release_version \
    FROM rollouts r JOIN releases rel ON rel.id = r.release_id";

/// A rollout state from its stored name.
pub fn rollout_state(text: &str) -> Option<RolloutState> {
    RolloutState::ALL.into_iter().find(|s| s.as_str() == text)
}

/// A device state from its stored name.
pub fn device_state(text: &str) -> Option<DeviceState> {
    DeviceState::ALL.into_iter().find(|s| s.as_str() == text)
}

fn timestamp(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl TryFrom<Row> for Stored {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let corrupt = |what| StoreError::Corrupt {
            id: row.id.clone(),
            what,
        };
        let cohort: CohortDoc = serde_json::from_str(&row.cohort).map_err(|_| corrupt("cohort"))?;
        let stages: Vec<StageDoc> =
            serde_json::from_str(&row.stages).map_err(|_| corrupt("stages"))?;
        let mut image_sha256 = [0u8; 32];
        hex::decode_to_slice(&row.image_sha256, &mut image_sha256)
            .map_err(|_| corrupt("release sha256"))?;
        let policy = match &row.policy {
            Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("policy"))?),
            None => None,
        };
        let bp = |n: i64, what| {
            u16::try_from(n)
                .ok()
                .and_then(|n| BasisPoints::new(n).ok())
                .ok_or_else(|| corrupt(what))
        };
        let spec = RolloutSpec {
            id: row.id.clone(),
            release: ReleaseRef {
                id: row.release_id.clone(),
                hardware_id: row.hardware_id.clone(),
                image_sha256,
            },
            cohort: cohort.into(),
            stages: stages
                .into_iter()
                .map(|s| Stage {
                    cutoff: s.cutoff,
                    min_soak: SignedDuration::from_secs(s.soak_secs),
                })
                .collect(),
            failure: FailureThreshold {
                max_failures: bp(row.max_failures_bp, "max_failures_bp")?,
                min_devices: u32::try_from(row.min_devices).map_err(|_| corrupt("min_devices"))?,
            },
            rate_limit: match row.rate_limit_per_minute {
                Some(n) => Some(
                    u32::try_from(n)
                        .ok()
                        .and_then(NonZeroU32::new)
                        .ok_or_else(|| corrupt("rate_limit_per_minute"))?,
                ),
                None => None,
            },
            device_timeout: SignedDuration::from_secs(row.device_timeout_secs),
        };
        let progress = Progress {
            state: rollout_state(&row.state).ok_or_else(|| corrupt("state"))?,
            stage: usize::try_from(row.stage).map_err(|_| corrupt("stage"))?,
            stage_started: row.stage_started.map(timestamp),
            failures_acknowledged: u64::try_from(row.failures_acknowledged)
                .map_err(|_| corrupt("failures_acknowledged"))?,
        };
        Ok(Self {
            spec,
            release_version: row.release_version,
            policy,
            progress,
            revision: row.revision,
            started_at: row.started_at,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn rows(rows: Vec<Row>) -> Result<Vec<Stored>, StoreError> {
    rows.into_iter().map(Stored::try_from).collect()
}

/// One rollout.
pub async fn load(db: &Db, id: &str) -> Result<Option<Stored>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.map(Stored::try_from).transpose()
}

/// Rollouts newest first (by creation), at most `limit`.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<Stored>, StoreError> {
    let found: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} ORDER BY r.created_at DESC, r.id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows(found)
}

/// Ids of the running rollouts (what the ticker evaluates).
pub async fn running_ids(db: &Db) -> Result<Vec<String>, StoreError> {
    let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM rollouts WHERE state = 'running'")
        .fetch_all(db.pool())
        .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// What the director may consult for a device of `hardware_id`: its running and completed
/// rollouts and every started rollout `device_id` is a member of, the newest 20 by start
/// (started in the same second: the newer release first).
pub async fn for_device(
    db: &Db,
    hardware_id: &str,
    device_id: &str,
) -> Result<Vec<Stored>, StoreError> {
    let found: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE r.hardware_id = $1 AND r.state <> 'draft' \
         AND (r.state IN ('running', 'completed') \
         OR r.id IN (SELECT rollout_id FROM rollout_members WHERE device_id = $2)) \
         ORDER BY r.started_at DESC, rel.major DESC, rel.minor DESC, rel.patch DESC, r.id DESC \
         LIMIT 20"
    ))
    .bind(hardware_id)
    .bind(device_id)
    .fetch_all(db.pool())
    .await?;
    rows(found)
}

type MemberRow = (String, String, i64, String, i64);

fn member(rollout_id: &str, row: MemberRow) -> Result<(String, Member), StoreError> {
    let corrupt = |what| StoreError::Corrupt {
        id: rollout_id.to_owned(),
        what,
    };
    let (rollout, device_id, stage, state, admitted_at) = row;
    Ok((
        rollout,
        Member {
            device_id,
            stage: usize::try_from(stage).map_err(|_| corrupt("member stage"))?,
            state: device_state(&state).ok_or_else(|| corrupt("member state"))?,
            admitted_at: timestamp(admitted_at),
        },
    ))
}

const MEMBER_COLUMNS: &str = "rollout_id, device_id, stage, state, admitted_at";

/// Every member of a rollout.
pub async fn members(db: &Db, rollout_id: &str) -> Result<Vec<Member>, StoreError> {
    let found: Vec<MemberRow> = sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM rollout_members WHERE rollout_id = $1 ORDER BY device_id"
    ))
    .bind(rollout_id)
    .fetch_all(db.pool())
    .await?;
    found
        .into_iter()
        .map(|row| member(rollout_id, row).map(|(_, m)| m))
        .collect()
}

/// What [`super::admission`] needs about one device: its own record in the rollout (if
/// any) and the members admitted within the rate window before `now`.
pub async fn admission_members(
    db: &Db,
    rollout_id: &str,
    device_id: &str,
    now: Timestamp,
) -> Result<Vec<Member>, StoreError> {
    let since = (now - super::admission::RATE_WINDOW).as_second();
    let found: Vec<MemberRow> = sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM rollout_members WHERE rollout_id = $1 \
         AND (device_id = $2 OR admitted_at > $3)"
    ))
    .bind(rollout_id)
    .bind(device_id)
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    found
        .into_iter()
        .map(|row| member(rollout_id, row).map(|(_, m)| m))
        .collect()
}

/// The rollouts `device_id` is a member of, with its record in each.
pub async fn memberships(db: &Db, device_id: &str) -> Result<Vec<(String, Member)>, StoreError> {
    let found: Vec<MemberRow> = sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM rollout_members WHERE device_id = $1"
    ))
    .bind(device_id)
    .fetch_all(db.pool())
    .await?;
    found.into_iter().map(|row| member("?", row)).collect()
}

/// A timeline entry as stored: actor and change as text.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    /// Order within the rollout, from 1.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// `engine` or the operator's token label.
    pub actor: String,
    /// What changed.
    pub change: String,
    /// Why.
    pub reason: String,
}

impl Entry {
    /// An entry for a change the engine does not know (creation, a new policy).
    pub fn new(at: Timestamp, actor: &str, change: &str, reason: &str) -> Self {
        Self {
            seq: 0,
            at: at.as_second(),
            actor: actor.to_owned(),
            change: change.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

impl From<&TimelineEntry> for Entry {
    fn from(e: &TimelineEntry) -> Self {
        Self::new(e.at, &e.actor.to_string(), &e.change.to_string(), &e.reason)
    }
}

/// A rollout's timeline, oldest first.
pub async fn timeline(db: &Db, rollout_id: &str) -> Result<Vec<Entry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT seq, at, actor, change, reason FROM rollout_timeline WHERE rollout_id = $1 \
         ORDER BY seq",
    )
    .bind(rollout_id)
    .fetch_all(db.pool())
    .await?)
}

/// Creates a draft (revision 1) with its first timeline entry. `Ok(false)`: the id exists.
pub async fn insert(
    db: &Db,
    spec: &RolloutSpec,
    policy: Option<&str>,
    created_by: &str,
    entry: &Entry,
) -> Result<bool, StoreError> {
    let stages: Vec<StageDoc> = (spec.stages.iter())
        .map(|s| StageDoc {
            cutoff: s.cutoff,
            soak_secs: s.min_soak.as_secs(),
        })
        .collect();
    let stages = serde_json::to_string(&stages).unwrap_or_default();
    let now = entry.at;
    let mut tx = db.pool().begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO rollouts (id, release_id, hardware_id, cohort, cohort_key, stages, \
         max_failures_bp, min_devices, rate_limit_per_minute, device_timeout_secs, policy, \
         state, stage, stage_started, started_at, failures_acknowledged, revision, created_by, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'draft', 0, NULL, NULL, 0, 1, \
         $12, $13, $13)",
    )
    .bind(&spec.id)
    .bind(&spec.release.id)
    .bind(&spec.release.hardware_id)
    .bind(cohort_text(&spec.cohort))
    .bind(cohort_key(&spec.cohort))
    .bind(stages)
    .bind(i64::from(spec.failure.max_failures.get()))
    .bind(i64::from(spec.failure.min_devices))
    .bind(spec.rate_limit.map(|n| i64::from(n.get())))
    .bind(spec.device_timeout.as_secs())
    .bind(policy)
    .bind(created_by)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    append(&mut tx, &spec.id, std::slice::from_ref(entry)).await?;
    tx.commit().await?;
    Ok(true)
}

/// What one compare-and-swap writes besides the new revision.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// New progress.
    pub progress: Option<Progress>,
    /// New signed policy JSON.
    pub policy: Option<String>,
    /// A member to admit.
    pub admit: Option<Member>,
    /// Timeline entries to append.
    pub entries: Vec<Entry>,
}

/// Writes `changes` to rollout `id` if its revision is still `revision`, in one
/// transaction. `Ok(false)`: someone else changed it first (re-read and decide again).
pub async fn swap(
    db: &Db,
    id: &str,
    revision: i64,
    changes: &Changes,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let mut tx = db.pool().begin().await?;
    // The compare-and-swap comes first: on SQLite it takes the write lock, on PostgreSQL the
    // row lock, so what follows is written by one writer at a time.
    let updated = sqlx::query(
        "UPDATE rollouts SET revision = revision + 1, updated_at = $1 \
         WHERE id = $2 AND revision = $3",
    )
    .bind(now.as_second())
    .bind(id)
    .bind(revision)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    if let Some(p) = &changes.progress {
        let result = sqlx::query(
            "UPDATE rollouts SET state = $1, stage = $2, stage_started = $3, \
             failures_acknowledged = $4, \
             started_at = CASE WHEN started_at IS NULL AND $1 <> 'draft' THEN $5 \
             ELSE started_at END \
             WHERE id = $6",
        )
        .bind(p.state.as_str())
        .bind(i64::try_from(p.stage).unwrap_or(i64::MAX))
        .bind(p.stage_started.map(|t| t.as_second()))
        .bind(i64::try_from(p.failures_acknowledged).unwrap_or(i64::MAX))
        .bind(now.as_second())
        .bind(id)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::ActiveExists),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(policy) = &changes.policy {
        sqlx::query("UPDATE rollouts SET policy = $1 WHERE id = $2")
            .bind(policy)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(m) = &changes.admit {
        sqlx::query(
            "INSERT INTO rollout_members (rollout_id, device_id, stage, state, admitted_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id)
        .bind(&m.device_id)
        .bind(i64::try_from(m.stage).unwrap_or(i64::MAX))
        .bind(m.state.as_str())
        .bind(m.admitted_at.as_second())
        .execute(&mut *tx)
        .await?;
    }
    append(&mut tx, id, &changes.entries).await?;
    tx.commit().await?;
    Ok(true)
}

/// Appends entries after the last one (the caller holds the rollout's row lock).
async fn append(conn: &mut AnyConnection, id: &str, entries: &[Entry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let (last,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM rollout_timeline WHERE rollout_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    for (n, e) in (last + 1..).zip(entries) {
        sqlx::query(
            "INSERT INTO rollout_timeline (rollout_id, seq, at, actor, change, reason) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(n)
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.change)
        .bind(&e.reason)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Sets a member's state from its latest report.
pub async fn set_member_state(
    db: &Db,
    rollout_id: &str,
    device_id: &str,
    state: DeviceState,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollout_members SET state = $1, updated_at = $2 \
         WHERE rollout_id = $3 AND device_id = $4",
    )
    .bind(state.as_str())
    .bind(now.as_second())
    .bind(rollout_id)
    .bind(device_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Evaluates rollout `id` at `now` ([`super::evaluate`]) and saves what the engine decided,
/// retrying on a lost compare-and-swap. `None`: no such rollout, or no policy yet.
pub async fn evaluate(
    db: &Db,
    id: &str,
    now: Timestamp,
) -> Result<Option<super::Evaluation>, StoreError> {
    for _ in 0..SWAP_ATTEMPTS {
        let Some(stored) = load(db, id).await? else {
            return Ok(None);
        };
        let rollout = match stored.rollout() {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(_) => {
                return Err(StoreError::Corrupt {
                    id: id.to_owned(),
                    what: "spec or policy",
                });
            }
        };
        let members = members(db, id).await?;
        let evaluation = super::evaluate(&rollout, &stored.progress, &members, now);
        if evaluation.timeline.is_empty() {
            return Ok(Some(evaluation));
        }
        let changes = Changes {
            progress: Some(evaluation.progress),
            entries: evaluation.timeline.iter().map(Entry::from).collect(),
            ..Changes::default()
        };
        if swap(db, id, stored.revision, &changes, now).await? {
            for e in &evaluation.timeline {
                tracing::info!(rollout = %id, entry = %e, "rollout changed by the engine");
            }
            return Ok(Some(evaluation));
        }
    }
    Err(StoreError::Contended(id.to_owned()))
}
