//! Where anomalies are noticed: the check-in and report handlers call these after they have
//! decided, and the sweeper calls [`sweep_silent`]. A failure to record a flag is logged and
//! never turns an answer to a device into an error.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use otter_keys::wire::Event;
use sqlx::AnyConnection;

use super::kind::AnomalyKind;
use super::rules::{self, Rollbacks};
use super::store::{self, Notice};
use crate::db::{Db, now};
use crate::metrics::Metrics;

/// Records `notice` (and counts it in `/metrics`), logging instead of failing.
async fn flag(db: &Db, metrics: &Metrics, notice: Notice<'_>) {
    let result = async {
        let mut conn = db.pool().acquire().await?;
        store::raise(&mut conn, notice, now()).await
    }
    .await;
    match result {
        Ok(new) => {
            metrics.anomaly(notice.kind);
            if new {
                tracing::warn!(kind = %notice.kind, subject = %crate::logsafe::untrusted(notice.subject),
                    reason = %notice.reason, "anomaly flagged");
            }
        }
        Err(e) => {
            tracing::error!(kind = %notice.kind, error = %e, "could not record an anomaly flag")
        }
    }
}

/// A check-in under the known device `device_id` whose signature did not verify.
pub async fn bad_signature(db: &Db, metrics: &Metrics, device_id: &str, why: &str) {
    let hardware: Option<(String,)> =
        match sqlx::query_as("SELECT hardware_id FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_optional(db.pool())
            .await
        {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(error = %e, "could not look up a device for an anomaly flag");
                return;
            }
        };
    // An unknown id is a 404 to the sender, not an impersonation of anyone.
    let Some((hardware_id,)) = hardware else {
        return;
    };
    let reason = format!("a check-in under this device id did not verify: {why}");
    let notice = Notice {
        kind: AnomalyKind::BadSignature,
        subject: device_id,
        hardware_id: &hardware_id,
        reason: &reason,
    };
    flag(db, metrics, notice).await;
}

/// A device checked in running `image_sha256` (hex), which differs from what it ran at its
/// previous check-in: flagged if no release of its board has that hash.
pub async fn running_image(
    db: &Db,
    metrics: &Metrics,
    device: (&str, &str),
    version: &str,
    image_sha256: &str,
) {
    let (device_id, hardware_id) = device;
    let known: Result<Option<(i64,)>, _> =
        sqlx::query_as("SELECT 1 FROM releases WHERE hardware_id = $1 AND sha256 = $2")
            .bind(hardware_id)
            .bind(image_sha256)
            .fetch_optional(db.pool())
            .await;
    match known {
        Ok(Some(_)) => {}
        Ok(None) => {
            let reason = format!(
                "runs image {image_sha256} (version {version}), which is no release of board \
                 {hardware_id}: tampered, side-loaded or never published"
            );
            let notice = Notice {
                kind: AnomalyKind::UnknownImage,
                subject: device_id,
                hardware_id,
                reason: &reason,
            };
            flag(db, metrics, notice).await;
        }
        Err(e) => tracing::error!(error = %e, "could not look up a running image"),
    }
}

/// A report was stored for `device` (id, board): a refusal may complete a pattern, a
/// rollback may make a storm.
pub async fn reported(db: &Db, metrics: &Metrics, device: (&str, &str), event: &Event) {
    let result = match event {
        e if rules::is_refusal(e) => refusals(db, metrics, device).await,
        Event::RolledBack { from } => storm(db, metrics, device.1, &from.to_string()).await,
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "could not check a report for anomalies");
    }
}

async fn refusals(db: &Db, metrics: &Metrics, device: (&str, &str)) -> Result<(), sqlx::Error> {
    let (device_id, hardware_id) = device;
    let since = rules::silent_before(now(), rules::REPEAT_WINDOW);
    let events: Vec<(String,)> = sqlx::query_as(
        "SELECT event FROM device_events WHERE device_id = $1 AND kind = 'failed' \
         AND received_at >= $2",
    )
    .bind(device_id)
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    let refused: Vec<Event> = (events.iter())
        .filter_map(|(text,)| serde_json::from_str::<Event>(text).ok())
        .filter(rules::is_refusal)
        .collect();
    let count = refused.len() as u64;
    if count < rules::REPEAT_THRESHOLD {
        return Ok(());
    }
    let stages: BTreeSet<&str> = (refused.iter())
        .filter_map(|e| match e {
            Event::Failed { stage, .. } => Some(stage.as_str()),
            _ => None,
        })
        .collect();
    let reason = format!(
        "{count} refusals or verification failures in the last {} h (stages: {})",
        rules::REPEAT_WINDOW.as_secs() / 3600,
        stages.into_iter().collect::<Vec<_>>().join(", ")
    );
    let notice = Notice {
        kind: AnomalyKind::RepeatedFailures,
        subject: device_id,
        hardware_id,
        reason: &reason,
    };
    flag(db, metrics, notice).await;
    Ok(())
}

