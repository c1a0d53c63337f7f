//! The real `otter-agent` binary: `run` stops on SIGTERM in the middle of a cycle (here a
//! download from a server that stalls forever, in the second cycle, after a failed first
//! one), and a second agent on the same state dir is refused while the first runs.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy, Route};
use common::{Fleet, agent_config_file, binaries, firmware};
use otter_keys::keyset::{KeySet, Role};

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_run_mid_download_and_a_second_agent_is_refused() {
    let agent_bin = binaries().join("otter-agent");
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(128 * 1024, 41));
    let v2 = fleet.image("1.1.0", &firmware(128 * 1024, 42));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2).await;
    let director = KeySet::open(&fleet.state.keys.dir)
        .unwrap()
        .role_key(Role::Director)
        .unwrap();
    let proxy = Proxy::start(&fleet.url, director).await;
    let device = fleet.device("SN-proc-1", &proxy.url, &v1).await;
    // Generous timeouts: only the signal can end the stalled download.
    let config = agent_config_file(
        &device,
        "interval = \"1h\"\njitter = \"1s\"\nmax_backoff = \"1s\"\n\
         [http]\nidle_timeout = \"1h\"\n[download]\nmin_speed = 0\n",
    );
    // The first cycle fails at the check-in (and the agent backs off 1 s); the second
    // stalls in the download after 1 000 bytes.
    proxy.inject(Route::CheckIn, Fault::Status(503), 1);
    proxy.inject(Route::Full, Fault::Stall(1000), 1);
    let log = device.state_dir().join("run.log");
    let mut run = Command::new(&agent_bin)
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("OTTER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let partial = || -> u64 {
        std::fs::read_dir(device.state_dir().join("downloads"))
            .map(|dir| dir.map(|e| e.unwrap().metadata().unwrap().len()).sum())
            .unwrap_or(0)
    };
    wait_until("the stalled download", || {
        proxy.stalls() == 1 && partial() == 1000
    });

    let second = Command::new(&agent_bin)
        .args(["--config", config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another otter-agent")
            && stderr.contains(&format!("pid {}", run.id())),
        "{stderr}"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut status = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while status.is_none() && Instant::now() < deadline {
        status = run.try_wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        let _ = run.kill();
        let _ = run.wait();
        panic!(
            "run ignored SIGTERM mid-download:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}:\n{text}");
    assert!(
        text.contains("stopping (signal received during an update cycle)"),
        "{text}"
    );
    // The partial download is kept for the next start, and the lock is free again.
    assert_eq!(partial(), 1000);
    let status = Command::new(&agent_bin)
        .args(["--config", config.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    fleet.stop().await;
}
