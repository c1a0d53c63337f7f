//! The fleet pages: overview, devices, anomaly flags (with acknowledgement).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, Redirect};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{csrf_field, page, time};
use super::session::{self, Session};
use crate::anomalies::store::{self as flags, Acknowledged, Filter, Flag};
use crate::db::now;
use crate::error::ApiError;
use crate::state::AppState;

/// Seconds between reloads of the live pages.
const REFRESH: u32 = 10;

fn short(hash: Option<&str>) -> String {
    hash.map_or_else(|| "-".into(), |h| h.chars().take(12).collect())
}

/// Devices by board and version, and what needs a look.
pub async fn overview(
    State(state): State<AppState>,
    session: Session,
) -> Result<Html<String>, ApiError> {
    let versions: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT hardware_id, current_version, COUNT(*) FROM devices \
         GROUP BY hardware_id, current_version ORDER BY hardware_id, current_version",
    )
    .fetch_all(state.db.pool())
    .await?;
    let devices: i64 = versions.iter().map(|(_, _, n)| n).sum();
    let open = open_flags(&state, 500).await?;
    let silent_after = state.config.silent_after.as_secs();
    let body = html! {
        div.cards {
            div.card { div.number #device-count { (devices) } "devices" }
            div.card { div.number #open-flags { (open.len()) } a href="/ui/anomalies" { "open anomaly flags" } }
            div.card { div.number { (versions.iter().map(|v| &v.0).collect::<std::collections::BTreeSet<_>>().len()) } "boards" }
        }
        h2 { "Versions in the field" }
        table #versions {
            tr { th { "board" } th { "version" } th { "devices" } }
            @for (board, version, n) in &versions {
                tr {
                    td { (board) }
                    td { (version.as_deref().unwrap_or("not checked in yet")) }
                    td { (n) }
                }
            }
        }
        p.muted { "Devices silent for over " (silent_after) " s are flagged. This page reloads every "
            (REFRESH) " s." }
    };
    Ok(Html(
        page("Fleet overview", Some(&session), Some(REFRESH), body).into_string(),
    ))
}

async fn open_flags(state: &AppState, limit: i64) -> Result<Vec<Flag>, sqlx::Error> {
    let filter = Filter {
        open_only: true,
        limit,
        ..Filter::default()
    };
    flags::list(&state.db, &filter).await
}

/// One row of the device table.
#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    serial: String,
    hardware_id: String,
    current_version: Option<String>,
    image_sha256: Option<String>,
    last_seen: Option<i64>,
}

/// The devices, most recently heard from first.
pub async fn devices(
    State(state): State<AppState>,
    session: Session,
) -> Result<Html<String>, ApiError> {
    let rows: Vec<DeviceRow> = sqlx::query_as(
        "SELECT id, serial, hardware_id, current_version, image_sha256, last_seen FROM devices \
         ORDER BY COALESCE(last_seen, 0) DESC, id LIMIT 500",
    )
    .fetch_all(state.db.pool())
    .await?;
    let flagged: std::collections::BTreeSet<String> = open_flags(&state, 500)
        .await?
        .into_iter()
        .map(|f| f.subject)
        .collect();
    let body = html! {
        table #devices {
            tr { th { "device" } th { "serial" } th { "board" } th { "version" } th { "image" }
                 th { "last seen" } th { "flags" } }
            @for d in &rows {
                tr {
                    td { a href=(format!("/ui/devices/{}", d.id)) { code { (d.id) } } }
                    td { (d.serial) }
                    td { (d.hardware_id) }
                    td { (d.current_version.as_deref().unwrap_or("-")) }
                    td { code { (short(d.image_sha256.as_deref())) } }
                    td { (time(d.last_seen)) }
                    td { @if flagged.contains(&d.id) { a.flag href=(format!("/ui/anomalies?subject={}", d.id)) { "flagged" } } }
                }
            }
        }
        @if rows.len() == 500 { p.muted { "Showing the 500 most recently seen devices." } }
    };
    Ok(Html(
        page("Devices", Some(&session), Some(REFRESH), body).into_string(),
    ))
}

/// One event of a device's timeline.
#[derive(sqlx::FromRow)]
struct EventRow {
    received_at: i64,
    kind: String,
    event: String,
}

