//! API fuzzing (issue 10): schemathesis generates requests from the OpenAPI document the
//! real `otter-server` binary serves and sends them, with an admin token, to a server that
//! holds real data (two releases and their delta job, a provisioned device that has checked
//! in, a running rollout). Every answer must conform to the document: no 5xx, only documented statuses, the
//! documented content types, headers and body schemas.
//!
//! schemathesis comes from PyPI (`.ci/run` installs the pinned version). Without it the
//! test skips with a reason, except under `OTTER_REQUIRE_ALL=1`, where it fails.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::binary::{BIN, serve};
use otter_boot::image::{HardwareId, Version};
use otter_keys::image::{ImageSpec, sign_image};
use otter_keys::keyset::KeySet;
use otter_keys::signer::{FileKey, Signer};
use otter_keys::wire::Signed;
use serde_json::{Value, json};

/// schemathesis' CLI, through the interpreter whose packages `.ci/run` installs into.
fn schemathesis() -> Command {
    let mut command = Command::new("python3");
    command.args(["-m", "schemathesis.cli"]);
    command
}

/// Test cases per operation and phase (coverage, fuzzing) in each round; fuzzing and
/// stateful testing repeat rounds until a run's time budget is spent.
const MAX_EXAMPLES: &str = "40";

/// One schemathesis run: a name (its report is `NAME.ndjson`), its time budget in seconds
/// (the two runs take about a minute together), and the operations it selects.
struct Run<'a> {
    name: &'a str,
    max_time: &'a str,
    filter: &'a [&'a str],
}

