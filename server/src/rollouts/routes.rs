//! The rollout API (scope `fleet`): create a draft, upload its signed policy, list and show
//! rollouts with their counts, failure rate and timeline, and the operator's commands.
//! Durations are humantime text (`90s`, `30m`, `1h`, `7d`), shares percentages (`12.5%`).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use otter_keys::wire::{RolloutPolicy, Signed};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::bucket::BasisPoints;
use super::store::{self, Changes, CohortDoc, Entry, StoreError, Stored};
use super::{
    Cohort, Command, DeviceState, FailureThreshold, ReleaseRef, Rollout, RolloutSpec, RolloutState,
    Stage, Tally, Wait,
};
use crate::api::extract::{Json, Path, Query};
use crate::auth::{Caller, Scope};
use crate::db::new_id;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Rollout routes under `/api/v1/rollouts`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show))
        .routes(routes!(put_policy))
        .routes(routes!(act))
}

/// Longest operator reason, in bytes.
const MAX_REASON_LEN: usize = 1000;
/// Most devices in an explicit cohort.
const MAX_COHORT_DEVICES: usize = 1000;

/// A stage as asked for.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageRequest {
    /// Cumulative share of the cohort, e.g. `"10%"`, `"12.5%"`, `"100%"`.
    #[schema(example = "10%")]
    percent: String,
    /// Least time the stage runs before the next, humantime (`"0s"`, `"30m"`, `"1h"`).
    #[schema(example = "1h")]
    soak: String,
}

/// When the rollout pauses itself.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRequest {
    /// The most failed plus rolled-back devices tolerated, as a share of admitted ones.
    #[schema(example = "10%")]
    max: String,
    /// The threshold applies once this many devices are admitted.
    #[schema(example = 10)]
    min_devices: u32,
}

/// A rollout to create (as a draft).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRollout {
    /// The release (`rel_…`); its hardware id is the rollout's.
    release_id: String,
    /// `{"tags": [...]}` (every device of the board with all these tags, also devices
    /// registering later; `[]` for the whole board) or `{"devices": [...]}` (a canary list).
    cohort: CohortDoc,
    /// In order, cutoffs rising.
    stages: Vec<StageRequest>,
    /// When it pauses itself.
    failure_threshold: ThresholdRequest,
    /// Devices admitted per minute at most; null for no limit.
    #[serde(default)]
    #[schema(minimum = 1)]
    rate_limit_per_minute: Option<u32>,
    /// An admitted device neither healthy nor failed this long after admission no longer
    /// holds its stage back (humantime, e.g. `"24h"`).
    #[schema(example = "24h")]
    device_timeout: String,
    /// The fleet manager's signed policy (`otter-keys sign-rollout`); the rollout takes its
    /// `rollout_id`. Null: the server picks the id and the draft waits for
    /// `PUT /api/v1/rollouts/{id}/policy`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    policy: Option<Signed<RolloutPolicy>>,
    /// Why, for the timeline.
    #[serde(default)]
    reason: Option<String>,
}

/// A signed policy for an existing rollout: the first one, or a wider one for a running
/// rollout (a higher ceiling).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpload {
    /// `Signed<RolloutPolicy>` from `otter-keys sign-rollout --rollout-id ID`.
    #[schema(value_type = Object)]
    policy: Signed<RolloutPolicy>,
    /// Why, for the timeline.
    #[serde(default)]
    reason: Option<String>,
}

/// An operator's command.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Why, for the timeline.
    #[serde(default)]
    reason: Option<String>,
}

/// The command in `POST /api/v1/rollouts/{id}/{action}`.
#[derive(Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Draft to running, at stage 1.
    Start,
    /// Running to paused: nobody new is admitted, members keep the release.
    Pause,
    /// Paused to running; the failures seen so far no longer pause it.
    Resume,
    /// The next stage now (never past the signed ceiling).
    Advance,
    /// Stop for good: assigns nothing new, not even to members.
    Abort,
}

impl From<Action> for Command {
    fn from(a: Action) -> Self {
        match a {
            Action::Start => Command::Start,
            Action::Pause => Command::Pause,
            Action::Resume => Command::Resume,
            Action::Advance => Command::Advance,
            Action::Abort => Command::Abort,
        }
    }
}

