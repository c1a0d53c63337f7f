//! Routes every client meets first: health, metrics, OpenAPI, tokens, JSON errors.

mod common;

use common::{TestServer, databases, expect_error};
use serde_json::json;

#[tokio::test]
async fn health_metrics_openapi_and_json_errors() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let health: serde_json::Value = s
            .client
            .get(s.at("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok");

        let r = s.client.get(s.at("/no/such/route")).send().await.unwrap();
        expect_error(r, 404, "not_found").await;
        let r = s.client.delete(s.at("/healthz")).send().await.unwrap();
        expect_error(r, 405, "method_not_allowed").await;

        let doc: serde_json::Value = s
            .client
            .get(s.at("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["paths"]["/api/v1/tokens"]["post"].is_object(), "{doc}");
        assert!(doc["paths"]["/healthz"]["get"].is_object());

        let metrics = s
            .client
            .get(s.at("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(
                "otter_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            ),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn tokens_are_scoped_and_checked() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let url = s.at("/api/v1/tokens");
        let body = json!({"scopes": ["publish"], "label": "ci"});

        let r = s.client.post(&url).json(&body).send().await.unwrap();
        expect_error(r, 401, "unauthorized").await;
        let r = s
            .client
            .post(&url)
            .bearer_auth("tok_nope.secret")
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(r, 401, "unauthorized").await;
        let admin_prefix = s.admin_token.split('.').next().unwrap();
        let r = s
            .client
            .post(&url)
            .bearer_auth(format!("{admin_prefix}.wrong"))
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(r, 401, "unauthorized").await;

        let r = s
            .client
            .post(&url)
            .bearer_auth(&s.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let created: serde_json::Value = r.json().await.unwrap();
        let publish = created["token"].as_str().unwrap().to_owned();
        assert_eq!(created["scopes"], json!(["publish"]));

        // A publish token may not create tokens.
        let r = s
            .client
            .post(&url)
            .bearer_auth(&publish)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;

        // Malformed bodies get JSON errors with the right status.
        let r = s
            .client
            .post(&url)
            .bearer_auth(&s.admin_token)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad_request").await;
        let r = s
            .client
            .post(&url)
            .bearer_auth(&s.admin_token)
            .json(&json!({"scopes": ["root"]}))
            .send()
            .await
            .unwrap();
        expect_error(r, 422, "unprocessable").await;
        let r = s
            .client
            .post(&url)
            .bearer_auth(&s.admin_token)
            .json(&json!({"scopes": []}))
            .send()
            .await
            .unwrap();
        expect_error(r, 422, "unprocessable").await;
        let huge = json!({"scopes": ["fleet"], "label": "x".repeat(100_000)});
        let r = s
            .client
            .post(&url)
            .bearer_auth(&s.admin_token)
            .json(&huge)
            .send()
            .await
            .unwrap();
        expect_error(r, 413, "payload_too_large").await;

        // Secrets are stored hashed: the database never holds the token text.
        let stored: Vec<(String,)> = sqlx::query_as("SELECT secret_sha256 FROM tokens")
            .fetch_all(s.state.db.pool())
            .await
            .unwrap();
        let secret = publish.split('.').nth(1).unwrap();
        assert!(stored.iter().all(|(h,)| h != secret && h.len() == 64));
        s.stop().await;
    }
}
