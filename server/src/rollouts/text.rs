//! The rollout view of the API (`GET /api/v1/rollouts/{id}`) as terminal text: a state
//! line and a progress bar per stage, and the timeline. Shared by `otter-server rollout
//! show --watch` and the demo, so both draw the same picture of the same JSON.

use serde_json::Value;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// A bar of `width` cells: `#` healthy, `x` failed or rolled back, `-` in progress.
pub fn bar(healthy: u64, failed: u64, admitted: u64, width: u64) -> String {
    if admitted == 0 {
        return ".".repeat(usize::try_from(width).unwrap_or(0));
    }
    let cells = |n: u64| usize::try_from(n * width / admitted).unwrap_or(0);
    let (h, f) = (cells(healthy), cells(failed));
    let rest = usize::try_from(width).unwrap_or(0).saturating_sub(h + f);
    format!("{}{}{}", "#".repeat(h), "x".repeat(f), "-".repeat(rest))
}

/// One line per rollout, for lists: id, state, stage, board and release.
pub fn list_line(r: &Value) -> String {
    format!(
        "{}  {:<9}  stage {}/{}  {} {}",
        text(&r["id"]),
        text(&r["state"]),
        r["stage"],
        r["stages"].as_array().map_or(0, Vec::len),
        text(&r["hardware_id"]),
        text(&r["release_version"]),
    )
}

/// The rollout's state line and one progress line per stage.
pub fn summary(r: &Value) -> String {
    let rate = &r["failure_rate"];
    let mut out = format!(
        "{} {}: stage {}/{}, release {} {}, failures {} of {} ({}, threshold {})\n",
        text(&r["id"]),
        text(&r["state"]),
        r["stage"],
        r["stages"].as_array().map_or(0, Vec::len),
        text(&r["hardware_id"]),
        text(&r["release_version"]),
        rate["failures"],
        rate["admitted"],
        text(&rate["rate"]),
        text(&rate["threshold"]),
    );
    let stages = r["stages"].as_array().cloned().unwrap_or_default();
    for (k, counts) in r["per_stage"].as_array().into_iter().flatten().enumerate() {
        let n = |state: &str| counts["states"][state].as_u64().unwrap_or(0);
        let admitted = counts["admitted"].as_u64().unwrap_or(0);
        let failed = n("failed") + n("rolled_back");
        let states: Vec<String> = ["assigned", "downloading", "installed", "booted"]
            .iter()
            .map(|s| format!("{s} {}", n(s)))
            .collect();
        out.push_str(&format!(
            "  stage {} {:>6} [{}] {admitted} admitted: healthy {}, failed {}, rolled back {}, {}\n",
            k + 1,
            stages.get(k).map_or("?", |s| text(&s["percent"])),
            bar(n("healthy"), failed, admitted, 20),
            n("healthy"),
            n("failed"),
            n("rolled_back"),
            states.join(", "),
        ));
    }
    if let Some(message) = r["waiting"]["message"].as_str() {
        out.push_str(&format!("  waiting: {message}\n"));
    }
    out
}

/// The timeline, oldest change first, one line each: when, who, what and why.
pub fn timeline(r: &Value) -> String {
    let mut out = String::from("timeline:\n");
    for e in r["timeline"].as_array().into_iter().flatten() {
        let at = e["at"]
            .as_i64()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map_or_else(|| "?".to_owned(), |t| t.to_string());
        out.push_str(&format!(
            "  {at} {}: {} ({})\n",
            text(&e["actor"]),
            text(&e["change"]),
            text(&e["reason"]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_split_healthy_failed_and_in_progress() {
        assert_eq!(bar(5, 1, 10, 10), "#####x----");
        assert_eq!(bar(0, 0, 0, 4), "....");
        assert_eq!(bar(10, 0, 10, 4), "####");
    }
}
