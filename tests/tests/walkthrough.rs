//! The README's walkthrough, command for command, with the real binaries: serve, create a
//! token, sign and publish two releases (the second gets a delta), provision a simulated
//! device, check, reset, confirm, status. If this passes, the README is true.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Makes sure the workspace's binaries are built as `cargo test --workspace` builds them
/// (for the crates' own integration tests; so this is a no-op inside that run, with the same
/// features and profile) and returns the directory holding them.
fn binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace", "--no-run", "--quiet"])
        .status()
        .unwrap();
    assert!(status.success());
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn run(dir: &Path, bin: &Path, args: &[&str]) -> String {
    let out: Output = Command::new(bin)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stdout}\n{}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_walkthrough_works() {
    let bin = binaries();
    let keys = bin.join("otter-keys");
    let server_bin = bin.join("otter-server");
    let agent = bin.join("otter-agent");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A free port for the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = Server(
        Command::new(&server_bin)
            .current_dir(d)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let token = run(
        d,
        &server_bin,
        &[
            "token",
            "create",
            "--scope",
            "publish",
            "--scope",
            "provision",
        ],
    );
    let token = token.trim();

    let mut fw: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(d.join("fw.bin"), &fw).unwrap();
    let key = "otter-data/dev-keys/keys/firmware-1.key";
    run(
        d,
        &keys,
        &[
            "sign-image",
            "--key",
            key,
            "--hardware-id",
            "demo-board",
            "--version",
            "1.0.0",
            "fw.bin",
            "-o",
            "fw-1.0.0.img",
        ],
    );
    fw[4096..4096 + 11].copy_from_slice(b"new feature");
    std::fs::write(d.join("fw.bin"), &fw).unwrap();
    run(
        d,
        &keys,
        &[
            "sign-image",
            "--key",
            key,
            "--hardware-id",
            "demo-board",
            "--version",
            "1.1.0",
            "fw.bin",
            "-o",
            "fw-1.1.0.img",
        ],
    );

    run(
        d,
        &server_bin,
        &[
            "publish",
            "fw-1.0.0.img",
            "--token",
            token,
            "--server",
            &url,
        ],
    );
    let published = run(
        d,
        &server_bin,
        &[
            "publish",
            "fw-1.1.0.img",
            "--token",
            token,
            "--server",
            &url,
        ],
    );
    // One JSON document: the release with the delta the server built from 1.0.0.
    let release: serde_json::Value = serde_json::from_str(&published)
        .unwrap_or_else(|e| panic!("publish printed no single JSON document ({e}):\n{published}"));
    assert_eq!(release["version"], "1.1.0", "{published}");
    assert!(
        published.contains("deltas/demo-board/1.0.0_1.1.0.patch"),
        "{published}"
    );

    run(
        d,
        &keys,
        &[
            "trust-bundle",
            "otter-data/dev-keys",
            "--hardware-id",
            "demo-board",
            "-o",
            "trust",
        ],
    );
    // A published release reaches devices only through a rollout: 1.1.0 to every
    // demo-board, under a policy signed with the development rollout key.
    let fleet = run(
        d,
        &server_bin,
        &["token", "create", "--scope", "fleet", "--label", "demo"],
    );
    run(
        d,
        &keys,
        &[
            "sign-rollout",
            "--key",
            "otter-data/dev-keys/keys/rollout-1.key",
            "--rollout-id",
            "rol_demo",
            "--image",
            "fw-1.1.0.img",
            "--ceiling",
            "100%",
            "-o",
            "demo.policy.json",
        ],
    );
    let rel = release["id"].as_str().unwrap();
    let rollout = |args: &[&str]| {
        let mut all = vec!["rollout"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &url, "--token", fleet.trim()]);
        run(d, &server_bin, &all)
    };
    let created = rollout(&[
        "create",
        "--release",
        rel,
        "--policy",
        "demo.policy.json",
        "--stage",
        "100%:1h",
    ]);
    assert!(created.contains("rol_demo"), "{created}");
    rollout(&["start", "rol_demo"]);

    let a = |args: &[&str]| {
        let mut all = vec!["--state-dir", "device1", "--server", &url];
        all.extend_from_slice(args);
        run(d, &agent, &all)
    };
    assert!(
        a(&[
            "provision",
            "--token",
            token,
            "--hardware-id",
            "demo-board",
            "--serial",
            "SN-0001",
            "--trust",
            "trust"
        ])
        .contains("provisioned as dev_")
    );
    // An image bigger than the simulated 1 984 KiB slot is refused, saying so.
    std::fs::write(d.join("big.bin"), vec![0x5a; 4 << 20]).unwrap();
    run(
        d,
        &keys,
        &[
            "sign-image",
            "--key",
            key,
            "--hardware-id",
            "demo-board",
            "--version",
            "0.9.0",
            "big.bin",
            "-o",
            "big.img",
        ],
    );
    let big = Command::new(&agent)
        .current_dir(d)
        .args(["--state-dir", "device1", "sim", "factory-image", "big.img"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&big.stderr);
    assert!(
        !big.status.success() && err.contains("does not fit slot A"),
        "{err}"
    );
    a(&["sim", "factory-image", "fw-1.0.0.img"]);
    assert!(a(&["sim", "reset"]).contains("booting slot A: 1.0.0"));
    let checked = a(&["check"]);
    assert!(
        checked.contains("updated to 1.1.0 in slot B (delta"),
        "{checked}"
    );
    assert!(a(&["sim", "reset"]).contains("booting slot B: 1.1.0 (on trial)"));
    assert!(a(&["confirm"]).contains("confirmed 1.1.0"));
    let status = a(&["status"]);
    assert!(
        status.contains("slot B        1.1.0 (running, confirmed)"),
        "{status}"
    );
    assert!(a(&["check"]).contains("up to date (running 1.1.0)"));

    // The daemon: one cycle at start, then it waits for its interval; SIGTERM stops it.
    let mut daemon = Command::new(&agent)
        .current_dir(d)
        .args(["--state-dir", "device1", "--server", &url, "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = daemon.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("up to date (running 1.1.0)"))
    {
        let line = rx.recv_timeout(Duration::from_secs(60));
        log.push(line.unwrap_or_else(|_| panic!("no cycle logged:\n{}", log.join("\n"))));
    }
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let status = daemon.wait().unwrap();
    log.extend(rx.iter());
    let log = log.join("\n");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("stopping"), "{log}");
}
