//! The one metadata writer: inside a transaction that holds the writer lock it decides which
//! roles need a new version, signs them top-down (targets → snapshot → timestamp) and stores
//! them, so readers only ever see a consistent set.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::Duration;

use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use tough::schema::{Root, Signed, Snapshot, Targets, Timestamp};

use super::build::{self, MetaRef};
use super::sign::{Lister, SignedFile};
use super::store::{self, Head, NewMetadata, RoleName};
use super::{Repository, TufError, roots, vendor};

/// Why a write happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trigger {
    /// Server start: import roots (and the vendor's top-level targets), check keys, sign
    /// whatever is missing, stale, no longer valid under the newest root, or behind the
    /// release and delta tables.
    Init,
    /// Releases or deltas changed: new targets, snapshot and timestamp.
    TargetsChanged,
    /// The vendor's metadata changed (a release upload): new snapshot and timestamp.
    VendorChanged,
    /// Periodic: re-sign what passed half its lifetime.
    Refresh,
}

/// The versions a write signed (`None`: that role was left as it was).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// New version of the role the server lists targets in (`targets`, or `deltas` under
    /// offline release signing).
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
    /// The role the server lists targets in.
    targets: Option<Head>,
    /// Every targets-like role the snapshot lists, with its newest version.
    listed: Vec<(RoleName, Head)>,
    snapshot: Option<Head>,
    timestamp: Option<Head>,
}

impl Heads {
    async fn load(conn: &mut AnyConnection, lister: &Lister) -> Result<Self, TufError> {
        let mut listed = Vec::new();
        for role in listed_roles(lister) {
            if let Some(head) = store::head(&mut *conn, *role).await? {
                listed.push((*role, head));
            }
        }
        Ok(Self {
            targets: (listed.iter())
                .find(|(role, _)| *role == lister.role())
                .map(|(_, head)| head.clone()),
            listed,
            snapshot: store::head(&mut *conn, RoleName::Snapshot).await?,
            timestamp: store::head(&mut *conn, RoleName::Timestamp).await?,
        })
    }
}

