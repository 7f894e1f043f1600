//! API tokens for the TCP listener: `odk_` + 32 random bytes (base64url). The store keeps
//! only each token's SHA-256, in `<data dir>/tokens.db` (0600) or in PostgreSQL; a presented token is hashed
//! and compared with every live hash in constant time. A token is an identity
//! (`token/NAME`) with exactly one role.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::SecretString;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::access::Role;
use super::identity::Identity;
use super::metrics::Metrics;
use super::token_table::{PgTokens, SqliteTokens, TokenTable};

/// File name of the token store inside the server's data dir.
pub const TOKENS_DB: &str = "tokens.db";

/// What every token starts with, so a leaked one is recognizable (and masked in logs).
pub const PREFIX: &str = "odk_";

/// `last_used` is written at most this often per token (seconds), not on every request.
const LAST_USED_EVERY: i64 = 60;

/// A token store failure.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the token store {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the token store: {0}")]
    Db(#[from] rusqlite::Error),
    /// Already worded; never holds the password.
    #[error("the token store: {0}")]
    Postgres(String),
    #[error("no random bytes for a token")]
    Random,
}

/// A token as `token list` shows it: never the token itself.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub created_by: String,
    pub last_used: Option<String>,
    pub revoked_at: Option<String>,
}

/// The token store, in `tokens.db` or in PostgreSQL (`token_table.rs`); used from blocking
/// tasks.
pub struct TokenStore {
    table: Box<dyn TokenTable>,
}

impl TokenStore {
    /// Opens (or creates, 0600, never through a symlink) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<TokenStore, TokenError> {
        Ok(TokenStore {
            table: Box::new(SqliteTokens::open(path)?),
        })
    }

    /// The store the server's config names: PostgreSQL with `storage.url`, else
    /// `<data dir>/tokens.db`.
    pub fn open_for(
        storage: Option<&crate::storage::PgConfig>,
        data_dir: &Path,
    ) -> Result<TokenStore, TokenError> {
        match storage {
            Some(pg) => Ok(TokenStore {
                table: Box::new(PgTokens::open(pg)?),
            }),
            None => Self::open(&data_dir.join(TOKENS_DB)),
        }
    }

    /// Makes a token for `name` with `role`; the value is returned once and only its hash is
    /// kept. A live token of that name is a conflict; a revoked one is replaced.
    pub fn create(
        &self,
        name: &str,
        role: Role,
        by: &str,
    ) -> Result<(TokenInfo, SecretString), TokenError> {
        valid_name(name)?;
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| TokenError::Random)?;
        let token = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let now = now();
        if let Some(at) = self
            .table
            .insert(name, role.key(), &hash(&token), &now, by)?
        {
            return Err(TokenError::Exists(format!(
                "a token named `{name}` exists (created {at}); revoke it first or pick another name"
            )));
        }
        crate::sanitize::register_secret(&token);
        let info = TokenInfo {
            name: name.into(),
            role: role.key().into(),
            created_at: now,
            created_by: by.into(),
            last_used: None,
            revoked_at: None,
        };
        Ok((info, SecretString::from(token)))
    }

    /// Every token, live and revoked, by name.
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        self.table.list()
    }

    /// Revokes the live token `name`; it stops working at once.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        if self.table.revoke(name, &now())? == 0 {
            return Err(TokenError::NotFound(format!(
                "no live token named `{name}`"
            )));
        }
        Ok(())
    }

    /// What a presented token is: live (its identity), revoked (its name) or unknown. Its
    /// SHA-256 is compared with every stored hash, in constant time, whatever matched, so
    /// the time taken does not tell how close a guess came.
    pub fn verify(&self, presented: &str) -> Result<Verdict, TokenError> {
        let digest = hash(presented);
        let mut found = None;
        for row in self.table.rows()? {
            let same: bool = row.hash.as_slice().ct_eq(&digest[..]).into();
            if same && found.is_none() {
                found = Some(row);
            }
        }
        let Some(row) = found else {
            return Ok(Verdict::Unknown);
        };
        if row.revoked {
            return Ok(Verdict::Revoked(row.name));
        }
        let Ok(role) = row.role.parse::<Role>() else {
            return Ok(Verdict::Unknown);
        };
        let stale = row
            .last_used
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .is_none_or(|t| chrono::Utc::now().timestamp() - t.timestamp() >= LAST_USED_EVERY);
        if stale {
            self.table.touch(&row.name, &now())?;
        }
        Ok(Verdict::Live(Identity::token(&row.name, role)))
    }
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Live(Identity),
    /// A revoked token, by name (for the log; the caller is told only "unknown or revoked").
    Revoked(String),
    Unknown,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Token names: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `-`.
fn valid_name(name: &str) -> Result<(), TokenError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TokenError::Invalid(format!(
            "`{}` is not a token name: 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `-`",
            crate::sanitize::clean_max(name, 80)
        )))
    }
}

/// The caller a valid bearer token vouches for; set by [`require_bearer`], read by the
/// `Caller` extractor. Only the TCP listener's router has the middleware that sets it.
#[derive(Debug, Clone)]
pub struct Bearer(pub Arc<Identity>);

