//! What can go wrong talking to TestOps, and which of it is worth retrying.

use std::time::Duration;

/// A failed TestOps call. Messages never contain the API or access token.
#[derive(Debug, thiserror::Error)]
pub enum TestOpsError {
    /// The API token was refused at the token exchange: a configuration error, never retried.
    #[error(
        "TestOps refused the API token (HTTP {status} from the token exchange); check testops.token"
    )]
    BadToken { status: u16 },
    /// Access was refused even with a fresh access token.
    #[error(
        "TestOps refused access to {what} (HTTP {status}); check the token's permissions and the project/group ids"
    )]
    Forbidden { what: &'static str, status: u16 },
    /// Any other HTTP error status.
    #[error("TestOps answered HTTP {status} to {what}{}", snippet_suffix(.snippet))]
    Status {
        what: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        snippet: String,
    },
    /// A redirect to another origin (never followed: it would carry the token elsewhere).
    #[error(
        "TestOps answered {what} with a redirect (HTTP {status}) to another origin ({to}); not followed, so no credentials left for it. Check testops.base_url"
    )]
    Redirect {
        what: &'static str,
        status: u16,
        to: String,
    },
    /// A reply larger than opsdeck accepts for its kind.
    #[error("the reply to {what} is larger than {limit} bytes; refused")]
    TooLarge { what: &'static str, limit: u64 },
    /// Connection refused, reset, DNS, TLS, or a timeout.
    #[error("cannot reach TestOps for {what}: {message}")]
    Network { what: &'static str, message: String },
    /// A reply that does not have the expected shape.
    #[error("unexpected reply from TestOps to {what}: {message}")]
    Malformed { what: &'static str, message: String },
    /// The export was not ready within `testops.poll_timeout`.
    #[error("the export was not ready after {polls} polls in {waited:?} (testops.poll_timeout)")]
    NotReady { polls: u32, waited: Duration },
    /// The download failed partway.
    #[error("download broke off after {bytes} bytes: {message}")]
    Interrupted { bytes: u64, message: String },
}

fn snippet_suffix(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl TestOpsError {
    /// Whether another attempt may succeed: network trouble, timeouts, 5xx, 429, not-ready.
    pub fn is_retryable(&self) -> bool {
        match self {
            TestOpsError::BadToken { .. }
            | TestOpsError::Forbidden { .. }
            | TestOpsError::Redirect { .. }
            | TestOpsError::TooLarge { .. } => false,
            TestOpsError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            TestOpsError::Network { .. }
            | TestOpsError::NotReady { .. }
            | TestOpsError::Interrupted { .. }
            | TestOpsError::Malformed { .. } => true,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TestOpsError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn network(what: &'static str, e: reqwest::Error) -> Self {
        // reqwest's own message repeats the URL and layers of context; the innermost cause
        // ("Connection refused", "dns error: ...") is what a person can act on.
        let mut root: &dyn std::error::Error = &e;
        while let Some(next) = root.source() {
            root = next;
        }
        let cause = crate::sanitize::clean(&root.to_string());
        let message = if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            format!("cannot connect: {cause}")
        } else {
            cause
        };
        TestOpsError::Network { what, message }
    }
}

/// The first line of a body, sanitized and shortened, for error messages. A server or proxy
/// may echo the request (and so the token) or send terminal escapes: both are neutralised here.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    crate::sanitize::clean_max(line, 120)
}

/// Parses `Retry-After` in seconds or as an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}