async fn storm(
    db: &Db,
    metrics: &Metrics,
    hardware_id: &str,
    version: &str,
) -> Result<(), sqlx::Error> {
    let release: Option<(String,)> =
        sqlx::query_as("SELECT id FROM releases WHERE hardware_id = $1 AND version = $2")
            .bind(hardware_id)
            .bind(version)
            .fetch_optional(db.pool())
            .await?;
    let Some((release_id,)) = release else {
        return Ok(());
    };
    let per_version = rollbacks_by_version(db, hardware_id).await?;
    let this = per_version.get(version).copied().unwrap_or_default();
    let rest = (per_version.iter())
        .filter(|(v, _)| v.as_str() != version)
        .fold(Rollbacks::default(), |sum, (_, c)| sum + *c);
    let Some(numbers) = rules::rollback_storm(this, rest) else {
        return Ok(());
    };
    let reason = format!("release {version}: {numbers}");
    let notice = Notice {
        kind: AnomalyKind::RollbackStorm,
        subject: &release_id,
        hardware_id,
        reason: &reason,
    };
    flag(db, metrics, notice).await;
    Ok(())
}

/// Distinct devices of `hardware_id` that installed each version, and rolled back from it.
async fn rollbacks_by_version(
    db: &Db,
    hardware_id: &str,
) -> Result<BTreeMap<String, Rollbacks>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT e.device_id, e.event FROM device_events e JOIN devices d ON d.id = e.device_id \
         WHERE d.hardware_id = $1 AND e.kind IN ('installed', 'rolled_back')",
    )
    .bind(hardware_id)
    .fetch_all(db.pool())
    .await?;
    let mut installed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut rolled_back: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (device, text) in rows {
        match serde_json::from_str::<Event>(&text) {
            Ok(Event::Installed { version }) => {
                installed
                    .entry(version.to_string())
                    .or_default()
                    .insert(device);
            }
            Ok(Event::RolledBack { from }) => {
                rolled_back
                    .entry(from.to_string())
                    .or_default()
                    .insert(device);
            }
            _ => {}
        }
    }
    let versions: BTreeSet<&String> = installed.keys().chain(rolled_back.keys()).collect();
    Ok(versions
        .into_iter()
        .map(|v| {
            let count =
                |m: &BTreeMap<String, BTreeSet<String>>| m.get(v).map_or(0, |s| s.len() as u64);
            let counts = Rollbacks {
                installed: count(&installed),
                rolled_back: count(&rolled_back),
            };
            (v.clone(), counts)
        })
        .collect())
}

/// Flags every device not heard from (nor registered) within `silent_after`, unless this
/// silence is flagged already (open, or acknowledged since the device was last heard from);
/// returns how many it flagged. Run by the sweeper.
pub async fn sweep_silent(
    conn: &mut AnyConnection,
    metrics: &Metrics,
    silent_after: Duration,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let before = rules::silent_before(now, silent_after);
    let silent: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT d.id, d.hardware_id, d.last_seen FROM devices d \
         WHERE COALESCE(d.last_seen, d.created_at) < $1 AND NOT EXISTS ( \
           SELECT 1 FROM anomaly_flags f WHERE f.kind = 'silent' AND f.subject = d.id \
           AND (f.acknowledged_at IS NULL OR f.first_at > COALESCE(d.last_seen, d.created_at))) \
         ORDER BY d.id LIMIT 1000",
    )
    .bind(before)
    .fetch_all(&mut *conn)
    .await?;
    let mut flagged = 0;
    for (device_id, hardware_id, last_seen) in silent {
        let reason = match last_seen {
            Some(t) => format!(
                "not heard from for {} s (last message at {t}; silent after {} s)",
                now - t,
                silent_after.as_secs()
            ),
            None => format!(
                "never checked in since registration (silent after {} s)",
                silent_after.as_secs()
            ),
        };
        let notice = Notice {
            kind: AnomalyKind::Silent,
            subject: &device_id,
            hardware_id: &hardware_id,
            reason: &reason,
        };
        store::raise(conn, notice, now).await?;
        metrics.anomaly(AnomalyKind::Silent);
        flagged += 1;
    }
    Ok(flagged)
}
