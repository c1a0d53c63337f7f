//! The one metadata writer: inside a transaction that holds the writer lock it decides which
//! roles need a new version, signs them top-down (targets → snapshot → timestamp) and stores
//! them, so readers only ever see a consistent set.

use std::num::NonZeroU64;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use tough::editor::signed::SignedRole;
use tough::schema::{Role, Root, Signed, Snapshot, Targets, Timestamp};

use super::build::{self, MetaRef};
use super::store::{self, Head, NewMetadata, RoleName};
use super::{Repository, TufError, roots};

/// Why a write happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trigger {
    /// Server start: import roots, check keys, sign whatever is missing, stale, no longer
    /// valid under the newest root, or behind the release and delta tables.
    Init,
    /// Releases or deltas changed: new targets, snapshot and timestamp.
    TargetsChanged,
    /// Periodic: re-sign what passed half its lifetime.
    Refresh,
}

/// The versions a write signed (`None`: that role was left as it was).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// New targets version.
    pub targets: Option<u64>,
    /// New snapshot version.
    pub snapshot: Option<u64>,
    /// New timestamp version.
    pub timestamp: Option<u64>,
}

impl Written {
    /// Whether nothing was signed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// How long each role's signatures stay valid.
#[derive(Clone, Copy, Debug)]
pub(super) struct Expiries {
    pub(super) targets: Duration,
    pub(super) snapshot: Duration,
    pub(super) timestamp: Duration,
}

/// The newest version of each role.
#[derive(Debug)]
struct Heads {
    targets: Option<Head>,
    snapshot: Option<Head>,
    timestamp: Option<Head>,
}

impl Heads {
    async fn load(conn: &mut AnyConnection) -> Result<Self, TufError> {
        Ok(Self {
            targets: store::head(&mut *conn, RoleName::Targets).await?,
            snapshot: store::head(&mut *conn, RoleName::Snapshot).await?,
            timestamp: store::head(&mut *conn, RoleName::Timestamp).await?,
        })
    }
}

/// Which roles get a new version. A new targets forces a new snapshot, a new snapshot a new
/// timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Plan {
    targets: bool,
    snapshot: bool,
    timestamp: bool,
}

