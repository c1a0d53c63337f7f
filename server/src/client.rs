//! `otter-server publish`: a small HTTP client of the vendor API.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

type AnyError = Box<dyn std::error::Error>;

/// Uploads `image` and prints the release as one JSON document: with `wait`, once its
/// delta job has ended (so it lists the deltas built); without, as uploaded.
pub async fn publish(server: &str, token: &str, image: &Path, wait: bool) -> Result<(), AnyError> {
    let base = server.trim_end_matches('/');
    let bytes = tokio::fs::read(image)
        .await
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let client = reqwest::Client::new();
    eprintln!(
        "uploading {} ({} bytes) to {base}",
        image.display(),
        bytes.len()
    );
    let response = client
        .post(format!("{base}/api/v1/releases"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await?;
    let release = json_or_error(response).await?;
    let (Some(id), true) = (release["id"].as_str(), wait) else {
        println!("{}", serde_json::to_string_pretty(&release)?);
        return Ok(());
    };
    let Some(job) = release["delta_job"]["id"].as_str() else {
        println!("{}", serde_json::to_string_pretty(&release)?);
        return Ok(());
    };
    eprintln!("building deltas (job {job})...");
    loop {
        let response = client
            .get(format!("{base}/api/v1/delta-jobs/{job}"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = json_or_error(response).await?;
        let state = status["state"].as_str().unwrap_or("unknown");
        if state != "queued" && state != "running" {
            eprintln!(
                "delta job {state}: {}",
                status["message"].as_str().unwrap_or("")
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let response = client
        .get(format!("{base}/api/v1/releases/{id}"))
        .bearer_auth(token)
        .send()
        .await?;
    let release = json_or_error(response).await?;
    println!("{}", serde_json::to_string_pretty(&release)?);
    Ok(())
}

/// Uploads release metadata signed offline (`otter-keys sign-release`) and prints what the
/// server now serves.
pub async fn publish_release(server: &str, token: &str, file: &Path) -> Result<(), AnyError> {
    let base = server.trim_end_matches('/');
    let body = tokio::fs::read_to_string(file)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    eprintln!("uploading release metadata {} to {base}", file.display());
    let response = reqwest::Client::new()
        .put(format!("{base}/api/v1/tuf/release"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let published = json_or_error(response).await?;
    println!("{}", serde_json::to_string_pretty(&published)?);
    Ok(())
}

async fn json_or_error(response: reqwest::Response) -> Result<Value, AnyError> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!(
            "server answered {status}: {}",
            body["message"].as_str().unwrap_or("(no message)")
        )
        .into())
    }
}
