//! What an unauthenticated client can send at the HTTP layer: made-up methods and paths do
//! not grow the metrics, every error the stack produces is the documented JSON, the `Bearer`
//! scheme is case-insensitive.

mod common;

use common::{DbKind, TestServer, expect_error};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn metrics(s: &TestServer) -> String {
    s.client
        .get(s.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn request_series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("otter_http_requests_total{"))
        .collect()
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let s = TestServer::start(DbKind::Sqlite).await;
    let send = |method: &str, path: String| {
        s.client
            .request(Method::from_bytes(method.as_bytes()).unwrap(), s.at(&path))
            .send()
    };
    for i in 0..20 {
        send(&format!("BREW{i}"), format!("/made/up/{i}"))
            .await
            .unwrap();
        send(&format!("BREW{i}"), "/healthz".into()).await.unwrap();
        send("GET", format!("/tuf/targets/nothing-{i}"))
            .await
            .unwrap();
        send("GET", format!("/api/v1/devices/dev-{i}"))
            .await
            .unwrap();
        send("POST", format!("/unknown-{i}")).await.unwrap();
    }
    let text = metrics(&s).await;
    let series = request_series(&text);
    for line in &series {
        assert!(!line.contains("BREW"), "method leaked into a label: {line}");
        assert!(
            !line.contains("made/up") && !line.contains("nothing-") && !line.contains("dev-"),
            "raw path leaked into a label: {line}"
        );
    }
    assert!(
        series.len() <= 8,
        "a handful of series, not one per request: {series:#?}"
    );
    assert!(
        series.iter().any(|l| l.contains("method=\"other\"")),
        "{series:#?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let s = TestServer::start(DbKind::Sqlite).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = s
            .client
            .get(s.at("/api/v1/devices"))
            .header("authorization", format!("{scheme} {}", s.admin_token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "scheme {scheme:?}");
    }
    for wrong in [
        format!("Basic {}", s.admin_token),
        format!("Bearer{}", s.admin_token),
        "Bearer".to_owned(),
        s.admin_token.clone(),
    ] {
        let r = s
            .client
            .get(s.at("/api/v1/devices"))
            .header("authorization", wrong)
            .send()
            .await
            .unwrap();
        expect_error(r, 401, "unauthorized").await;
    }
    s.stop().await;
}

/// Sends raw bytes and returns the whole answer (the server closes after an error).
async fn raw(s: &TestServer, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if let Some(end) = find_body_end(&out) {
                        out.truncate(end);
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer to {:?}: {:?}",
                String::from_utf8_lossy(&request[request.len().saturating_sub(90)..]),
                String::from_utf8_lossy(&out)
            )
        });
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a response with a `content-length` ends, once it is all there.
fn find_body_end(bytes: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(bytes);
    let head_end = text.find("\r\n\r\n")? + 4;
    let length: usize = text[..head_end]
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    (bytes.len() >= head_end + length).then_some(head_end + length)
}

/// Asserts `answer` is a complete HTTP response with `status` and a JSON error body.
fn assert_json_error(answer: &str, status: u16) -> serde_json::Value {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "expected {status}: {answer}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    let body: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{answer}"
    );
    body
}

#[tokio::test]
async fn errors_from_the_http_layer_are_json() {
    let s = TestServer::start(DbKind::Sqlite).await;
    let token = &s.admin_token;
    // Malformed request line and headers: hyper's own answers.
    let answer = raw(&s, b"GARBAGE\r\n\r\n").await;
    assert_json_error(&answer, 400);
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let answer = raw(&s, long_uri.as_bytes()).await;
    let status: u16 = answer[9..12].parse().unwrap();
    assert!(matches!(status, 414 | 431 | 400), "{answer}");
    assert_json_error(&answer, status);
    let many = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..200)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let answer = raw(&s, many.as_bytes()).await;
    assert_json_error(&answer, 431);
    // axum's extractor rejections: bad JSON, wrong content type, bad path and query.
    let post = |content_type: &str, body: &str| {
        format!(
            "POST /api/v1/tokens HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
             content-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    for (request, status) in [
        (post("application/json", "{not json"), 400),
        (post("text/plain", "{}"), 400),
        (post("application/json", r#"{"scopes": "admin"}"#), 422),
        (
            format!(
                "GET /api/v1/devices?limit=-1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n"
            ),
            400,
        ),
        (
            format!(
                "GET /api/v1/releases?limit=abc HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n"
            ),
            400,
        ),
        (
            post("application/json", &format!("[{}0]", "0,".repeat(50_000))),
            413,
        ),
    ] {
        let answer = raw(&s, request.as_bytes()).await;
        assert_json_error(&answer, status);
    }
    s.stop().await;
}
