//! The `otter-server` binary as an operator runs it: first start in an empty directory,
//! token creation, graceful shutdown on SIGTERM, JSON logs, and HTTPS with --tls-cert.

mod common;

use std::process::Command;
use std::time::Duration;

use common::binary::{BIN, serve};

fn get(url: &str) -> reqwest::StatusCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().status() })
}

#[test]
fn first_start_creates_everything_and_prints_one_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &[]);
    assert_eq!(get(&format!("{}/healthz", server.url)), 200);
    let output = {
        server.wait_for("POST /api/v1/tokens");
        server.seen.join("\n")
    };
    assert!(output.contains("USING DEVELOPMENT KEYS"), "{output}");
    assert!(output.contains("otter-keys init"), "{output}");
    let token_line = output
        .lines()
        .find(|l| l.trim_start().starts_with("tok_"))
        .unwrap();
    assert!(token_line.trim().contains('.'));
    for created in [
        "otter-data/otter.db",
        "otter-data/dev-keys/keyset.json",
        "otter-data/dev-keys/1.root.json",
        "otter-data/blobs",
    ] {
        assert!(dir.path().join(created).exists(), "{created} missing");
    }
    let log = server.terminate().join("\n");
    assert!(log.contains("shutting down"), "{log}");

    // Second start: the admin token exists, none is printed; JSON logs on request.
    let server = serve(dir.path(), &["--log-format", "json"]);
    let log = server.terminate();
    assert!(
        !log.iter().any(|l| l.trim_start().starts_with("tok_")),
        "{log:?}"
    );
    let json_lines: Vec<serde_json::Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        json_lines.iter().any(|v| v["fields"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("listening on")),
        "{log:?}"
    );
}

#[test]
fn token_create_prints_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "token",
            "create",
            "--scope",
            "fleet",
            "--label",
            "dashboard",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("tok_"), "{token}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("fleet"));

    let server = serve(dir.path(), &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/api/v1/devices", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    server.terminate();

    let bad = Command::new(BIN)
        .current_dir(dir.path())
        .args(["token", "create", "--scope", "root"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("root"));
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("otter.toml"), "listen = 12\n").unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["serve", "--config", "otter.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("otter.toml") && err.contains("listen"),
        "{err}"
    );

    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["serve"])
        .env("OTTER_TIMESTAMP_EXPIRY", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timestamp_expiry"));

    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for shown in [
        "OTTER_DATA_DIR",
        "OTTER_DATABASE_URL",
        "--tls-cert",
        "--config",
        "default: 127.0.0.1:8080",
        "--header-read-timeout",
        "--body-timeout",
        "--body-min-rate",
        "--max-connections",
        "--reserve-connections",
        "--shutdown-timeout",
        "OTTER_SHUTDOWN_TIMEOUT",
    ] {
        assert!(help.contains(shown), "{shown} not in --help:\n{help}");
    }
}

#[test]
fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let server = serve(
        dir.path(),
        &["--tls-cert", "cert.pem", "--tls-key", "key.pem"],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap()])
            .build()
            .unwrap();
        client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    server.terminate();
}

#[test]
fn sigterm_stops_within_the_shutdown_deadline_despite_a_slow_client() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        dir.path(),
        &["--shutdown-timeout", "1s", "--body-timeout", "1h"],
    );
    let token = server.admin_token();
    let mut slow = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    // A request whose body never comes: in flight until the deadline drops it.
    write!(
        slow,
        "POST /api/v1/tokens HTTP/1.1\r\nhost: otter\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let log = server.terminate().join("\n");
    assert!(log.contains("shutdown deadline"), "{log}");
}

/// A well-formed check-in from a device the server does not know, so it is refused and logged.
fn forged_checkin() -> otter_keys::wire::Signed<otter_keys::wire::CheckIn> {
    use otter_keys::wire::Signed;
    let dir = tempfile::tempdir().unwrap();
    let key = otter_keys::signer::FileKey::generate_at(&dir.path().join("k")).unwrap();
    let message = common::checkin_message("x", 1, 1, "1.0.0");
    Signed::sign(message, &key).unwrap()
}

#[test]
fn untrusted_text_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/devices/x%0a2026-01-01T00:00:00Z%20ERROR%20FORGED%1b%5b2J/checkin",
                server.url
            ))
            .json(&forged_checkin())
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_client_error(), "{status}");
    let log = server.terminate();
    assert!(
        log.iter().any(|l| l.contains("check-in refused")),
        "the refusal is logged: {log:?}"
    );
    for line in &log {
        assert!(
            !line.contains("ERROR FORGED") || line.contains("check-in refused"),
            "forged line: {line:?}"
        );
        assert!(!line.contains('\u{1b}'), "raw escape in {line:?}");
    }
}

#[test]
fn warns_loudly_when_the_keys_dir_holds_offline_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("vendor-keys");
    let set = otter_keys::keyset::KeySet::create(&keys, 1, 1).unwrap();
    let expires =
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 86_400).unwrap();
    otter_keys::tuf::write_initial_root(&set, expires).unwrap();
    let server = serve(dir.path(), &["--keys-dir", keys.to_str().unwrap()]);
    let log = server.terminate().join("\n");
    assert!(log.contains("OFFLINE PRIVATE KEYS"), "{log}");
    for offline in ["root-1.key", "firmware-1.key", "rollout-1.key"] {
        assert!(log.contains(offline), "{offline} not named in {log}");
    }

    // The online-only copy the README describes: no warning.
    for offline in ["root-1.key", "firmware-1.key", "rollout-1.key"] {
        std::fs::remove_file(keys.join("keys").join(offline)).unwrap();
    }
    let server = serve(dir.path(), &["--keys-dir", keys.to_str().unwrap()]);
    let log = server.terminate().join("\n");
    assert!(!log.contains("OFFLINE PRIVATE KEYS"), "{log}");
}

#[test]
fn token_list_and_revoke_work_on_the_database_and_hide_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let token = run(&["token", "create", "--scope", "fleet", "--label", "ci"])
        .trim()
        .to_owned();
    let (id, secret) = token.split_once('.').unwrap();
    let listed = run(&["token", "list"]);
    assert!(listed.contains(id) && listed.contains("\"ci\""), "{listed}");
    assert!(!listed.contains(secret), "the secret is listed: {listed}");
    run(&["token", "revoke", id]);
    let listed: serde_json::Value = serde_json::from_str(&run(&["token", "list"])).unwrap();
    assert!(listed[0]["revoked_at"].is_i64(), "{listed}");
    let missing = Command::new(BIN)
        .current_dir(dir.path())
        .args(["token", "revoke", "tok_nope"])
        .output()
        .unwrap();
    assert!(!missing.status.success());

    // The publish token comes from OTTER_TOKEN, and --help does not print its value.
    let help = Command::new(BIN)
        .args(["publish", "--help"])
        .env("OTTER_TOKEN", "tok_x.supersecret")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("OTTER_TOKEN") && !help.contains("supersecret"),
        "{help}"
    );
}
