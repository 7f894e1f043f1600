//! The sinks: each sends one delivery and says whether the receiver accepted it, or when to
//! try again, or that trying again cannot help.

pub mod command;
pub mod telegram;
pub mod webhook;

use std::time::Duration;

use super::{Delivery, SinkConfig, SinkTarget};

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again: after `after` when the receiver said so (429 `Retry-After`, Telegram's
    /// `parameters.retry_after`), else after the sink's backoff.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// The receiver refused the message itself (4xx other than 408 and 429): give it up.
    Permanent(String),
}

impl SendError {
    /// The error's sentence.
    pub fn message(&self) -> &str {
        match self {
            SendError::Retry { error, .. } | SendError::Permanent(error) => error,
        }
    }
}

/// An HTTP client for one sink: time limits, no redirects (a hook URL is a secret; a redirect
/// would hand the body to another host).
pub fn http_client(sink: &SinkConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10).min(sink.timeout))
        .timeout(sink.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("opsdeck/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Sends `d` through `sink`.
pub async fn send(
    sink: &SinkConfig,
    client: &reqwest::Client,
    d: &Delivery,
) -> Result<(), SendError> {
    match &sink.target {
        SinkTarget::Telegram {
            chat_id,
            token,
            api_url,
        } => telegram::send(client, api_url, token, chat_id, d).await,
        SinkTarget::Webhook {
            url,
            format,
            secret,
        } => webhook::send(client, url, *format, secret.as_ref(), d).await,
        SinkTarget::Command { argv } => command::send(argv, sink.timeout, d).await,
    }
}

/// The delivery as JSON: the event, its `id` (the delivery's: stable across retries, for
/// receivers to drop a repeat), `event_id`, `sink` and the message `text`.
pub fn payload(d: &Delivery) -> serde_json::Value {
    let mut v = serde_json::to_value(&d.event).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), d.id.into());
        o.insert("event_id".into(), d.event_id.into());
        o.insert("sink".into(), d.sink.clone().into());
        o.insert("text".into(), d.event.text().into());
    }
    v
}

/// What an HTTP reply means: 2xx accepted; 408, 429 and 5xx retried (with `after`); any other
/// status given up.
pub(crate) fn judge(
    what: &str,
    status: reqwest::StatusCode,
    after: Option<Duration>,
    detail: &str,
) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let detail = crate::sanitize::clean_max(detail.trim(), 300);
    let error = if detail.is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        format!("{what}: HTTP {status}: {detail}")
    };
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        Err(SendError::Retry { error, after })
    } else {
        Err(SendError::Permanent(error))
    }
}

/// A transport error, without the URL (it may hold a token or be the secret itself).
pub(crate) fn transport(what: &str, e: reqwest::Error) -> SendError {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    SendError::Retry {
        error: format!("{what}: {}", crate::sanitize::clean_max(&msg, 300)),
        after: None,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for hooks and read as absent).
pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Reads at most 64 KiB of a reply body.
pub(crate) async fn body_text(mut resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        out.extend_from_slice(&chunk);
        if out.len() > 64 * 1024 {
            out.truncate(64 * 1024);
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
