//! The broker's HTTP client for its internal calls (heartbeats and AlterPartition to the
//! controller, follower fetches to leaders): one POST that decodes either the answer (JSON, or
//! the replica fetch's frames, which the follower decodes) or the node's JSON error. Transport failures become REQUEST_TIMED_OUT, whose outcome is unknown.

use std::time::Duration;

use crate::api::*;

/// POSTs JSON and decodes either the answer or the node's error body.
pub async fn post_json<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &Req,
    timeout: Duration,
) -> Result<Resp, ApiError> {
    let bytes = post(http, url, body, timeout).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("{url}: bad answer: {e}")))
}

/// POSTs JSON and returns a successful answer's body as it is, or decodes the node's error body.
pub async fn post<Req: serde::Serialize>(
    http: &reqwest::Client,
    url: &str,
    body: &Req,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    let resp = http
        .post(url)
        .json(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| ApiError::new(ErrorCode::RequestTimedOut, format!("{url}: {e}")))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ApiError::new(ErrorCode::RequestTimedOut, format!("{url}: {e}")))?;
    if status.is_success() {
        Ok(bytes)
    } else {
        Err(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            ApiError::invalid(format!(
                "{url}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))
        }))
    }
}
