//! The vendor and fleet API as the demo's release engineer and fleet manager use it: plain
//! HTTP with a bearer token, the same routes `otter-server publish` and `rollout` call.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::DemoError;

/// A client of one server with one token.
pub struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    /// A client of the server at `base` acting with `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, DemoError> {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send("GET", path, request).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, DemoError> {
        let request = self.client.post(format!("{}{path}", self.base)).json(body);
        self.send("POST", path, request).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, DemoError> {
        let request = self.client.put(format!("{}{path}", self.base)).json(body);
        self.send("PUT", path, request).await
    }

    /// Uploads a signed image and waits until the server has built its deltas; returns the
    /// release with them.
    pub async fn publish(&self, image: Vec<u8>) -> Result<Value, DemoError> {
        let request = (self.client.post(format!("{}/api/v1/releases", self.base)))
            .header("content-type", "application/octet-stream")
            .body(image);
        let release = self.send("POST", "/api/v1/releases", request).await?;
        let id = text(&release["id"])?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let view = self.get(&format!("/api/v1/releases/{id}")).await?;
            match view["delta_job"]["state"].as_str() {
                Some("done") => return Ok(view),
                Some("failed") => {
                    return Err(DemoError::new(format!("the delta job failed: {view}")));
                }
                _ if Instant::now() > deadline => {
                    return Err(DemoError::new(format!("the delta job is stuck: {view}")));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `POST /api/v1/rollouts/{id}/{command}` with a reason; returns the rollout.
    pub async fn command(&self, id: &str, command: &str, reason: &str) -> Result<Value, DemoError> {
        let path = format!("/api/v1/rollouts/{id}/{command}");
        self.post(&path, &json!({ "reason": reason })).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, DemoError> {
        let what = || format!("{method} {path}");
        let response = (request.bearer_auth(&self.token).send().await)
            .map_err(|e| DemoError::new(format!("{}: {e}", what())))?;
        let status = response.status();
        let body =
            (response.text().await).map_err(|e| DemoError::new(format!("{}: {e}", what())))?;
        if !status.is_success() {
            return Err(DemoError::new(format!("{}: {status} {body}", what())));
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

/// A string field, or an error naming the JSON it is missing from.
pub fn text(v: &Value) -> Result<&str, DemoError> {
    v.as_str()
        .ok_or_else(|| DemoError::new(format!("expected a string, found {v}")))
}