/// A stage as shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StageView {
    /// Cumulative share, e.g. `10%`.
    pub percent: String,
    /// The same in basis points (0 to 10 000).
    pub cutoff_bp: u16,
    /// Soak time, humantime.
    pub soak: String,
}

/// The failure threshold as shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ThresholdView {
    /// Share, e.g. `10%`.
    pub max: String,
    /// Applies from this many admitted devices.
    pub min_devices: u32,
}

/// A rollout as listed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RolloutView {
    /// Rollout id.
    pub id: String,
    /// The release.
    pub release_id: String,
    /// Its version.
    pub release_version: String,
    /// Its board.
    pub hardware_id: String,
    /// Whom it is for.
    pub cohort: CohortDoc,
    /// Its stages.
    pub stages: Vec<StageView>,
    /// When it pauses itself.
    pub failure_threshold: ThresholdView,
    /// Admissions per minute at most.
    pub rate_limit_per_minute: Option<u32>,
    /// Device timeout, humantime.
    pub device_timeout: String,
    /// `draft`, `running`, `paused`, `completed` or `aborted`.
    pub state: String,
    /// The current stage, from 1.
    pub stage: usize,
    /// When the current stage started, Unix seconds.
    pub stage_started: Option<i64>,
    /// When the rollout started, Unix seconds.
    pub started_at: Option<i64>,
    /// The signed ceiling; null until a policy is uploaded.
    pub ceiling: Option<String>,
    /// The signed policy as uploaded.
    #[schema(value_type = Option<Object>)]
    pub policy: Option<Signed<RolloutPolicy>>,
    /// The token label that created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Counts of one stage's devices.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StageCounts {
    /// The stage, from 1.
    pub stage: usize,
    /// Devices admitted at this stage.
    pub admitted: u64,
    /// Of them, still updating past the device timeout.
    pub timed_out: u64,
    /// Devices in each state (every state listed, zeros included).
    pub states: BTreeMap<String, u64>,
}

/// The failure rate against the threshold.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FailureRate {
    /// Failed plus rolled back.
    pub failures: u64,
    /// Admitted devices.
    pub admitted: u64,
    /// `failures / admitted`, e.g. `12.5%`.
    pub rate: String,
    /// The threshold.
    pub threshold: String,
    /// The threshold applies from this many admitted devices.
    pub min_devices: u32,
    /// Whether the rate is over the threshold.
    pub over: bool,
}

/// Why a running rollout does not advance yet.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WaitView {
    /// `devices`, `failure_rate`, `soak`, `policy_expired` or `ceiling`.
    pub kind: &'static str,
    /// In words.
    pub message: String,
}

/// One timeline entry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TimelineView {
    /// Order, from 1.
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

/// A rollout with its progress and history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RolloutDetail {
    /// The rollout.
    #[serde(flatten)]
    pub rollout: RolloutView,
    /// Per stage, counts of every device state.
    pub per_stage: Vec<StageCounts>,
    /// Over all admitted devices.
    pub failure_rate: FailureRate,
    /// Why it does not advance yet (running rollouts only).
    pub waiting: Option<WaitView>,
    /// Every change, oldest first.
    pub timeline: Vec<TimelineView>,
}

/// Paging of the rollout list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many, newest first (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

fn humantime_secs(secs: i64) -> String {
    humantime::format_duration(Duration::from_secs(secs.unsigned_abs())).to_string()
}