/// One device: what it runs, its open flags, and its signed reports, newest first.
pub async fn device(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let row: Option<DeviceRow> = sqlx::query_as(
        "SELECT id, serial, hardware_id, current_version, image_sha256, last_seen FROM devices \
         WHERE id = $1",
    )
    .bind(&id)
    .fetch_optional(state.db.pool())
    .await?;
    let d = row.ok_or_else(|| ApiError::NotFound(format!("no device {id:?}")))?;
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT received_at, kind, event FROM device_events WHERE device_id = $1 \
         ORDER BY counter DESC LIMIT 200",
    )
    .bind(&id)
    .fetch_all(state.db.pool())
    .await?;
    let filter = Filter {
        open_only: true,
        subject: Some(id.clone()),
        limit: 50,
        ..Filter::default()
    };
    let open = flags::list(&state.db, &filter).await?;
    let body = html! {
        p {
            "Serial " strong { (d.serial) } ", board " strong { (d.hardware_id) } ", runs "
            strong #device-version { (d.current_version.as_deref().unwrap_or("nothing reported yet")) }
            " (image " code { (short(d.image_sha256.as_deref())) } "), last seen " (time(d.last_seen)) "."
        }
        @for f in &open { p.flag { (f.kind) ": " (f.reason) } }
        h2 { "Timeline" }
        table #device-timeline {
            tr { th { "received" } th { "event" } th { "details (as the device signed them)" } }
            @for e in &events {
                tr { td { (time(Some(e.received_at))) } td { (e.kind) } td { code { (e.event) } } }
            }
        }
    };
    let title = format!("Device {id}");
    Ok(Html(
        page(&title, Some(&session), Some(REFRESH), body).into_string(),
    ))
}

/// Which flags the anomalies page shows.
#[derive(Deserialize)]
pub struct FlagQuery {
    subject: Option<String>,
}

/// Open flags, each with an acknowledge form, and the latest acknowledged ones.
pub async fn anomalies(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Query(query): axum::extract::Query<FlagQuery>,
) -> Result<Html<String>, ApiError> {
    let filter = |open_only| Filter {
        open_only,
        subject: query.subject.clone(),
        limit: 200,
        ..Filter::default()
    };
    let open = flags::list(&state.db, &filter(true)).await?;
    let recent: Vec<Flag> = flags::list(&state.db, &filter(false))
        .await?
        .into_iter()
        .filter(|f| f.acknowledged_at.is_some())
        .take(20)
        .collect();
    let body = html! {
        @if open.is_empty() { p #no-flags { "Nothing needs a look." } }
        @else {
            table #open-flags {
                tr { th { "kind" } th { "subject" } th { "board" } th { "why" } th { "seen" } th { "" } }
                @for f in &open { (open_row(&session, f)) }
            }
        }
        h2 { "Recently acknowledged" }
        table #acknowledged {
            tr { th { "kind" } th { "subject" } th { "why" } th { "by" } th { "note" } }
            @for f in &recent {
                tr {
                    td { (f.kind) }
                    td { code { (f.subject) } }
                    td { (f.reason) }
                    td { (f.acknowledged_by.as_deref().unwrap_or("")) " at " (time(f.acknowledged_at)) }
                    td { (f.acknowledged_note.as_deref().unwrap_or("")) }
                }
            }
        }
    };
    Ok(Html(
        page("Anomaly flags", Some(&session), None, body).into_string(),
    ))
}

fn open_row(session: &Session, f: &Flag) -> Markup {
    html! {
        tr.flag-row data-kind=(f.kind) {
            td.flag { (f.kind) }
            td { code { (f.subject) } }
            td { (f.hardware_id) }
            td { (f.reason) }
            td { (f.occurrences) "×, last " (time(Some(f.last_at))) }
            td {
                form.inline method="post" action=(format!("/ui/anomalies/{}/acknowledge", f.id)) {
                    (csrf_field(session))
                    input type="text" name="note" placeholder="note" maxlength="1000";
                    " "
                    button type="submit" { "Acknowledge" }
                }
            }
        }
    }
}

/// What the acknowledge form sends.
#[derive(Deserialize)]
pub struct AcknowledgeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// Acknowledges a flag as the session's token, then back to the list.
pub async fn acknowledge(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AcknowledgeForm>,
) -> Result<Redirect, ApiError> {
    session::check_form(&session, &headers, &form.csrf)?;
    let note: String = form.note.chars().take(1000).collect();
    match flags::acknowledge(&state.db, &id, &session.operator, &note, now()).await? {
        Acknowledged::Now(_) | Acknowledged::Already(_) => Ok(Redirect::to("/ui/anomalies")),
        Acknowledged::Missing => Err(ApiError::NotFound(format!("no anomaly flag {id:?}"))),
    }
}
