//! What the client accepts from a server: redirects within one origin, bounded JSON replies,
//! and the extra CA certificates it trusts.

use std::path::Path;

use futures_util::StreamExt;
use reqwest::{Response, redirect};

use super::error::TestOpsError;

/// Largest JSON reply (token exchange, export request): real ones are a few hundred bytes.
pub const JSON_REPLY_LIMIT: u64 = 64 << 10;

/// Follows redirects only to the same scheme, host and port as the first request, at most 5.
/// A redirect elsewhere stops there (the 3xx becomes an error): reqwest drops the
/// `Authorization` header across hosts, but a 307/308 resends the body, and the token
/// exchange's body holds the API token.
pub fn same_origin_redirects() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let same = attempt.previous().first().is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else if same {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// A redirect target as shown in messages: its origin only, sanitized.
pub fn origin_for_display(location: &str) -> String {
    match reqwest::Url::parse(location) {
        Ok(u) => crate::sanitize::clean(&u.origin().ascii_serialization()),
        Err(_) => crate::sanitize::clean_max(location, 80),
    }
}

/// Reads a JSON reply of at most [`JSON_REPLY_LIMIT`] bytes: a huge or endless reply fails
/// early instead of being held in memory.
pub async fn json_reply(
    what: &'static str,
    resp: Response,
) -> Result<serde_json::Value, TestOpsError> {
    let too_large = TestOpsError::TooLarge {
        what,
        limit: JSON_REPLY_LIMIT,
    };
    if resp.content_length().is_some_and(|n| n > JSON_REPLY_LIMIT) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| TestOpsError::network(what, e))?;
        if body.len() as u64 + chunk.len() as u64 > JSON_REPLY_LIMIT {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| TestOpsError::Malformed {
        what,
        message: format!("not JSON ({e})"),
    })
}

/// The certificates of a PEM file (`testops.ca_file`, `SSL_CERT_FILE`).
pub fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, TestOpsError> {
    let what = "reading the CA file";
    let pem = std::fs::read(path).map_err(|e| TestOpsError::Malformed {
        what,
        message: format!("{}: {e}", path.display()),
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| TestOpsError::Malformed {
            what,
            message: format!("{}: {e}", path.display()),
        })?;
    if certs.is_empty() {
        return Err(TestOpsError::Malformed {
            what,
            message: format!("{} holds no PEM certificate", path.display()),
        });
    }
    Ok(certs)
}