fn view(s: &Stored) -> RolloutView {
    let spec = &s.spec;
    RolloutView {
        id: spec.id.clone(),
        release_id: spec.release.id.clone(),
        release_version: s.release_version.clone(),
        hardware_id: spec.release.hardware_id.clone(),
        cohort: CohortDoc::from(&spec.cohort),
        stages: (spec.stages.iter())
            .map(|st| StageView {
                percent: st.cutoff.to_string(),
                cutoff_bp: st.cutoff.get(),
                soak: humantime_secs(st.min_soak.as_secs()),
            })
            .collect(),
        failure_threshold: ThresholdView {
            max: spec.failure.max_failures.to_string(),
            min_devices: spec.failure.min_devices,
        },
        rate_limit_per_minute: spec.rate_limit.map(NonZeroU32::get),
        device_timeout: humantime_secs(spec.device_timeout.as_secs()),
        state: s.progress.state.as_str().to_owned(),
        stage: s.progress.stage + 1,
        stage_started: s.progress.stage_started.map(|t| t.as_second()),
        started_at: s.started_at,
        ceiling: s.policy.as_ref().map(|p| p.message.ceiling.to_string()),
        policy: s.policy.clone(),
        created_by: s.created_by.clone(),
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn wait_view(wait: &Wait) -> WaitView {
    match wait {
        Wait::Devices { pending } => WaitView {
            kind: "devices",
            message: format!("{pending} admitted devices are still updating"),
        },
        Wait::FailureRate { failures, admitted } => WaitView {
            kind: "failure_rate",
            message: format!(
                "{failures} of {admitted} admitted devices failed or rolled back, over the \
                 threshold, but too few devices are in for it to pause the rollout"
            ),
        },
        Wait::Soak { until } => WaitView {
            kind: "soak",
            message: format!("the stage soaks until {until}"),
        },
        Wait::PolicyExpired { expires } => WaitView {
            kind: "policy_expired",
            message: format!(
                "the signed rollout policy expired at {}: nobody is assigned the release until \
                 a new one is uploaded (otter-keys sign-rollout, then rollout policy)",
                i64::try_from(*expires)
                    .ok()
                    .and_then(|s| Timestamp::from_second(s).ok())
                    .map_or_else(|| expires.to_string(), |t| t.to_string())
            ),
        },
        Wait::Ceiling { next, ceiling } => WaitView {
            kind: "ceiling",
            message: format!(
                "the next stage's {next} is above the signed ceiling {ceiling}: upload a policy \
                 with a higher ceiling (otter-keys sign-rollout)"
            ),
        },
    }
}

/// A stand-in policy naming `spec` itself with a full ceiling, so a draft without a policy
/// is checked by the same rules ([`Rollout::new`]) as one with.
fn placeholder_policy(spec: &RolloutSpec) -> RolloutPolicy {
    RolloutPolicy {
        rollout_id: spec.id.clone(),
        hardware_id: spec.release.hardware_id.clone(),
        image_sha256: spec.release.image_sha256,
        ceiling: BasisPoints::FULL,
        window: None,
        expires: u64::MAX,
    }
}

async fn detail(state: &AppState, stored: Stored) -> ApiResult<RolloutDetail> {
    let id = stored.spec.id.clone();
    let members = store::members(&state.db, &id).await.map_err(internal)?;
    let timeline = store::timeline(&state.db, &id).await.map_err(internal)?;
    let rollout = match stored.rollout().map_err(ApiError::internal)? {
        Some(r) => r,
        None => Rollout::new(stored.spec.clone(), placeholder_policy(&stored.spec))
            .map_err(ApiError::internal)?,
    };
    let now = Timestamp::now();
    let per_stage = Tally::per_stage(&rollout, &members, now)
        .into_iter()
        .enumerate()
        .map(|(k, t)| StageCounts {
            stage: k + 1,
            admitted: t.admitted,
            timed_out: t.timed_out,
            states: DeviceState::ALL
                .into_iter()
                .map(|s| (s.as_str().to_owned(), t.count(s)))
                .collect(),
        })
        .collect();
    let all = Tally::of(&rollout, &members, now);
    let threshold = stored.spec.failure;
    let failure_rate = FailureRate {
        failures: all.failures(),
        admitted: all.admitted,
        rate: BasisPoints::ratio(all.failures(), all.admitted).to_string(),
        threshold: threshold.max_failures.to_string(),
        min_devices: threshold.min_devices,
        over: (threshold.max_failures).exceeded_by(all.failures(), all.admitted),
    };
    let waiting = match stored.policy {
        Some(_) => super::evaluate(&rollout, &stored.progress, &members, now)
            .waiting
            .as_ref()
            .map(wait_view),
        None if stored.progress.state == RolloutState::Draft => Some(WaitView {
            kind: "policy",
            message: format!(
                "no signed policy yet: sign one with otter-keys sign-rollout --rollout-id {id} \
                 and upload it with PUT /api/v1/rollouts/{id}/policy"
            ),
        }),
        None => None,
    };
    Ok(RolloutDetail {
        rollout: view(&stored),
        per_stage,
        failure_rate,
        waiting,
        timeline: timeline
            .into_iter()
            .map(|e| TimelineView {
                seq: e.seq,
                at: e.at,
                actor: e.actor,
                change: e.change,
                reason: e.reason,
            })
            .collect(),
    })
}

fn internal(e: StoreError) -> ApiError {
    match e {
        StoreError::ActiveExists => ApiError::Conflict(e.to_string()),
        StoreError::Contended(_) => ApiError::Conflict(e.to_string()),
        other => ApiError::internal(other),
    }
}

fn reason(text: Option<String>) -> ApiResult<String> {
    let text = text.unwrap_or_default();
    if text.len() > MAX_REASON_LEN {
        return Err(ApiError::Unprocessable(format!(
            "reason: at most {MAX_REASON_LEN} bytes"
        )));
    }
    Ok(text)
}

fn share(field: &str, text: &str) -> ApiResult<BasisPoints> {
    text.parse()
        .map_err(|e| ApiError::Unprocessable(format!("{field}: {e}")))
}

fn duration(field: &str, text: &str) -> ApiResult<SignedDuration> {
    let d = humantime::parse_duration(text).map_err(|e| {
        ApiError::Unprocessable(format!(
            "{field}: {text:?}: {e} (humantime durations such as 0s, 30m, 1h, 7d)"
        ))
    })?;
    SignedDuration::try_from(d)
        .ok()
        .filter(|d| *d <= SignedDuration::from_hours(24 * 3650))
        .ok_or_else(|| ApiError::Unprocessable(format!("{field}: {text:?}: at most 3650 days")))
}

/// Rollout ids name URL paths and are signed into policies: short, plain words.
fn check_rollout_id(id: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "policy rollout_id {id:?}: 1 to 64 letters, digits, '_', '-' or '.'"
        )))
    }
}

