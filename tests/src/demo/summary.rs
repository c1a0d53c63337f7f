//! What the demo shows, read back from the server's API after the story, and the promises
//! it checks: the healthy release reached every device, the broken one was stopped by the
//! server at its first stage, and no device outside that stage ever fetched it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use otter_keys::rollout::{BasisPoints, bucket};
use serde_json::Value;

use super::DemoError;
use super::api::{Api, text};

/// One rollout as it ended.
#[derive(Clone, Debug, Default)]
pub struct RolloutOutcome {
    /// Rollout id.
    pub id: String,
    /// The release's version.
    pub version: String,
    /// `completed`, `paused`, ...
    pub state: String,
    /// The stage it stands at, from 1.
    pub stage: usize,
    /// How many stages it has.
    pub stages: usize,
    /// Devices admitted per stage.
    pub admitted: Vec<u64>,
    /// Members healthy on the release.
    pub healthy: u64,
    /// Members that failed (verify, install, health, ...).
    pub failed: u64,
    /// Members whose trial the bootloader rolled back.
    pub rolled_back: u64,
    /// Who paused it, if it was paused (`engine` when the server did it by itself).
    pub paused_by: Option<String>,
}

impl RolloutOutcome {
    /// Reads rollout `id` from the API.
    pub async fn read(api: &Api, id: &str) -> Result<Self, DemoError> {
        let view = api.get(&format!("/api/v1/rollouts/{id}")).await?;
        Self::from_view(&view)
    }

    /// Reads a rollout from its API view.
    pub fn from_view(view: &Value) -> Result<Self, DemoError> {
        let per_stage = (view["per_stage"].as_array())
            .ok_or_else(|| DemoError::new(format!("no per_stage in {view}")))?;
        let sum = |state: &str| -> u64 {
            (per_stage.iter())
                .map(|s| s["states"][state].as_u64().unwrap_or(0))
                .sum()
        };
        let paused_by = (view["timeline"].as_array().into_iter().flatten())
            .rfind(|e| {
                e["change"]
                    .as_str()
                    .is_some_and(|c| c.contains("-> paused"))
            })
            .map(|e| e["actor"].as_str().unwrap_or("?").to_owned());
        Ok(Self {
            id: text(&view["id"])?.to_owned(),
            version: text(&view["release_version"])?.to_owned(),
            state: text(&view["state"])?.to_owned(),
            stage: usize::try_from(view["stage"].as_u64().unwrap_or(0)).unwrap_or(0),
            stages: view["stages"].as_array().map_or(0, Vec::len),
            admitted: (per_stage.iter())
                .map(|s| s["admitted"].as_u64().unwrap_or(0))
                .collect(),
            healthy: sum("healthy"),
            failed: sum("failed"),
            rolled_back: sum("rolled_back"),
            paused_by,
        })
    }

    /// Devices admitted in all.
    pub fn admitted_total(&self) -> u64 {
        self.admitted.iter().sum()
    }

    /// The first stage that admitted anyone (from 1), where a failing release should stop.
    pub fn first_populated_stage(&self) -> Option<usize> {
        self.admitted.iter().position(|&n| n > 0).map(|k| k + 1)
    }
}

/// The fleet after the story.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Devices in the fleet.
    pub devices: usize,
    /// The rollout that should complete.
    pub healthy: RolloutOutcome,
    /// The rollout that should pause itself.
    pub failing: RolloutOutcome,
    /// Devices per running version, as the server last heard.
    pub versions: BTreeMap<String, usize>,
    /// Devices whose bucket falls inside the failing rollout's current stage.
    pub in_stage: BTreeSet<String>,
    /// Devices that downloaded the failing release (its image or a delta to it).
    pub fetched_failing: BTreeSet<String>,
}

impl Summary {
    /// Reads everything back from the API: both rollouts, every device and its timeline.
    /// `failing_release` is the failing release's view (with its deltas); `cutoffs` the
    /// failing rollout's stage shares.
    pub async fn read(
        api: &Api,
        healthy: &str,
        failing: &str,
        failing_release: &Value,
        cutoffs: &[BasisPoints],
    ) -> Result<Self, DemoError> {
        let healthy = RolloutOutcome::read(api, healthy).await?;
        let failing = RolloutOutcome::read(api, failing).await?;
        let mut failing_targets = vec![text(&failing_release["target_name"])?.to_owned()];
        for delta in failing_release["deltas"].as_array().into_iter().flatten() {
            failing_targets.push(text(&delta["target_name"])?.to_owned());
        }
        let cutoff = (failing.stage.checked_sub(1).and_then(|k| cutoffs.get(k)))
            .ok_or_else(|| DemoError::new(format!("no stage {} of {failing:?}", failing.stage)))?;
        let list = api.get("/api/v1/devices?limit=500").await?;
        let mut summary = Self {
            healthy,
            ..Self::default()
        };
        for device in list.as_array().into_iter().flatten() {
            let id = text(&device["id"])?.to_owned();
            summary.devices += 1;
            let version = device["current_version"].as_str().unwrap_or("unknown");
            *summary.versions.entry(version.to_owned()).or_default() += 1;
            if cutoff.admits(bucket(&id, &failing.id)) {
                summary.in_stage.insert(id.clone());
            }
            let view = api.get(&format!("/api/v1/devices/{id}")).await?;
            let fetched = (view["timeline"].as_array().into_iter().flatten()).any(|e| {
                e["kind"] == "downloading"
                    && (e["event"]["target"].as_str())
                        .is_some_and(|t| failing_targets.iter().any(|f| f == t))
            });
            if fetched {
                summary.fetched_failing.insert(id);
            }
        }
        summary.failing = failing;
        Ok(summary)
    }