/// Failed attempts (no token, an unknown or a revoked one) within this window are logged one
/// by one up to [`LOG_EACH`]; beyond that they are counted, and the count is logged when the
/// next window's first failure arrives. Every one is counted in
/// `opsdeck_token_failures_total`.
const FAIL_WINDOW: Duration = Duration::from_secs(60);
const LOG_EACH: u64 = 10;

/// The failed-attempt counter of one listener.
#[derive(Debug, Default)]
struct Failures {
    window_start: Option<Instant>,
    in_window: u64,
    unlogged: u64,
    total: u64,
}

/// What to log for one failed attempt.
#[derive(Debug, PartialEq, Eq)]
struct FailureNote {
    /// Its number within the current window.
    n: u64,
    /// Its number since the server started.
    total: u64,
    /// Log this attempt on its own line.
    log_it: bool,
    /// Attempts of the previous window that were counted but not logged.
    unlogged_before: u64,
}

impl Failures {
    fn record(&mut self, now: Instant) -> FailureNote {
        let mut unlogged_before = 0;
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= FAIL_WINDOW);
        if expired {
            unlogged_before = std::mem::take(&mut self.unlogged);
            self.window_start = Some(now);
            self.in_window = 0;
        }
        self.in_window += 1;
        self.total += 1;
        let log_it = self.in_window <= LOG_EACH;
        if !log_it {
            self.unlogged += 1;
        }
        FailureNote {
            n: self.in_window,
            total: self.total,
            log_it,
            unlogged_before,
        }
    }
}

/// The TCP listener's gate: the token store, and what failed attempts are counted in.
pub struct Gate {
    store: Arc<TokenStore>,
    metrics: Arc<Metrics>,
    failures: Mutex<Failures>,
}

impl Gate {
    pub fn new(store: Arc<TokenStore>, metrics: Arc<Metrics>) -> Gate {
        Gate {
            store,
            metrics,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// Counts and logs a refused request: who connected, the path, why. Never the header.
    fn failed(&self, peer: Option<SocketAddr>, path: &str, why: &str) {
        self.metrics.token_failure();
        let note = self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(Instant::now());
        let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
        let path = crate::sanitize::clean_max(path, 120);
        if note.unlogged_before > 0 {
            tracing::warn!(
                "{} more failed API token attempts in the previous minute were counted, not logged one by one",
                note.unlogged_before
            );
        }
        if note.log_it {
            tracing::warn!(
                %peer,
                %path,
                "refused a request on the TCP listener: {why} (failed attempt {} in this minute, {} since start)",
                note.n,
                note.total
            );
        } else if note.n == LOG_EACH + 1 {
            tracing::warn!(
                %peer,
                "more than {LOG_EACH} failed API token attempts within a minute: further ones are \
                 counted (opsdeck_token_failures_total), not logged one by one, until it ends"
            );
        }
    }
}

/// Middleware of the TCP listener: every request needs `Authorization: Bearer <token>` of a
/// live token, else 401 `{"error", "code": "unauthorized"}`. The header is never logged; a
/// refusal is, with the peer's address.
pub async fn require_bearer(
    State(gate): State<Arc<Gate>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<super::tcp::TcpPeer>>()
        .map(|c| c.0.0);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        });
    let Some(presented) = presented else {
        gate.failed(peer, req.uri().path(), "no bearer token");
        return unauthorized(
            "this listener needs `Authorization: Bearer <token>` (see `opsdeck token create`)",
        );
    };
    let store = gate.store.clone();
    let verified = tokio::task::spawn_blocking(move || store.verify(&presented)).await;
    match verified {
        Ok(Ok(Verdict::Live(who))) => {
            req.extensions_mut().insert(Bearer(Arc::new(who)));
            next.run(req).await
        }
        Ok(Ok(Verdict::Revoked(name))) => {
            gate.failed(
                peer,
                req.uri().path(),
                &format!("the revoked token `{name}`"),
            );
            unauthorized("the bearer token is unknown or revoked")
        }
        Ok(Ok(Verdict::Unknown)) => {
            gate.failed(peer, req.uri().path(), "an unknown token");
            unauthorized("the bearer token is unknown or revoked")
        }
        Ok(Err(e)) => {
            tracing::error!("cannot check an API token: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"error": "cannot check the token now", "code": "unavailable"})),
            )
                .into_response()
        }
        Err(_) => unauthorized("the bearer token could not be checked"),
    }
}

fn unauthorized(msg: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({"error": msg, "code": "unauthorized"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_attempts_are_logged_one_by_one_then_counted() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        for n in 1..=LOG_EACH {
            let note = f.record(t0);
            assert_eq!((note.n, note.log_it, note.unlogged_before), (n, true, 0));
        }
        for n in LOG_EACH + 1..LOG_EACH + 6 {
            let note = f.record(t0 + Duration::from_secs(30));
            assert_eq!((note.n, note.log_it), (n, false));
        }
        // The next window starts over and reports what the last one did not log.
        let note = f.record(t0 + FAIL_WINDOW);
        assert_eq!(
            note,
            FailureNote {
                n: 1,
                total: LOG_EACH + 6,
                log_it: true,
                unlogged_before: 5
            }
        );
        assert_eq!(f.record(t0 + FAIL_WINDOW).unlogged_before, 0);
    }
}