/// Checks an uploaded policy: signed by a rollout key the server knows, not expired.
fn authentic(state: &AppState, signed: &Signed<RolloutPolicy>) -> ApiResult<RolloutPolicy> {
    let policy = signed
        .verify_authentic(&state.keys.rollout)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?
        .clone();
    let now = u64::try_from(Timestamp::now().as_second()).unwrap_or(0);
    if policy.expires <= now {
        return Err(ApiError::Unprocessable(format!(
            "the rollout policy expired at {} (unix time); sign a new one",
            policy.expires
        )));
    }
    check_rollout_id(&policy.rollout_id)?;
    Ok(policy)
}

fn cohort(doc: CohortDoc) -> ApiResult<Cohort> {
    match &doc {
        CohortDoc::Tags(tags) => {
            for tag in tags {
                crate::devices::tags::check_tag(tag)
                    .map_err(|e| ApiError::Unprocessable(format!("cohort: {e}")))?;
            }
        }
        CohortDoc::Devices(ids) => {
            if ids.len() > MAX_COHORT_DEVICES {
                return Err(ApiError::Unprocessable(format!(
                    "cohort: at most {MAX_COHORT_DEVICES} devices"
                )));
            }
            if let Some(bad) = ids.iter().find(|id| id.is_empty() || id.len() > 64) {
                return Err(ApiError::Unprocessable(format!(
                    "cohort: device id {bad:?} is not 1 to 64 characters"
                )));
            }
        }
    }
    Ok(doc.into())
}

