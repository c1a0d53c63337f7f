//! The first thing a newcomer runs: the real `otter-demo` binary with `--exit`, judged by
//! the summary it reads back from the server's API.

use std::process::Command;

#[test]
fn the_demo_completes_a_healthy_rollout_and_the_server_stops_a_failing_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_otter-demo"))
        .args(["--exit", "--listen", "127.0.0.1:0", "--devices", "20"])
        .args(["--patience", "90s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "completed: 20 of 20 devices healthy",
        "1.2.0  rol_",
        "paused by the server at stage",
        "fleet: 20 devices run 1.1.0",
        "Dashboard: http://127.0.0.1:",
        "Every promise held.",
    ] {
        assert!(stdout.contains(line), "no {line:?} in\n{stdout}");
    }
    // Some devices fetched 1.2.0 (the first stage's), and none outside that stage did.
    let fetched = (stdout.lines())
        .find(|l| l.contains("devices downloaded 1.2.0"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(fetched.contains("; 0 of the"), "{fetched}");
    assert!(!fetched.trim_start().starts_with("0 devices"), "{fetched}");
}