impl Plan {
    fn decide(heads: &Heads, force: Plan, expiries: &Expiries, now: i64) -> Self {
        let targets = force.targets || due(heads.targets.as_ref(), expiries.targets, now);
        let snapshot =
            targets || force.snapshot || due(heads.snapshot.as_ref(), expiries.snapshot, now);
        let timestamp =
            snapshot || force.timestamp || due(heads.timestamp.as_ref(), expiries.timestamp, now);
        Self {
            targets,
            snapshot,
            timestamp,
        }
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Whether a role is missing or has less than half of `lifetime` left.
fn due(head: Option<&Head>, lifetime: Duration, now: i64) -> bool {
    head.is_none_or(|head| {
        let left = i128::from(head.expires) - i128::from(now);
        left * 2 < i128::from(lifetime.as_secs())
    })
}

impl Repository {
    /// Writes what `trigger` calls for, as the only writer; returns the new versions.
    pub(super) async fn write(&self, trigger: Trigger) -> Result<Written, TufError> {
        if trigger == Trigger::Refresh {
            // Most ticks find nothing due: look without taking the lock first.
            let heads = Heads::load(&mut *self.db.pool().acquire().await?).await?;
            let plan = Plan::decide(&heads, Plan::default(), &self.expiries, crate::db::now());
            if plan.is_empty() {
                return Ok(Written::default());
            }
        }
        let mut tx = self.db.pool().begin().await?;
        store::lock(&mut tx).await?;
        if trigger == Trigger::Init {
            roots::import(&mut tx, &self.keys_dir).await?;
        }
        let (root_version, root) = roots::newest(&mut tx).await?;
        if trigger == Trigger::Init {
            self.check_root(&root.signed, root_version)?;
        }
        let heads = Heads::load(&mut tx).await?;
        let force = match trigger {
            Trigger::Init => {
                let mut plan = invalid(&mut tx, &root.signed, &heads).await?;
                // A release or delta committed before a crash, but never signed.
                plan.targets |= targets_differ(&mut tx, &heads).await?;
                plan
            }
            Trigger::TargetsChanged => Plan {
                targets: targets_differ(&mut tx, &heads).await?,
                ..Plan::default()
            },
            Trigger::Refresh => Plan::default(),
        };
        let now = crate::db::now();
        let plan = Plan::decide(&heads, force, &self.expiries, now);
        if plan.is_empty() {
            // Keeps imported roots.
            tx.commit().await?;
            return Ok(Written::default());
        }
        let mut written = Written::default();
        let root = &root.signed;

        let mut targets_ref = None;
        if plan.targets {
            let version = next(heads.targets.as_ref())?;
            let expires = expiry(now, self.expiries.targets, "targets")?;
            let releases = store::releases(&mut tx).await?;
            let deltas = store::deltas(&mut tx).await?;
            let targets = build::targets(version, expires.0, &releases, &deltas)?;
            let signed = self.targets_signer.sign(targets, root).await?;
            targets_ref = Some(save(&mut tx, RoleName::Targets, &signed, expires.1, now).await?);
            written.targets = Some(version.get());
        }

        let mut snapshot_ref = None;
        if plan.snapshot {
            let targets_ref = match targets_ref {
                Some(r) => r,
                None => current(&mut tx, RoleName::Targets, heads.targets.as_ref()).await?,
            };
            let version = next(heads.snapshot.as_ref())?;
            let expires = expiry(now, self.expiries.snapshot, "snapshot")?;
            let snapshot = build::snapshot(version, expires.0, &targets_ref);
            let signed = self.snapshot_key.sign(snapshot, root).await?;
            snapshot_ref = Some(save(&mut tx, RoleName::Snapshot, &signed, expires.1, now).await?);
            written.snapshot = Some(version.get());
        }

        if plan.timestamp {
            let snapshot_ref = match snapshot_ref {
                Some(r) => r,
                None => current(&mut tx, RoleName::Snapshot, heads.snapshot.as_ref()).await?,
            };
            let version = next(heads.timestamp.as_ref())?;
            let expires = expiry(now, self.expiries.timestamp, "timestamp")?;
            let timestamp = build::timestamp(version, expires.0, &snapshot_ref);
            let signed = self.timestamp_key.sign(timestamp, root).await?;
            save(&mut tx, RoleName::Timestamp, &signed, expires.1, now).await?;
            written.timestamp = Some(version.get());
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Whether the tables list other targets than the newest signed targets (no lock).
    pub(super) async fn targets_behind(&self) -> Result<bool, TufError> {
        let mut conn = self.db.pool().acquire().await?;
        let heads = Heads::load(&mut conn).await?;
        targets_differ(&mut conn, &heads).await
    }

    fn check_root(&self, root: &Root, root_version: u64) -> Result<(), TufError> {
        self.targets_signer.check_root(root, root_version)?;
        self.snapshot_key.check_root(root, root_version)?;
        self.timestamp_key.check_root(root, root_version)
    }
}

/// The roles whose newest version does not verify under `root` (keys rotated) or does not
/// point at the newest version below it: they are re-signed at start.
async fn invalid(conn: &mut AnyConnection, root: &Root, heads: &Heads) -> Result<Plan, TufError> {
    let mut plan = Plan::default();
    if let Some(head) = &heads.targets {
        let targets: Signed<Targets> = load(conn, RoleName::Targets, head).await?;
        plan.targets = root.verify_role(&targets).is_err();
    }
    if let Some(head) = &heads.snapshot {
        let snapshot: Signed<Snapshot> = load(conn, RoleName::Snapshot, head).await?;
        let listed = snapshot
            .signed
            .meta
            .get("targets.json")
            .map(|m| m.version.get());
        plan.snapshot = root.verify_role(&snapshot).is_err()
            || listed != heads.targets.as_ref().map(|h| h.version);
    }
    if let Some(head) = &heads.timestamp {
        let timestamp: Signed<Timestamp> = load(conn, RoleName::Timestamp, head).await?;
        let listed = timestamp
            .signed
            .meta
            .get("snapshot.json")
            .map(|m| m.version.get());
        plan.timestamp = root.verify_role(&timestamp).is_err()
            || listed != heads.snapshot.as_ref().map(|h| h.version);
    }
    Ok(plan)
}

/// Whether the release and delta tables list other targets than the newest targets
/// metadata does (so a caller may report a change that is already signed, or retry one).
async fn targets_differ(conn: &mut AnyConnection, heads: &Heads) -> Result<bool, TufError> {
    let Some(head) = &heads.targets else {
        return Ok(true);
    };
    let stored: Signed<Targets> = load(conn, RoleName::Targets, head).await?;
    let releases = store::releases(conn).await?;
    let deltas = store::deltas(conn).await?;
    let wanted = build::targets(
        stored.signed.version,
        stored.signed.expires,
        &releases,
        &deltas,
    )?;
    Ok(wanted.targets != stored.signed.targets)
}

/// Loads and parses the newest stored version of a role.
async fn load<T: DeserializeOwned>(
    conn: &mut AnyConnection,
    role: RoleName,
    head: &Head,
) -> Result<T, TufError> {
    let stored = stored(conn, role, head.version).await?;
    serde_json::from_str(&stored.body).map_err(|e| TufError::Stored {
        what: format!("{}.{}.json", head.version, role.as_str()),
        why: e.to_string(),
    })
}

/// How the role above describes the newest stored version of `role`.
async fn current(
    conn: &mut AnyConnection,
    role: RoleName,
    head: Option<&Head>,
) -> Result<MetaRef, TufError> {
    let head = head.ok_or_else(|| TufError::Stored {
        what: format!("{} metadata", role.as_str()),
        why: "none stored yet".into(),
    })?;
    let stored = stored(conn, role, head.version).await?;
    let bad = |why: String| TufError::Stored {
        what: format!("{}.{}.json", head.version, role.as_str()),
        why,
    };
    Ok(MetaRef {
        version: NonZeroU64::new(head.version).ok_or_else(|| bad("version 0".into()))?,
        sha256: hex::decode(&stored.sha256).map_err(|e| bad(e.to_string()))?,
        length: stored.body.len() as u64,
    })
}

async fn stored(
    conn: &mut AnyConnection,
    role: RoleName,
    version: u64,
) -> Result<store::Stored, TufError> {
    store::metadata(conn, role, Some(version))
        .await?
        .ok_or_else(|| TufError::Stored {
            what: format!("{version}.{}.json", role.as_str()),
            why: "vanished while locked".into(),
        })
}

/// Stores a signed role and describes it for the role above.
async fn save<T: Role + Serialize>(
    conn: &mut AnyConnection,
    role: RoleName,
    signed: &SignedRole<T>,
    expires: i64,
    now: i64,
) -> Result<MetaRef, TufError> {
    let version = signed.signed().signed.version();
    let body = std::str::from_utf8(signed.buffer()).map_err(|e| TufError::Stored {
        what: format!("new {} metadata", role.as_str()),
        why: e.to_string(),
    })?;
    let sha256 = hex::encode(signed.sha256());
    store::insert_metadata(
        conn,
        &NewMetadata {
            role,
            version: version.get(),
            body,
            sha256: &sha256,
            expires,
            created_at: now,
        },
    )
    .await?;
    Ok(MetaRef {
        version,
        sha256: signed.sha256().to_vec(),
        length: *signed.length(),
    })
}

/// The version after `head` (1 for the first).
fn next(head: Option<&Head>) -> Result<NonZeroU64, TufError> {
    let current = head.map_or(0, |h| h.version);
    current
        .checked_add(1)
        .and_then(NonZeroU64::new)
        .ok_or_else(|| TufError::Stored {
            what: "metadata".into(),
            why: format!("version {current} cannot be incremented"),
        })
}

/// `now + lifetime` in whole seconds (other TUF clients reject fractional ones), as a
/// timestamp and as Unix seconds.
fn expiry(
    now: i64,
    lifetime: Duration,
    role: &'static str,
) -> Result<(jiff::Timestamp, i64), TufError> {
    let out_of_range = || TufError::Expiry {
        role,
        seconds: lifetime.as_secs(),
    };
    let seconds = i64::try_from(lifetime.as_secs())
        .ok()
        .and_then(|s| now.checked_add(s))
        .ok_or_else(out_of_range)?;
    let at = jiff::Timestamp::from_second(seconds).map_err(|_| out_of_range())?;
    Ok((at, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: u64, expires: i64) -> Option<Head> {
        Some(Head {
            version,
            sha256: String::new(),
            expires,
        })
    }

    const EXPIRIES: Expiries = Expiries {
        targets: Duration::from_secs(300),
        snapshot: Duration::from_secs(200),
        timestamp: Duration::from_secs(100),
    };

    #[test]
    fn roles_are_due_when_missing_or_past_half_their_lifetime() {
        let fresh = Heads {
            targets: head(1, 1300),
            snapshot: head(1, 1200),
            timestamp: head(1, 1100),
        };
        assert!(Plan::decide(&fresh, Plan::default(), &EXPIRIES, 1000).is_empty());
        // Timestamp has 49 s of 100 left: only it.
        let plan = Plan::decide(&fresh, Plan::default(), &EXPIRIES, 1051);
        assert_eq!(
            plan,
            Plan {
                timestamp: true,
                ..Plan::default()
            }
        );
        // Snapshot due forces timestamp.
        let plan = Plan::decide(&fresh, Plan::default(), &EXPIRIES, 1101);
        assert!(plan.snapshot && plan.timestamp && !plan.targets);
        // Forced targets forces everything.
        let force = Plan {
            targets: true,
            ..Plan::default()
        };
        let plan = Plan::decide(&fresh, force, &EXPIRIES, 1000);
        assert!(plan.targets && plan.snapshot && plan.timestamp);
        // Nothing stored: everything.
        let empty = Heads {
            targets: None,
            snapshot: None,
            timestamp: None,
        };
        let plan = Plan::decide(&empty, Plan::default(), &EXPIRIES, 0);
        assert!(plan.targets && plan.snapshot && plan.timestamp);
    }

    #[test]
    fn expiries_are_whole_seconds_and_versions_count_up() {
        let (at, secs) = expiry(1_000, Duration::from_millis(86_400_500), "timestamp").unwrap();
        assert_eq!(secs, 87_400);
        assert_eq!(at.subsec_nanosecond(), 0);
        assert!(expiry(i64::MAX - 1, Duration::from_secs(10), "timestamp").is_err());
        assert_eq!(next(None).unwrap().get(), 1);
        assert_eq!(next(head(7, 0).as_ref()).unwrap().get(), 8);
        assert!(next(head(u64::MAX, 0).as_ref()).is_err());
    }
}