/// Creates a draft rollout. With a policy, its id is the policy's `rollout_id`.
#[utoipa::path(post, path = "/api/v1/rollouts", tag = "rollouts", security(("bearer" = [])),
    request_body(content = CreateRollout, example = json!({
        "release_id": "rel_0123456789abcdef0123456789abcdef",
        "cohort": {"tags": ["eu"]},
        "stages": [{"percent": "10%", "soak": "1h"}, {"percent": "100%", "soak": "0s"}],
        "failure_threshold": {"max": "10%", "min_devices": 10},
        "rate_limit_per_minute": null,
        "device_timeout": "24h",
        "policy": null,
        "reason": "v2 to the EU fleet"})),
    responses((status = 201, body = RolloutDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateRollout>,
) -> ApiResult<(StatusCode, axum::Json<RolloutDetail>)> {
    caller.require(Scope::Fleet)?;
    let why = reason(request.reason)?;
    let release: Option<(String, String)> =
        sqlx::query_as("SELECT hardware_id, sha256 FROM releases WHERE id = $1")
            .bind(&request.release_id)
            .fetch_optional(state.db.pool())
            .await?;
    let (hardware_id, sha256) = release.ok_or_else(|| {
        ApiError::Unprocessable(format!("release_id: no release {:?}", request.release_id))
    })?;
    let mut image_sha256 = [0u8; 32];
    hex::decode_to_slice(&sha256, &mut image_sha256)
        .map_err(|_| ApiError::internal("bad stored release sha256"))?;
    let mut stages = Vec::with_capacity(request.stages.len());
    for (i, s) in request.stages.iter().enumerate() {
        let n = i + 1;
        stages.push(Stage {
            cutoff: share(&format!("stages[{n}].percent"), &s.percent)?,
            min_soak: duration(&format!("stages[{n}].soak"), &s.soak)?,
        });
    }
    let rate_limit = match request.rate_limit_per_minute {
        None => None,
        Some(n) => Some(NonZeroU32::new(n).ok_or_else(|| {
            ApiError::Unprocessable("rate_limit_per_minute: at least 1, or null".into())
        })?),
    };
    let policy = match &request.policy {
        Some(signed) => Some(authentic(&state, signed)?),
        None => None,
    };
    let spec = RolloutSpec {
        id: policy
            .as_ref()
            .map_or_else(|| new_id("rol"), |p| p.rollout_id.clone()),
        release: ReleaseRef {
            id: request.release_id.clone(),
            hardware_id,
            image_sha256,
        },
        cohort: cohort(request.cohort)?,
        stages,
        failure: FailureThreshold {
            max_failures: share("failure_threshold.max", &request.failure_threshold.max)?,
            min_devices: request.failure_threshold.min_devices,
        },
        rate_limit,
        device_timeout: duration("device_timeout", &request.device_timeout)?,
    };
    let checked_against = policy.clone().unwrap_or_else(|| placeholder_policy(&spec));
    Rollout::new(spec.clone(), checked_against)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let policy_json = match &request.policy {
        Some(signed) => Some(serde_json::to_string(signed).map_err(ApiError::internal)?),
        None => None,
    };
    let change = if policy_json.is_some() {
        "created with its signed policy"
    } else {
        "created, waiting for a signed policy"
    };
    let entry = Entry::new(Timestamp::now(), &caller.label, change, &why);
    let inserted = store::insert(
        &state.db,
        &spec,
        policy_json.as_deref(),
        &caller.label,
        &entry,
    )
    .await
    .map_err(internal)?;
    if !inserted {
        return Err(ApiError::Conflict(format!(
            "a rollout with id {:?} already exists (sign the policy for a new rollout id)",
            spec.id
        )));
    }
    tracing::info!(rollout = %spec.id, release = %spec.release.id, by = %caller.label, "rollout created");
    let stored = load(&state, &spec.id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(detail(&state, stored).await?),
    ))
}

/// Rollout `id` with its progress and history (the API's and the dashboard's view).
pub async fn detail_of(state: &AppState, id: &str) -> ApiResult<RolloutDetail> {
    let stored = load(state, id).await?;
    detail(state, stored).await
}

/// The newest `limit` rollouts as listed.
pub async fn list_views(state: &AppState, limit: i64) -> ApiResult<Vec<RolloutView>> {
    let found = store::list(&state.db, limit).await.map_err(internal)?;
    Ok(found.iter().map(view).collect())
}

async fn load(state: &AppState, id: &str) -> ApiResult<Stored> {
    store::load(&state.db, id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no rollout {id:?}")))
}

/// Rollouts, newest first.
#[utoipa::path(get, path = "/api/v1/rollouts", tag = "rollouts", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Vec<RolloutView>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Vec<RolloutView>>> {
    caller.require(Scope::Fleet)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 500".into(),
        ));
    }
    let found = store::list(&state.db, limit).await.map_err(internal)?;
    Ok(axum::Json(found.iter().map(view).collect()))
}