    /// The promises the demo shows, each broken one as a sentence (empty when all hold).
    pub fn broken_promises(&self) -> Vec<String> {
        let mut broken = Vec::new();
        let (h, f) = (&self.healthy, &self.failing);
        if h.state != "completed" || h.healthy != self.devices as u64 {
            broken.push(format!(
                "{} should complete with every device healthy: {} with {} of {}",
                h.version, h.state, h.healthy, self.devices
            ));
        }
        if f.state != "paused" || f.paused_by.as_deref() != Some("engine") {
            broken.push(format!(
                "{} should be paused by the server itself: {} (paused by {:?})",
                f.version, f.state, f.paused_by
            ));
        }
        if Some(f.stage) != f.first_populated_stage() {
            broken.push(format!(
                "{} should stop at the first stage that admitted devices, not stage {}",
                f.version, f.stage
            ));
        }
        if f.failed + f.rolled_back != f.admitted_total() || f.admitted_total() == 0 {
            broken.push(format!(
                "every admitted device should fail {} and roll back: {} failed, {} rolled back of {}",
                f.version,
                f.failed,
                f.rolled_back,
                f.admitted_total()
            ));
        }
        let outside: Vec<&String> = self.fetched_failing.difference(&self.in_stage).collect();
        if !outside.is_empty() {
            broken.push(format!(
                "devices outside stage {} downloaded {}: {outside:?}",
                f.stage, f.version
            ));
        }
        if self.versions.get(&h.version) != Some(&self.devices) {
            broken.push(format!(
                "every device should run {} at the end: {:?}",
                h.version, self.versions
            ));
        }
        broken
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, f) = (&self.healthy, &self.failing);
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        writeln!(out, "Summary, read back from the server's API:")?;
        writeln!(
            out,
            "  {}  {}  {}: {} of {} devices healthy (admitted per stage: {})",
            h.version,
            h.id,
            h.state,
            h.healthy,
            self.devices,
            list(&h.admitted)
        )?;
        let by = match f.paused_by.as_deref() {
            Some("engine") => "by the server".to_owned(),
            Some(who) => format!("by {who}"),
            None => "by nobody".to_owned(),
        };
        writeln!(
            out,
            "  {}  {}  {} {by} at stage {} of {}: {} admitted, {} failed, {} rolled back",
            f.version,
            f.id,
            f.state,
            f.stage,
            f.stages,
            f.admitted_total(),
            f.failed,
            f.rolled_back,
        )?;
        let outside = self.devices - self.in_stage.len();
        let outside_fetched = self.fetched_failing.difference(&self.in_stage).count();
        writeln!(
            out,
            "         {} devices downloaded {}; {outside_fetched} of the {outside} outside stage {} did",
            self.fetched_failing.len(),
            f.version,
            f.stage,
        )?;
        let versions: Vec<String> = (self.versions.iter())
            .map(|(v, n)| format!("{n} devices run {v}"))
            .collect();
        writeln!(out, "  fleet: {}", versions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn view(state: &str, admitted: [u64; 3], failed: u64, actor: &str) -> Value {
        json!({
            "id": "rol_x", "release_version": "1.2.0", "state": state, "stage": 1,
            "stages": [{}, {}, {}],
            "per_stage": admitted.iter().enumerate().map(|(k, &n)| json!({
                "admitted": n,
                "states": if k == 0 { json!({"failed": failed}) } else { json!({}) },
            })).collect::<Vec<_>>(),
            "timeline": [{"change": "running -> paused", "actor": actor}],
        })
    }

    fn summary(failing: RolloutOutcome, fetched: &[&str]) -> Summary {
        let healthy = RolloutOutcome {
            version: "1.1.0".into(),
            state: "completed".into(),
            healthy: 3,
            ..RolloutOutcome::default()
        };
        Summary {
            devices: 3,
            healthy,
            failing,
            versions: [("1.1.0".to_owned(), 3)].into(),
            in_stage: ["a".to_owned()].into(),
            fetched_failing: fetched.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_story_as_it_should_end_breaks_no_promise() {
        let failing = RolloutOutcome::from_view(&view("paused", [1, 0, 0], 1, "engine")).unwrap();
        let s = summary(failing, &["a"]);
        assert_eq!(s.broken_promises(), Vec::<String>::new());
        let text = s.to_string();
        assert!(
            text.contains("paused by the server at stage 1 of 3"),
            "{text}"
        );
        assert!(text.contains("0 of the 2 outside stage 1 did"), "{text}");
    }

    #[test]
    fn each_broken_promise_is_named() {
        let by_hand = RolloutOutcome::from_view(&view("paused", [1, 0, 0], 1, "alice")).unwrap();
        assert_eq!(summary(by_hand, &["a"]).broken_promises().len(), 1);
        let leaked = RolloutOutcome::from_view(&view("paused", [1, 0, 0], 1, "engine")).unwrap();
        let broken = summary(leaked, &["a", "b"]).broken_promises();
        assert!(broken[0].contains("outside stage 1"), "{broken:?}");
        let unfailed = RolloutOutcome::from_view(&view("paused", [1, 0, 0], 0, "engine")).unwrap();
        assert_eq!(summary(unfailed, &["a"]).broken_promises().len(), 1);
        let late = RolloutOutcome::from_view(&view("paused", [0, 2, 0], 2, "engine")).unwrap();
        let broken = summary(late, &[]).broken_promises();
        assert!(
            broken.iter().any(|b| b.contains("first stage")),
            "{broken:?}"
        );
    }
}
