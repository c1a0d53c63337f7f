//! The served OpenAPI document against the server itself: every documented operation is
//! probed (no credentials; admin with a malformed JSON body; admin with the wrong
//! Content-Type) and each answer's status and content type must be documented for it.

mod common;

use common::{DbKind, TestServer};
use serde_json::Value;

/// The media type of a `Content-Type` value, without parameters.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

async fn check(
    s: &TestServer,
    doc: &Value,
    path: &str,
    method: &str,
    request: reqwest::RequestBuilder,
    probe: &str,
) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16().to_string();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| media_type(v.to_str().unwrap()));
    let op = &doc["paths"][path][method];
    let documented = &op["responses"][&status];
    assert!(
        documented.is_object(),
        "{method} {path} ({probe}): {status} is not documented; documented: {:?}",
        op["responses"]
            .as_object()
            .map(|o| o.keys().collect::<Vec<_>>())
    );
    if let (Some(content), Some(got)) = (documented["content"].as_object(), &content_type) {
        let types: Vec<String> = content.keys().map(|k| media_type(k)).collect();
        assert!(
            types.contains(got),
            "{method} {path} ({probe}): {status} answered {got}, documented {types:?}"
        );
    }
    let _ = s;
}

#[tokio::test]
async fn every_documented_operation_answers_only_documented_statuses_and_types() {
    let s = TestServer::start(DbKind::Sqlite).await;
    let doc: Value = s
        .client
        .get(s.at("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 10, "{paths:?}");
    let mut probes = 0;
    for (path, item) in paths {
        let url = s.at(&path.replace(['{', '}'], ""));
        for (method, op) in item.as_object().unwrap() {
            let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let anonymous = s.client.request(m.clone(), &url);
            check(&s, &doc, path, method, anonymous, "anonymous").await;
            let admin = || {
                s.client
                    .request(m.clone(), &url)
                    .bearer_auth(&s.admin_token)
            };
            check(&s, &doc, path, method, admin(), "admin, no body").await;
            if op["requestBody"].is_object() {
                let bad_json = admin().header("content-type", "application/json").body("{");
                check(&s, &doc, path, method, bad_json, "admin, bad JSON").await;
                let wrong_type = admin().header("content-type", "text/plain").body("x");
                check(&s, &doc, path, method, wrong_type, "admin, text/plain").await;
            }
            let has_query = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if has_query {
                let out_of_range = s
                    .client
                    .request(m.clone(), format!("{url}?limit=0"))
                    .bearer_auth(&s.admin_token);
                check(&s, &doc, path, method, out_of_range, "admin, limit=0").await;
            }
            probes += 1;
        }
    }
    assert!(probes > 10);
    // DeviceView.status is null before the first check-in: the document must allow it.
    let status = &doc["components"]["schemas"]["DeviceView"]["properties"]["status"];
    let required = doc["components"]["schemas"]["DeviceView"]["required"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let nullable = status["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "null"))
        || status["oneOf"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["type"] == "null"))
        || status["nullable"] == true;
    assert!(
        nullable || !required.iter().any(|r| r == "status"),
        "DeviceView.status must be nullable or optional: {status} required {required:?}"
    );
    s.stop().await;
}

async fn served_document(s: &TestServer) -> Value {
    s.client
        .get(s.at("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A client that pages with any `limit` the document allows is never refused, and one past
/// the documented bounds is (schemathesis found the bounds missing from the document).
#[tokio::test]
async fn documented_limit_bounds_are_the_enforced_ones() {
    let s = TestServer::start(DbKind::Sqlite).await;
    let doc = served_document(&s).await;
    for path in ["/api/v1/releases", "/api/v1/devices"] {
        let limit = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        let min = limit["schema"]["minimum"].as_i64();
        let max = limit["schema"]["maximum"].as_i64();
        let (Some(min), Some(max)) = (min, max) else {
            panic!("{path}: limit has no documented bounds: {limit}");
        };
        for (value, status) in [(min, 200), (max, 200), (min - 1, 400), (max + 1, 400)] {
            let r = s
                .client
                .get(s.at(&format!("{path}?limit={value}")))
                .bearer_auth(&s.admin_token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{path}?limit={value}");
        }
    }
    s.stop().await;
}

/// What the document says a request body must hold, so generated requests match what the
/// server accepts: a token needs a scope; a device's key, board and serial have a form.
#[tokio::test]
async fn request_body_constraints_are_documented() {
    let s = TestServer::start(DbKind::Sqlite).await;
    let doc = served_document(&s).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["TokenRequest"]["properties"]["scopes"]["minItems"], 1,
        "{}",
        schemas["TokenRequest"]
    );
    let r = s
        .client
        .post(s.at("/api/v1/tokens"))
        .bearer_auth(&s.admin_token)
        .json(&serde_json::json!({"scopes": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let registration = &schemas["Registration"]["properties"];
    for field in ["public_key", "hardware_id", "serial"] {
        assert!(
            registration[field]["pattern"].is_string(),
            "{field}: {}",
            registration[field]
        );
    }
    assert_eq!(registration["serial"]["maxLength"], 128);
    s.stop().await;
}
