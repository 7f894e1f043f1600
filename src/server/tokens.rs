//! API tokens for the TCP listener: `odk_` + 32 random bytes (base64url). The store keeps
//! only each token's SHA-256, in `<data dir>/tokens.db` (0600); a presented token is hashed
//! and compared with every live hash in constant time. A token is an identity
//! (`token/NAME`) with exactly one role.

use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rusqlite::{Connection, OptionalExtension, params};
use secrecy::SecretString;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::access::Role;
use super::identity::Identity;
use super::metrics::Metrics;

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

/// The token store: one connection, used from blocking tasks.
pub struct TokenStore {
    conn: Mutex<Connection>,
}

impl TokenStore {
    /// Opens (or creates, 0600, never through a symlink) the store at `path`.
    pub fn open(path: &Path) -> Result<TokenStore, TokenError> {
        let io = |source| TokenError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                name TEXT PRIMARY KEY,
                role TEXT NOT NULL,
                hash BLOB NOT NULL,
                created_at TEXT NOT NULL,
                created_by TEXT NOT NULL,
                last_used TEXT,
                revoked_at TEXT
            );",
        )?;
        Ok(TokenStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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
        let conn = self.conn();
        let live: Option<String> = conn
            .query_row(
                "SELECT created_at FROM tokens WHERE name = ?1 AND revoked_at IS NULL",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(at) = live {
            return Err(TokenError::Exists(format!(
                "a token named `{name}` exists (created {at}); revoke it first or pick another name"
            )));
        }
        conn.execute(
            "INSERT OR REPLACE INTO tokens (name, role, hash, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, role.key(), hash(&token).to_vec(), now, by],
        )?;
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
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT name, role, created_at, created_by, last_used, revoked_at
             FROM tokens ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TokenInfo {
                name: r.get(0)?,
                role: r.get(1)?,
                created_at: r.get(2)?,
                created_by: r.get(3)?,
                last_used: r.get(4)?,
                revoked_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes the live token `name`; it stops working at once.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        let n = self.conn().execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, now()],
        )?;
        if n == 0 {
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
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT name, role, hash, last_used, revoked_at IS NOT NULL FROM tokens",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?;
        let mut found = None;
        for row in rows {
            let (name, role, stored, last_used, revoked) = row?;
            let same: bool = stored.as_slice().ct_eq(&digest[..]).into();
            if same && found.is_none() {
                found = Some((name, role, last_used, revoked));
            }
        }
        drop(st);
        let Some((name, role, last_used, revoked)) = found else {
            return Ok(Verdict::Unknown);
        };
        if revoked {
            return Ok(Verdict::Revoked(name));
        }
        let Ok(role) = role.parse::<Role>() else {
            return Ok(Verdict::Unknown);
        };
        let stale = last_used
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .is_none_or(|t| chrono::Utc::now().timestamp() - t.timestamp() >= LAST_USED_EVERY);
        if stale {
            conn.execute(
                "UPDATE tokens SET last_used = ?2 WHERE name = ?1",
                params![name, now()],
            )?;
        }
        Ok(Verdict::Live(Identity::token(&name, role)))
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
    use secrecy::ExposeSecret;

    #[test]
    fn a_token_verifies_until_revoked_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKENS_DB);
        let store = TokenStore::open(&path).unwrap();
        let (info, token) = store.create("gha", Role::Ci, "alice").unwrap();
        let token = token.expose_secret().to_string();
        assert!(token.starts_with(PREFIX) && token.len() == PREFIX.len() + 43);
        assert_eq!(info.role, "ci");
        let Verdict::Live(who) = store.verify(&token).unwrap() else {
            panic!("a live token did not verify")
        };
        assert_eq!(who.user, "token/gha");
        assert_eq!(who.token_role(), Some(Role::Ci));
        assert_eq!(store.verify("odk_nope").unwrap(), Verdict::Unknown);
        assert!(matches!(
            store.create("gha", Role::Ci, "alice"),
            Err(TokenError::Exists(_))
        ));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        store.revoke("gha").unwrap();
        assert_eq!(
            store.verify(&token).unwrap(),
            Verdict::Revoked("gha".into())
        );
        assert!(matches!(store.revoke("gha"), Err(TokenError::NotFound(_))));
        // A revoked name can be used again, with a new value; the old one stays refused.
        let (_, again) = store.create("gha", Role::Viewers, "alice").unwrap();
        assert_ne!(again.expose_secret(), token);
        assert!(matches!(
            store.verify(again.expose_secret()).unwrap(),
            Verdict::Live(w) if w.token_role() == Some(Role::Viewers)
        ));
        assert_eq!(store.verify(&token).unwrap(), Verdict::Unknown);
        assert!(store.create("bad name", Role::Ci, "a").is_err());
        assert!(store.create("-x", Role::Ci, "a").is_err());
    }

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
