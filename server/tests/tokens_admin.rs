//! Listing and revoking tokens over the API: admin only, no secrets shown, a revoked token is
//! refused on its very next request.

mod common;

use common::{TestServer, databases, expect_error};
use otter_server::auth::Scope;
use serde_json::Value;

#[tokio::test]
async fn tokens_are_listed_without_secrets_and_revoked_at_once() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let fleet_id = fleet.split_once('.').unwrap().0.to_owned();
        let devices = |token: &str| {
            s.client
                .get(s.at("/api/v1/devices"))
                .bearer_auth(token)
                .send()
        };
        assert_eq!(devices(&fleet).await.unwrap().status(), 200);

        let list = s
            .client
            .get(s.at("/api/v1/tokens"))
            .bearer_auth(&s.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(list.status(), 200);
        let text = list.text().await.unwrap();
        for secret in [&fleet, &s.admin_token] {
            let secret_part = secret.split_once('.').unwrap().1;
            assert!(!text.contains(secret_part), "a secret is listed: {text}");
        }
        let tokens: Vec<Value> = serde_json::from_str(&text).unwrap();
        let listed = tokens
            .iter()
            .find(|t| t["id"] == fleet_id.as_str())
            .unwrap();
        assert_eq!(listed["scopes"], serde_json::json!(["fleet"]));
        assert!(listed.get("revoked_at").is_none(), "{listed}");

        // Only admin may list or revoke.
        let r = s
            .client
            .get(s.at("/api/v1/tokens"))
            .bearer_auth(&fleet)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let revoke = |id: &str, token: &str| {
            s.client
                .delete(s.at(&format!("/api/v1/tokens/{id}")))
                .bearer_auth(token)
                .send()
        };
        expect_error(revoke(&fleet_id, &fleet).await.unwrap(), 403, "forbidden").await;

        assert_eq!(
            revoke(&fleet_id, &s.admin_token).await.unwrap().status(),
            204
        );
        let message = expect_error(devices(&fleet).await.unwrap(), 401, "unauthorized").await;
        assert!(message.contains("revoked"), "{message}");
        // Again: still revoked, still fine; unknown: 404.
        assert_eq!(
            revoke(&fleet_id, &s.admin_token).await.unwrap().status(),
            204
        );
        expect_error(
            revoke("tok_nope", &s.admin_token).await.unwrap(),
            404,
            "not_found",
        )
        .await;

        let tokens: Vec<Value> = s
            .client
            .get(s.at("/api/v1/tokens"))
            .bearer_auth(&s.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed = tokens
            .iter()
            .find(|t| t["id"] == fleet_id.as_str())
            .unwrap();
        assert!(listed["revoked_at"].is_i64(), "{listed}");
        s.stop().await;
    }
}
