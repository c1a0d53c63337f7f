//! The rollout pages: the list, and each rollout's progress as per-stage bars of device
//! states, the failure rate against its threshold, its timeline, and the operator's buttons.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, Redirect};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{bar, csrf_field, page, time};
use super::session::{self, Session};
use crate::error::ApiError;
use crate::rollouts::routes::{self as api, RolloutDetail};
use crate::rollouts::{Command, DeviceState};
use crate::state::AppState;

/// Seconds between reloads of a rollout's page.
const REFRESH: u32 = 5;

fn state_badge(state: &str) -> Markup {
    html! { span class=(format!("state {state}")) { (state) } }
}

/// Every rollout, newest first.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
) -> Result<Html<String>, ApiError> {
    let rollouts = api::list_views(&state, 200).await?;
    let body = html! {
        @if rollouts.is_empty() {
            p { "No rollouts yet. Create one with " code { "otter-server rollout create" } "." }
        } @else {
            table #rollouts {
                tr { th { "rollout" } th { "release" } th { "board" } th { "state" } th { "stage" } th { "ceiling" } }
                @for r in &rollouts {
                    tr {
                        td { a href=(format!("/ui/rollouts/{}", r.id)) { code { (r.id) } } }
                        td { (r.release_version) }
                        td { (r.hardware_id) }
                        td { (state_badge(&r.state)) }
                        td { (r.stage) " of " (r.stages.len()) }
                        td { (r.ceiling.as_deref().unwrap_or("no policy")) }
                    }
                }
            }
        }
    };
    Ok(Html(
        page("Rollouts", Some(&session), Some(REFRESH * 2), body).into_string(),
    ))
}

/// One rollout, live.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let detail = api::detail_of(&state, &id).await?;
    let title = format!("Rollout {id}");
    Ok(Html(
        page(
            &title,
            Some(&session),
            Some(REFRESH),
            rollout_body(&session, &detail),
        )
        .into_string(),
    ))
}

fn rollout_body(session: &Session, d: &RolloutDetail) -> Markup {
    let r = &d.rollout;
    let f = &d.failure_rate;
    html! {
        p {
            "Release " strong { (r.release_version) } " of " strong { (r.hardware_id) } ", "
            span #rollout-state { (state_badge(&r.state)) } ", stage "
            span #rollout-stage { (r.stage) } " of " (r.stages.len())
            ", signed ceiling " (r.ceiling.as_deref().unwrap_or("none yet")) "."
        }
        @if let Some(w) = &d.waiting { p.muted #waiting { "Waiting: " (w.message) } }
        p #failure-rate class=(if f.over { "flag" } else { "" }) {
            "Failures: " (bar(f.failures, f.admitted, "failures")) " = " (f.rate)
            ", threshold " (f.threshold) " (from " (f.min_devices) " devices)"
        }
        (buttons(session, r.id.as_str(), &r.state))
        h2 { "Stages" }
        table #stages {
            tr {
                th { "stage" } th { "cutoff" } th { "soak" } th { "admitted" }
                @for s in DeviceState::ALL { th { (s.as_str()) } }
            }
            @for (spec, counts) in r.stages.iter().zip(&d.per_stage) {
                tr data-stage=(counts.stage) {
                    td { (counts.stage) }
                    td { (spec.percent) }
                    td { (spec.soak) }
                    td.admitted { (counts.admitted) }
                    @for s in DeviceState::ALL {
                        @let n = counts.states.get(s.as_str()).copied().unwrap_or(0);
                        td class=(s.as_str()) { (bar(n, counts.admitted, s.as_str())) }
                    }
                }
            }
        }
        h2 { "Timeline" }
        table #timeline {
            tr { th { "when" } th { "who" } th { "what" } th { "why" } }
            @for e in d.timeline.iter().rev() {
                tr { td { (time(Some(e.at))) } td { (e.actor) } td { (e.change) } td { (e.reason) } }
            }
        }
    }
}

/// The commands that apply in `state`, each a CSRF-checked form.
fn buttons(session: &Session, id: &str, state: &str) -> Markup {
    let commands: &[(&str, &str)] = match state {
        "draft" => &[("start", "Start"), ("abort", "Abort")],
        "running" => &[
            ("pause", "Pause"),
            ("advance", "Advance a stage"),
            ("abort", "Abort"),
        ],
        "paused" => &[("resume", "Resume"), ("abort", "Abort")],
        _ => &[],
    };
    html! {
        div #commands {
            @for (command, label) in commands {
                form.inline method="post" action=(format!("/ui/rollouts/{id}/{command}")) {
                    (csrf_field(session))
                    input type="hidden" name="reason" value=(format!("{label} from the dashboard"));
                    button type="submit" name="command" value=(command) { (label) }
                    " "
                }
            }
        }
    }
}

/// What a command form sends.
#[derive(Deserialize)]
pub struct CommandForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// Carries out an operator's command as the session's token, then back to the rollout.
pub async fn command(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CommandForm>,
) -> Result<Redirect, ApiError> {
    session::check_form(&session, &headers, &form.csrf)?;
    let command = match action.as_str() {
        "start" => Command::Start,
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "advance" => Command::Advance,
        "abort" => Command::Abort,
        other => return Err(ApiError::NotFound(format!("no rollout command {other:?}"))),
    };
    let reason: String = form.reason.chars().take(500).collect();
    api::run_command(&state, &id, command, &session.operator, &reason).await?;
    Ok(Redirect::to(&format!("/ui/rollouts/{id}")))
}