/// The targets-like roles a snapshot lists.
fn listed_roles(lister: &Lister) -> &'static [RoleName] {
    match lister {
        Lister::Online(_) => &[RoleName::Targets],
        Lister::Delegated(_) => &RoleName::LISTED,
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
            let mut conn = self.db.pool().acquire().await?;
            let heads = Heads::load(&mut conn, &self.lister).await?;
            let plan = Plan::decide(&heads, Plan::default(), &self.expiries, crate::db::now());
            if plan.is_empty() {
                return Ok(Written::default());
            }
        }
        let mut tx = self.db.pool().begin().await?;
        store::lock(&mut tx).await?;
        let written = self.write_locked(&mut tx, trigger).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// [`Repository::write`] inside a transaction that holds the writer lock (the caller
    /// commits, so a change and the snapshot that lists it become visible together).
    pub(super) async fn write_locked(
        &self,
        tx: &mut AnyConnection,
        trigger: Trigger,
    ) -> Result<Written, TufError> {
        if trigger == Trigger::Init {
            roots::import(&mut *tx, &self.keys_dir).await?;
        }
        let (root_version, root) = roots::newest(&mut *tx).await?;
        let root = &root.signed;
        let top = match self.lister {
            Lister::Online(_) => None,
            Lister::Delegated(_) => {
                if trigger == Trigger::Init {
                    vendor::import_targets(&mut *tx, &self.keys_dir, root).await?;
                }
                let top = vendor::top_level(&mut *tx).await?.map(|t| t.signed);
                if let (Trigger::Init, Some(top)) = (trigger, &top) {
                    vendor::import_first_release(&mut *tx, &self.keys_dir, top).await?;
                }
                top
            }
        };
        let top = top.as_ref();
        if trigger == Trigger::Init {
            self.check_root(root, root_version, top)?;
        }
        let heads = Heads::load(&mut *tx, &self.lister).await?;
        let force = match trigger {
            Trigger::Init => {
                let mut plan = self.invalid(&mut *tx, root, top, &heads).await?;
                // A release or delta committed before a crash, but never signed.
                plan.targets |= self.targets_differ(&mut *tx, &heads).await?;
                plan
            }
            Trigger::TargetsChanged => Plan {
                targets: self.targets_differ(&mut *tx, &heads).await?,
                ..Plan::default()
            },
            Trigger::VendorChanged => self.invalid(&mut *tx, root, top, &heads).await?,
            Trigger::Refresh => Plan::default(),
        };
        let now = crate::db::now();
        let plan = Plan::decide(&heads, force, &self.expiries, now);
        if plan.is_empty() {
            return Ok(Written::default());
        }
        let mut written = Written::default();

        let listing = self.lister.role();
        let mut targets_ref = None;
        if plan.targets {
            let version = next(heads.targets.as_ref())?;
            let expires = expiry(now, self.expiries.targets, listing.as_str())?;
            let targets = self.wanted_targets(&mut *tx, version, expires.0).await?;
            let signed = self.lister.sign(targets, root, top).await?;
            targets_ref = Some(save(&mut *tx, listing, &signed, expires.1, now).await?);
            written.targets = Some(version.get());
        }

        let mut snapshot_ref = None;
        if plan.snapshot {
            let mut files = Vec::new();
            for role in listed_roles(&self.lister) {
                let head = heads.listed.iter().find(|(r, _)| r == role).map(|(_, h)| h);
                let file = match (&targets_ref, head) {
                    (Some(new), _) if *role == listing => new.clone(),
                    (_, Some(head)) => current(&mut *tx, *role, Some(head)).await?,
                    // No release metadata uploaded yet: the snapshot lists none.
                    (_, None) if *role == RoleName::Release => continue,
                    (_, None) => current(&mut *tx, *role, None).await?,
                };
                files.push((role.file(), file));
            }
            let version = next(heads.snapshot.as_ref())?;
            let expires = expiry(now, self.expiries.snapshot, "snapshot")?;
            let snapshot = build::snapshot(version, expires.0, &files);
            let signed = self.snapshot_key.sign(snapshot, root).await?;
            let signed = SignedFile::of(&signed);
            snapshot_ref = Some(save(&mut *tx, RoleName::Snapshot, &signed, expires.1, now).await?);
            written.snapshot = Some(version.get());
        }

        if plan.timestamp {
            let snapshot_ref = match snapshot_ref {
                Some(r) => r,
                None => current(&mut *tx, RoleName::Snapshot, heads.snapshot.as_ref()).await?,
            };
            let version = next(heads.timestamp.as_ref())?;
            let expires = expiry(now, self.expiries.timestamp, "timestamp")?;
            let timestamp = build::timestamp(version, expires.0, &snapshot_ref);
            let signed = self.timestamp_key.sign(timestamp, root).await?;
            let signed = SignedFile::of(&signed);
            save(&mut *tx, RoleName::Timestamp, &signed, expires.1, now).await?;
            written.timestamp = Some(version.get());
        }
        Ok(written)
    }

    /// Whether the tables list other targets than the newest signed targets (no lock).
    pub(super) async fn targets_behind(&self) -> Result<bool, TufError> {
        let mut conn = self.db.pool().acquire().await?;
        let heads = Heads::load(&mut conn, &self.lister).await?;
        self.targets_differ(&mut conn, &heads).await
    }

    fn check_root(
        &self,
        root: &Root,
        root_version: u64,
        top: Option<&Targets>,
    ) -> Result<(), TufError> {
        self.lister.check(root, root_version, top)?;
        self.snapshot_key.check_root(root, root_version)?;
        self.timestamp_key.check_root(root, root_version)
    }

    /// What the server's listing role should list now: every release (online) or none
    /// (delegated: the vendor's release role lists them), and every delta.
    async fn wanted_targets(
        &self,
        conn: &mut AnyConnection,
        version: NonZeroU64,
        expires: jiff::Timestamp,
    ) -> Result<Targets, TufError> {
        let releases = match self.lister {
            Lister::Online(_) => store::releases(&mut *conn).await?,
            Lister::Delegated(_) => Vec::new(),
        };
        let deltas = store::deltas(conn).await?;
        build::targets(version, expires, &releases, &deltas)
    }

    /// The roles whose newest version does not verify under `root` (keys rotated) or does
    /// not point at the newest versions below it: they are re-signed.
    async fn invalid(
        &self,
        conn: &mut AnyConnection,
        root: &Root,
        top: Option<&Targets>,
        heads: &Heads,
    ) -> Result<Plan, TufError> {
        let mut plan = Plan::default();
        if let Some(head) = &heads.targets {
            let targets: Signed<Targets> = load(conn, self.lister.role(), head).await?;
            plan.targets = !self.lister.verifies(root, top, &targets);
        }
        if let Some(head) = &heads.snapshot {
            let snapshot: Signed<Snapshot> = load(conn, RoleName::Snapshot, head).await?;
            let listed: BTreeMap<&str, u64> = (snapshot.signed.meta.iter())
                .map(|(name, m)| (name.as_str(), m.version.get()))
                .collect();
            let files: Vec<String> = heads.listed.iter().map(|(role, _)| role.file()).collect();
            let wanted: BTreeMap<&str, u64> = (files.iter().zip(&heads.listed))
                .map(|(file, (_, head))| (file.as_str(), head.version))
                .collect();
            plan.snapshot = root.verify_role(&snapshot).is_err() || listed != wanted;
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

    /// Whether the release and delta tables list other targets than the newest listing
    /// does (so a caller may report a change that is already signed, or retry one).
    async fn targets_differ(
        &self,
        conn: &mut AnyConnection,
        heads: &Heads,
    ) -> Result<bool, TufError> {
        let Some(head) = &heads.targets else {
            return Ok(true);
        };
        let stored: Signed<Targets> = load(conn, self.lister.role(), head).await?;
        let wanted =
            (self.wanted_targets(conn, stored.signed.version, stored.signed.expires)).await?;
        Ok(wanted.targets != stored.signed.targets)
    }
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
async fn save(
    conn: &mut AnyConnection,
    role: RoleName,
    signed: &SignedFile,
    expires: i64,
    now: i64,
) -> Result<MetaRef, TufError> {
    let version = signed.version;
    let body = std::str::from_utf8(&signed.buffer).map_err(|e| TufError::Stored {
        what: format!("new {} metadata", role.as_str()),
        why: e.to_string(),
    })?;
    let sha256 = hex::encode(&signed.sha256);
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
        sha256: signed.sha256.clone(),
        length: signed.buffer.len() as u64,
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
            listed: Vec::new(),
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
            listed: Vec::new(),
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