/// One rollout: spec, state, per-stage counts, failure rate, why it waits, timeline.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}", tag = "rollouts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Rollout id")),
    responses((status = 200, body = RolloutDetail), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<RolloutDetail>> {
    caller.require(Scope::Fleet)?;
    let stored = load(&state, &id).await?;
    Ok(axum::Json(detail(&state, stored).await?))
}

/// Uploads the rollout's signed policy: the first one of a draft, or a new one (a higher
/// ceiling widens a running rollout). It must name this rollout, its release and board.
#[utoipa::path(put, path = "/api/v1/rollouts/{id}/policy", tag = "rollouts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Rollout id")),
    request_body = PolicyUpload,
    responses((status = 200, body = RolloutDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(upload): Json<PolicyUpload>,
) -> ApiResult<axum::Json<RolloutDetail>> {
    caller.require(Scope::Fleet)?;
    let why = reason(upload.reason)?;
    let policy = authentic(&state, &upload.policy)?;
    let text = serde_json::to_string(&upload.policy).map_err(ApiError::internal)?;
    for _ in 0..store::SWAP_ATTEMPTS {
        let stored = load(&state, &id).await?;
        if matches!(
            stored.progress.state,
            RolloutState::Completed | RolloutState::Aborted
        ) {
            return Err(ApiError::Conflict(format!(
                "rollout {id} is {}: it is final, a new policy changes nothing",
                stored.progress.state
            )));
        }
        Rollout::new(stored.spec.clone(), policy.clone())
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let now = Timestamp::now();
        let changes = Changes {
            policy: Some(text.clone()),
            entries: vec![Entry::new(
                now,
                &caller.label,
                &format!("policy: ceiling {}", policy.ceiling),
                &why,
            )],
            ..Changes::default()
        };
        if store::swap(&state.db, &id, stored.revision, &changes, now)
            .await
            .map_err(internal)?
        {
            tracing::info!(rollout = %id, ceiling = %policy.ceiling, by = %caller.label, "rollout policy uploaded");
            let stored = load(&state, &id).await?;
            return Ok(axum::Json(detail(&state, stored).await?));
        }
    }
    Err(internal(StoreError::Contended(id)))
}

/// Start, pause, resume, advance or abort, by the token's label, for `reason`. A move the
/// state machine does not allow is a 409 saying why.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/{action}", tag = "rollouts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Rollout id"),
           ("action" = inline(Action), Path, description = "start, pause, resume, advance or abort")),
    request_body = CommandRequest,
    responses((status = 200, body = RolloutDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, Action)>,
    Json(request): Json<CommandRequest>,
) -> ApiResult<axum::Json<RolloutDetail>> {
    caller.require(Scope::Fleet)?;
    let why = reason(request.reason)?;
    let detail = run_command(&state, &id, Command::from(action), &caller.label, &why).await?;
    Ok(axum::Json(detail))
}

/// Carries out `command` on rollout `id` for `operator` with reason `why` (the API's and the
/// dashboard's buttons); the rollout after it.
pub async fn run_command(
    state: &AppState,
    id: &str,
    command: Command,
    operator: &str,
    why: &str,
) -> ApiResult<RolloutDetail> {
    for _ in 0..store::SWAP_ATTEMPTS {
        let stored = load(state, id).await?;
        let rollout = match stored.rollout().map_err(ApiError::internal)? {
            Some(r) => r,
            None if command == Command::Start => {
                return Err(ApiError::Conflict(format!(
                    "rollout {id} has no signed policy: sign one with otter-keys sign-rollout \
                     --rollout-id {id} and upload it with PUT /api/v1/rollouts/{id}/policy \
                     before starting"
                )));
            }
            None => Rollout::new(stored.spec.clone(), placeholder_policy(&stored.spec))
                .map_err(ApiError::internal)?,
        };
        let now = Timestamp::now();
        if command == Command::Start
            && let Some(p) = &stored.policy
            && p.message.expires <= u64::try_from(now.as_second()).unwrap_or(0)
        {
            return Err(ApiError::Conflict(format!(
                "rollout {id}'s policy has expired: devices would refuse it; upload a new one"
            )));
        }
        let members = store::members(&state.db, id).await.map_err(internal)?;
        let (progress, entry) = super::command(
            &rollout,
            &stored.progress,
            &members,
            command,
            operator,
            why,
            now,
        )
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
        let changes = Changes {
            progress: Some(progress),
            entries: vec![Entry::from(&entry)],
            ..Changes::default()
        };
        if store::swap(&state.db, id, stored.revision, &changes, now)
            .await
            .map_err(internal)?
        {
            // The reason is the operator's free text: escaped, so it can not forge log lines.
            tracing::info!(rollout = %id, entry = %crate::logsafe::untrusted(&entry), "rollout command");
            let stored = load(state, id).await?;
            return detail(state, stored).await;
        }
    }
    Err(internal(StoreError::Contended(id.to_owned())))
}