/// schemathesis' version, or why it cannot run.
fn schemathesis_version() -> Result<String, String> {
    let out = schemathesis()
        .arg("--version")
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Signs an image of board `fuzz-board` with the server's development firmware key.
fn signed_image(dir: &Path, version: &str, payload: &[u8]) -> std::path::PathBuf {
    let keys = KeySet::open(&dir.join("otter-data/dev-keys")).unwrap();
    let spec = ImageSpec {
        hardware_id: HardwareId::new("fuzz-board").unwrap(),
        version: version.parse::<Version>().unwrap(),
        security_counter: 1,
    };
    let image = sign_image(payload, &spec, &keys.signing_firmware_key().unwrap()).unwrap();
    let path = dir.join(format!("fw-{version}.img"));
    std::fs::write(&path, image).unwrap();
    path
}

/// Publishes with the `publish` command, which waits for the release's deltas.
fn publish(dir: &Path, url: &str, token: &str, image: &Path) -> Value {
    let out = Command::new(BIN)
        .args(["publish", image.to_str().unwrap(), "--server", url])
        .env("OTTER_TOKEN", token)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Provisions a device and has it check in once, so it has a status and an assignment.
async fn provision_and_check_in(url: &str, token: &str, key: &FileKey) -> String {
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{url}/api/v1/devices"))
        .bearer_auth(token)
        .json(&json!({
            "public_key": hex::encode(key.public_key()),
            "hardware_id": "fuzz-board",
            "serial": "FUZZ-0001",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let device: Value = r.json().await.unwrap();
    let id = device["id"].as_str().unwrap().to_owned();
    let checkin =
        common::checkin_message(&id, 1, jiff::Timestamp::now().as_second() as u64, "1.0.0");
    let r = client
        .post(format!("{url}/api/v1/devices/{id}/checkin"))
        .json(&Signed::sign(checkin, key).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    id
}

/// Runs schemathesis against the server at `url` with `token`; panics with its findings if
/// any answer broke the document. Returns what each operation's test cases came to.
fn fuzz(dir: &Path, url: &str, token: &str, run: &Run) -> HashMap<String, Tested> {
    let report = dir.join(format!("{}.ndjson", run.name));
    let out = schemathesis()
        .current_dir(dir)
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .args(["run", &format!("{url}/api/v1/openapi.json"), "--url", url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", MAX_EXAMPLES, "--max-time", run.max_time])
        // The same test cases every run, so a CI failure replays on a developer's machine.
        .arg("--generation-deterministic")
        .args(["--workers", "2", "--request-timeout", "10", "--no-color"])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&report)
        .args(run.filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "schemathesis ({}) found answers the document does not allow:\n{}\n{}",
        run.name,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    tested(&std::fs::read_to_string(&report).unwrap())
}

/// The real names the seeded server knows, by the path parameter they fill.
struct Seeded {
    /// Release, delta job, device and rollout ids (`{id}`).
    ids: Vec<String>,
    /// TUF metadata files (`{file}`).
    metadata: Vec<String>,
    /// Target paths, plain and hash-prefixed (`{path}`).
    targets: Vec<String>,
}

/// Writes `dir/schemathesis.toml`: the committed settings (every check is on unless they
/// turn it off for an operation), and the seeded names as dictionaries that fill each path
/// parameter half the time, so requests reach real resources as well as missing ones.
fn write_config(dir: &Path, seeded: &Seeded) {
    let committed = include_str!("api_fuzz/schemathesis.toml");
    let list = |values: &[String]| serde_json::to_string(values).unwrap();
    let config = format!(
        "{committed}\n\
         [dictionaries.ids]\nvalues = {}\n\
         [dictionaries.metadata]\nvalues = {}\n\
         [dictionaries.targets]\nvalues = {}\n\n\
         [parameters]\n\
         \"path.id\" = {{ dictionary = \"ids\", probability = 0.5 }}\n\
         \"path.file\" = {{ dictionary = \"metadata\", probability = 0.5 }}\n\
         \"path.path\" = {{ dictionary = \"targets\", probability = 0.5 }}\n",
        list(&seeded.ids),
        list(&seeded.metadata),
        list(&seeded.targets),
    );
    std::fs::write(dir.join("schemathesis.toml"), config).unwrap();
}

/// A target's plain name and its consistent-snapshot name (`dir/HASH.file`).
fn target_paths(name: &str, sha256: &str) -> [String; 2] {
    let (parent, file) = name.rsplit_once('/').unwrap();
    [name.to_owned(), format!("{parent}/{sha256}.{file}")]
}

/// What one operation's test cases came to.
#[derive(Debug, Default)]
struct Tested {
    /// Cases whose response was checked against the document.
    checked: u64,
    /// Cases answered with a 2xx.
    succeeded: u64,
}

/// Per operation (`"GET /healthz"`, ...), from schemathesis' NDJSON event stream: the phases
/// that test one operation at a time.
fn tested(ndjson: &str) -> HashMap<String, Tested> {
    let mut tested: HashMap<String, Tested> = HashMap::new();
    for line in ndjson.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let finished = &event["ScenarioFinished"];
        if finished.is_null() || finished["phase"] == "stateful" {
            continue;
        }
        let recorder = &finished["recorder"];
        let entry = tested
            .entry(recorder["label"].as_str().unwrap().to_owned())
            .or_default();
        let values = |key: &str| {
            recorder[key]
                .as_object()
                .into_iter()
                .flat_map(|o| o.values())
        };
        entry.checked += values("checks")
            .flat_map(|checks| checks.as_array().into_iter().flatten())
            .filter(|check| check["name"] == "response_schema_conformance")
            .count() as u64;
        entry.succeeded += values("interactions")
            .filter(|i| {
                i["response"]["status_code"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .count() as u64;
    }
    tested
}

/// Every operation of the served document, as schemathesis labels them.
async fn operations(url: &str) -> Vec<String> {
    let doc: Value = reqwest::get(format!("{url}/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_ascii_uppercase()));
        }
    }
    operations
}

/// A second admin token, for the run that revokes tokens.
async fn new_admin_token(url: &str, token: &str) -> String {
    let created: Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/tokens"))
        .bearer_auth(token)
        .json(&json!({"scopes": ["admin"], "label": "api fuzzing: revoke"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["token"].as_str().unwrap().to_owned()
}

/// The status of an authenticated request with `token`.
async fn status_with(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/api/v1/tokens"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn fuzzed_requests_get_only_documented_answers_and_never_a_5xx() {
    let version = match schemathesis_version() {
        Ok(version) => version,
        Err(why) => {
            assert!(
                std::env::var("OTTER_REQUIRE_ALL").as_deref() != Ok("1"),
                "OTTER_REQUIRE_ALL=1 but schemathesis is missing (pip install schemathesis): {why}"
            );
            eprintln!("skipping API fuzzing: schemathesis is missing ({why})");
            return;
        }
    };
    eprintln!("API fuzzing with {version}");

    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &[]);
    let token = server.admin_token();
    let url = server.url.clone();

    // Real data for the routes to find: two releases (so a delta job), a device that checked in.
    let payload: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 31 % 251) as u8).collect();
    let first = publish(
        dir.path(),
        &url,
        &token,
        &signed_image(dir.path(), "1.0.0", &payload),
    );
    let mut newer = payload.clone();
    newer[4096..4107].copy_from_slice(b"new feature");
    let second = publish(
        dir.path(),
        &url,
        &token,
        &signed_image(dir.path(), "1.1.0", &newer),
    );
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    let delta = &second["deltas"][0];
    assert!(delta.is_object(), "no delta: {second}");
    let device_key = FileKey::generate_at(&dir.path().join("device.key")).unwrap();
    let device = block_on(provision_and_check_in(&url, &token, &device_key));
    // A running rollout of the second release, so the rollout routes find one.
    let keys = KeySet::open(&dir.path().join("otter-data/dev-keys")).unwrap();
    let rollout = block_on(common::roll_out_at(
        &reqwest::Client::new(),
        &url,
        &token,
        &keys,
        &text(&second["id"]),
        "1h",
    ));
    let seeded = Seeded {
        ids: vec![
            text(&first["id"]),
            text(&second["id"]),
            text(&second["delta_job"]["id"]),
            device,
            rollout,
        ],
        metadata: [
            "timestamp.json",
            "root.json",
            "1.root.json",
            "snapshot.json",
            "targets.json",
        ]
        .map(String::from)
        .to_vec(),
        targets: [&first, &second, delta]
            .into_iter()
            .flat_map(|t| target_paths(&text(&t["target_name"]), &text(&t["sha256"])))
            .collect(),
    };
    write_config(dir.path(), &seeded);
    let operations = block_on(operations(&url));
    assert!(operations.len() > 10, "{operations:?}");

    // The fuzzer lists tokens and revokes the ids it finds, its own among them: revoking runs
    // last, with the creating of tokens to revoke and a token of its own.
    let revoke = "DELETE /api/v1/tokens/{id}";
    let mut cases = fuzz(
        dir.path(),
        &url,
        &token,
        &Run {
            name: "all-but-revoke",
            max_time: "50",
            filter: &["--exclude-name", revoke],
        },
    );
    assert_eq!(
        block_on(status_with(&url, &token)),
        200,
        "the fuzzing token must have worked throughout the run"
    );
    let revoker = block_on(new_admin_token(&url, &token));
    let revoking = fuzz(
        dir.path(),
        &url,
        &revoker,
        &Run {
            name: "revoke",
            max_time: "10",
            filter: &[
                "--include-name",
                revoke,
                "--include-name",
                "POST /api/v1/tokens",
            ],
        },
    );
    for (operation, more) in revoking {
        let entry = cases.entry(operation).or_default();
        entry.checked += more.checked;
        entry.succeeded += more.succeeded;
    }

    let log = server.terminate().join("\n");
    assert!(!log.contains("internal error"), "server log:\n{log}");
    for operation in &operations {
        let tested = cases.get(operation);
        eprintln!("{operation}: {tested:?}");
        let tested = tested.unwrap_or_else(|| panic!("{operation} was not tested: {cases:?}"));
        assert!(tested.checked > 0, "{operation}: no response was checked");
        // Reads of the seeded resources must have found them, not only 404s.
        if operation.starts_with("GET ") && operation.contains('{') {
            assert!(
                tested.succeeded > 0,
                "{operation}: never found the seeded data"
            );
        }
    }
}
