//! Telegram Bot API `sendMessage`, HTML parse mode, the text escaped.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{SendError, body_text, judge, retry_after, transport};
use crate::notify::Delivery;

/// Sends `d` to `chat_id`. The bot token is part of the URL, so no error names the URL.
pub async fn send(
    client: &reqwest::Client,
    api_url: &str,
    token: &SecretString,
    chat_id: &str,
    d: &Delivery,
) -> Result<(), SendError> {
    let url = format!(
        "{}/bot{}/sendMessage",
        api_url.trim_end_matches('/'),
        token.expose_secret()
    );
    let body = json!({
        "chat_id": chat_id,
        "text": d.event.html(),
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    });
    let resp = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| transport("telegram", e))?;
    let status = resp.status();
    let header_after = retry_after(resp.headers());
    let text = body_text(resp).await;
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    // {"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3",
    //  "parameters":{"retry_after":3}}
    let after = reply["parameters"]["retry_after"]
        .as_u64()
        .map(Duration::from_secs)
        .or(header_after);
    let detail = reply["description"].as_str().unwrap_or("");
    judge("telegram", status, after, detail)?;
    if reply["ok"] == false {
        return Err(SendError::Permanent(format!(
            "telegram: {}",
            crate::sanitize::clean_max(detail, 300)
        )));
    }
    Ok(())
}
