//! A server whose online keys (TUF targets, snapshot, timestamp and the director) all live in
//! a PKCS#11 token of their own, apart from the root, firmware and rollout keys' token:
//! SoftHSM2 stands in for the HSMs. `otter-keys init --pkcs11 --pkcs11-online` makes the key
//! set, the real `otter-server` binary serves with it, and the real agent checks in: its TUF
//! client and its director check both verify signatures made inside the token. A key record
//! edited to name another role's key stops the server.

mod common;
#[path = "../../keys/tests/softhsm/mod.rs"]
mod softhsm;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use otter_agent::cycle::Outcome;
use softhsm::{PIN, SoftHsm, TOKEN};

const ONLINE: &str = "otter-online";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ok(output: std::process::Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_signs_tuf_and_assignments_with_keys_that_stay_in_the_token() {
    let Some(hsm) = SoftHsm::start() else { return };
    let bin = common::binaries();
    let keys = bin.join("otter-keys");
    let server = bin.join("otter-server");
    let keydir = hsm.path("vendor-keys");
    hsm.add_token(ONLINE, PIN);
    let (offline, online) = (
        format!("pkcs11:token={TOKEN}"),
        format!("pkcs11:token={ONLINE}"),
    );
    let x = hsm.path("x");
    let both = [
        "init",
        &x,
        "--pkcs11",
        &offline,
        "--pkcs11-online",
        &offline,
    ];
    let same = hsm.command(&keys).args(both).output().unwrap();
    assert!(String::from_utf8_lossy(&same.stderr).contains("need a token of their own"));
    let init = [
        "init",
        &keydir,
        "--pkcs11",
        &offline,
        "--pkcs11-online",
        &online,
    ];
    ok(hsm.command(&keys).args(init).output().unwrap());
    let set = otter_keys::keyset::KeySet::open(Path::new(&keydir)).unwrap();
    let record = |name: &str| std::fs::read_to_string(set.token_record_path(name)).unwrap();
    let m = set.manifest();
    for name in [&m.targets, &m.snapshot, &m.timestamp, &m.director] {
        assert!(record(name).starts_with(&format!("{online};")), "{name}");
    }
    for name in m.root.keys.iter().chain(&m.firmware).chain(&m.rollout) {
        assert!(record(name).starts_with(&format!("{offline};")), "{name}");
    }
    let trust = hsm.path("trust");
    let args = [
        "trust-bundle",
        &keydir,
        "--hardware-id",
        "hsm-board",
        "-o",
        &trust,
    ];
    ok(hsm.command(&keys).args(args).output().unwrap());
    let no_files = std::fs::read_dir(Path::new(&keydir).join("keys")).unwrap();
    assert!(
        !no_files
            .map(|e| e.unwrap().file_name())
            .any(|n| n.to_string_lossy().ends_with(".key")),
        "no private key file"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let data = hsm.path("data");
    let serve = ["serve", "--data-dir", &data, "--keys-dir", &keydir];
    let _server = Server(
        hsm.command(&server)
            .args(serve)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{url}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A TUF client trusting root v1 loads the repository the server signed in the token.
    let root = std::fs::read(Path::new(&keydir).join("1.root.json")).unwrap();
    let metadata = url::Url::parse(&format!("{url}/tuf/metadata/")).unwrap();
    let targets = url::Url::parse(&format!("{url}/tuf/targets/")).unwrap();
    tough::RepositoryLoader::new(&root, metadata, targets)
        .load()
        .await
        .expect("the token-signed repository verifies");

    // A device checks in: the assignment verifies against the director key in its bundle.
    let args = [
        "token",
        "create",
        "--data-dir",
        &data,
        "--scope",
        "provision",
    ];
    let provision = ok(hsm.command(&server).args(args).output().unwrap());
    let device = tempfile::tempdir().unwrap();
    let request = otter_agent::provision::Request {
        server: &url,
        token: provision.trim(),
        hardware_id: "hsm-board",
        serial: "SN-HSM-1",
        trust: Path::new(&trust),
    };
    otter_agent::provision::provision(device.path(), &request)
        .await
        .unwrap();
    let config = otter_agent::config::Config::simulated(device.path());
    let agent = otter_agent::Agent::open(config).unwrap();
    let image = {
        // A factory image signed by the token's firmware key.
        let set = otter_keys::keyset::KeySet::open(Path::new(&keydir)).unwrap();
        let record = set.token_record_path(&set.manifest().firmware[0]);
        let uri = std::fs::read_to_string(record).unwrap();
        std::fs::write(hsm.path("fw.bin"), vec![1u8; 4096]).unwrap();
        let out = hsm.path("fw.img");
        let args = [
            "sign-image",
            "--key",
            uri.trim(),
            "--hardware-id",
            "hsm-board",
        ];
        let log = hsm.path("signed-images.json");
        let more = [
            "--version",
            "1.0.0",
            "--log",
            &log,
            &hsm.path("fw.bin"),
            "-o",
            &out,
        ];
        ok(hsm.command(&keys).args(args).args(more).output().unwrap());
        out
    };
    otter_agent::sim::write_factory_image(agent.device(), Path::new(&image)).unwrap();
    otter_agent::sim::reset(agent.device()).unwrap();
    let outcome = agent.check().await.unwrap();
    assert!(matches!(outcome, Outcome::UpToDate { .. }), "{outcome:?}");

    // The director's record edited to name the timestamp key: the server refuses to start.
    drop(_server);
    std::fs::write(set.token_record_path(&m.director), record(&m.timestamp)).unwrap();
    let refused = hsm
        .command(&server)
        .args(serve)
        .args(["--listen", "127.0.0.1:0"])
        .output();
    let refused = refused.unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    let director = &m.director;
    assert!(
        stderr.contains(&format!("is not the one keys/{director}.pub names")),
        "{stderr}"
    );
}
