//! PostgreSQL plumbing shared by the stores: the connection settings (`storage.url` and the
//! password from `storage.password_file`), connecting, versioned migrations under an advisory
//! lock, and running the synchronous client where it may block.
//!
//! The client is the `postgres` crate (rust-postgres, the synchronous face of
//! `tokio-postgres`): the ledger is synchronous and called from blocking threads, as with
//! SQLite. It drives each connection with a small tokio runtime of its own, and tokio refuses
//! to start a runtime on a thread that is already running one; `off_runtime` runs such calls
//! on a scoped thread instead, so the desk's async code can call the ledger as it always has.
//!
//! No TLS yet: connect over a Unix socket or a trusted network (`check` warns about TCP to a
//! host other than loopback).

use std::sync::Mutex;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

// Advisory lock keys (one space per database, so each must differ; `locks_differ` checks):
// 1 migrations, 2 ledger writes (`release::ledger::pg::WRITE_LOCK`), 3 the leadership
// (`storage::leader::LEADER_LOCK`), 4 outbox enqueues (`notify::outbox::pg::ENQUEUE_LOCK`).

/// The advisory lock under which migrations run (any server, any component).
pub const MIGRATION_LOCK: i64 = 0x6f70_7364_6b00_0001;

/// A PostgreSQL database to keep state in.
#[derive(Clone)]
pub struct PgConfig {
    /// `storage.url` as written; it holds no password (refused at load).
    url: String,
    /// From `storage.password_file`.
    password: Option<SecretString>,
}

impl PgConfig {
    /// Checks a `postgres://` URL: it must parse and must not hold a password.
    pub fn new(url: &str, password: Option<String>) -> Result<PgConfig, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("must start with postgres:// or postgresql://".into());
        }
        let parsed: postgres::Config = url
            .parse()
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        if parsed.get_password().is_some() {
            return Err(
                "holds a password; put it in storage.password_file (a file only the server \
                 can read) and take it out of the URL"
                    .into(),
            );
        }
        Ok(PgConfig {
            url: url.to_string(),
            password: password.map(SecretString::from),
        })
    }

    /// The URL as configured (no password in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether a password was given.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Hosts reached over TCP that are not loopback: traffic to them is not encrypted.
    pub fn remote_tcp_hosts(&self) -> Vec<String> {
        let Ok(c) = self.url.parse::<postgres::Config>() else {
            return Vec::new();
        };
        c.get_hosts()
            .iter()
            .filter_map(|h| match h {
                postgres::config::Host::Tcp(name) => Some(name.clone()),
                _ => None,
            })
            .filter(|name| {
                !(name == "localhost"
                    || name
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback()))
            })
            .collect()
    }

    fn config(&self) -> postgres::Config {
        // Parsed once at load: this cannot fail.
        let mut c: postgres::Config = self.url.parse().unwrap_or_default();
        if let Some(p) = &self.password {
            c.password(p.expose_secret());
        }
        if c.get_connect_timeout().is_none() {
            c.connect_timeout(Duration::from_secs(10));
        }
        if c.get_application_name().is_none() {
            c.application_name("opsdeck");
        }
        c
    }

    /// A new connection driven by the caller's runtime: for the leader lock (keep-alive
    /// queries under a timeout) and LISTEN (notifications arrive on `AsyncConn::notices`).
    pub async fn connect_async(&self) -> Result<AsyncConn, String> {
        // Parsed once at load: this cannot fail.
        let mut c: tokio_postgres::Config = self.url.parse().unwrap_or_default();
        if let Some(p) = &self.password {
            c.password(p.expose_secret());
        }
        if c.get_connect_timeout().is_none() {
            c.connect_timeout(Duration::from_secs(5));
        }
        if c.get_application_name().is_none() {
            c.application_name("opsdeck");
        }
        // A dead peer is noticed by TCP too, not only by the next keep-alive query.
        c.keepalives_idle(Duration::from_secs(5));
        c.keepalives_interval(Duration::from_secs(2));
        c.keepalives_retries(3);
        let (client, mut conn) = c
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("cannot connect to {self}: {}", describe(&e)))?;
        let (tx, notices) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        let _ = tx.send(n);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("database connection ended: {}", describe(&e));
                        break;
                    }
                }
            }
        });
        Ok(AsyncConn {
            client,
            notices,
            driver,
        })
    }

    /// A connection from this process's pool (an idle one, else a new one); it goes back to
    /// the pool when dropped. For statements and transactions that leave nothing behind in
    /// the session: a session lock needs `connect_own`.
    pub fn connect(&self) -> Result<PgClient, String> {
        if let Some(client) = pool::take(&self.url) {
            return Ok(PgClient {
                client: Mutex::new(Some(client)),
                pooled: Some(self.url.clone()),
            });
        }
        let mut c = self.connect_own()?;
        c.pooled = Some(self.url.clone());
        Ok(c)
    }

    /// A new connection of its own, closed when dropped (never pooled): for a session
    /// advisory lock that must end with it.
    pub fn connect_own(&self) -> Result<PgClient, String> {
        let c = self.config();
        let client = off_runtime(|| c.connect(postgres::NoTls))
            .map_err(|e| format!("cannot connect to {self}: {}", describe(&e)))?;
        Ok(PgClient {
            client: Mutex::new(Some(client)),
            pooled: None,
        })
    }
}

/// Idle connections, shared by every store of the process. Connecting costs a TCP (or
/// socket) handshake, authentication and a backend process start, several times a short
/// query; the ledger, history, outbox and tokens each borrow a connection per call.
mod pool {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::off_runtime;

    /// Idle connections kept per database; more are closed when given back.
    const MAX_IDLE: usize = 8;
    /// An idle connection older than this is checked (a round trip) before it is lent: the
    /// database may have restarted or cut it since.
    const CHECK_AFTER: Duration = Duration::from_secs(2);

    static IDLE: Mutex<Vec<(String, postgres::Client, Instant)>> = Mutex::new(Vec::new());

    fn idle() -> std::sync::MutexGuard<'static, Vec<(String, postgres::Client, Instant)>> {
        IDLE.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently returned live connection to `url`, if any.
    pub(super) fn take(url: &str) -> Option<postgres::Client> {
        loop {
            let (client, since) = {
                let mut g = idle();
                let i = g.iter().rposition(|(u, _, _)| u == url)?;
                let (_, c, t) = g.remove(i);
                (c, t)
            };
            if since.elapsed() < CHECK_AFTER {
                return Some(client);
            }
            let checked = off_runtime(move || {
                let mut client = client;
                let ok = client.is_valid(Duration::from_secs(2)).is_ok();
                if ok {
                    Some(client)
                } else {
                    drop(client);
                    None
                }
            });
            if checked.is_some() {
                return checked;
            }
        }
    }

    /// Gives `client` back, or closes it (broken, or enough idle ones).
    pub(super) fn give_back(url: String, client: postgres::Client) {
        if client.is_closed() {
            off_runtime(move || drop(client));
            return;
        }
        let mut g = idle();
        if g.iter().filter(|(u, _, _)| *u == url).count() >= MAX_IDLE {
            drop(g);
            off_runtime(move || drop(client));
            return;
        }
        g.push((url, client, Instant::now()));
    }
}

/// An async connection; dropping it closes the session (and frees its advisory locks).
pub struct AsyncConn {
    pub client: tokio_postgres::Client,
    /// `NOTIFY`s on channels this session listens to; ends when the connection does.
    pub notices: tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for AsyncConn {
    fn drop(&mut self) {
        // Stops driving the socket, which closes it: the server ends the session at once.
        self.driver.abort();
    }
}

/// This process among all that share a database: unique per run (host, pid, start time).
pub fn instance() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!(
            "{}:{}:{nanos}",
            gethostname::gethostname().to_string_lossy(),
            std::process::id()
        )
    })
}

/// The URL: it holds no password, so it may be logged.
impl std::fmt::Display for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The error with its causes: the client's own `Display` says only "db error" or "invalid
/// configuration". The password is never part of it.
pub fn describe(e: &postgres::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    if s.contains("password missing") {
        s.push_str(" (the server asks for a password: set storage.password_file)");
    }
    s
}

/// Runs `f` where a synchronous PostgreSQL call may block: here, or on a scoped thread when
/// this thread belongs to a tokio runtime (where the client's own runtime would panic).
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// One connection, usable from any thread and from async code (see `off_runtime`).
pub struct PgClient {
    client: Mutex<Option<postgres::Client>>,
    /// The pool it goes back to when dropped (its database's URL).
    pooled: Option<String>,
}

impl PgClient {
    /// Runs `f` with the connection.
    #[allow(
        clippy::expect_used,
        reason = "the connection is taken out only by Drop, after which nothing calls this"
    )]
    pub fn with<T: Send>(&self, f: impl FnOnce(&mut postgres::Client) -> T + Send) -> T {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let client = guard
            .as_mut()
            .expect("the connection is open until dropped");
        off_runtime(|| f(client))
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        // Closing talks to the server through the client's runtime, too.
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match (client, self.pooled.take()) {
            (Some(c), Some(url)) => pool::give_back(url, c),
            (Some(c), None) => off_runtime(move || drop(c)),
            (None, _) => {}
        }
    }
}

/// One step of a component's schema.
pub struct Migration {
    pub version: i32,
    pub sql: String,
}

/// Brings `component`'s tables to the last of `steps`, in one transaction under the
/// migration lock, so servers starting together apply each step once. A database migrated
/// by a newer opsdeck (a version this one does not know) is refused.
pub fn migrate(
    client: &mut postgres::Client,
    component: &str,
    steps: &[Migration],
) -> Result<(), String> {
    let e = |e: postgres::Error| format!("migrating the {component} schema: {}", describe(&e));
    let mut tx = client.transaction().map_err(e)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(e)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS opsdeck_migrations (
           component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,
           PRIMARY KEY (component, version))",
    )
    .map_err(e)?;
    let have: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM opsdeck_migrations WHERE component = $1",
            &[&component],
        )
        .map_err(e)?
        .get(0);
    let known = steps.iter().map(|m| m.version).max().unwrap_or(0);
    if have > known {
        return Err(format!(
            "the database's {component} schema is version {have}, newer than this opsdeck \
             knows ({known}): upgrade opsdeck"
        ));
    }
    for m in steps.iter().filter(|m| m.version > have) {
        tx.batch_execute(&m.sql).map_err(e)?;
        tx.execute(
            "INSERT INTO opsdeck_migrations (component, version, applied_at) VALUES ($1, $2, $3)",
            &[&component, &m.version, &chrono::Utc::now().to_rfc3339()],
        )
        .map_err(e)?;
    }
    tx.commit().map_err(e)
}

/// Components this process has migrated, by database URL: later opens skip the lock.
static MIGRATED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// `migrate` on a pooled connection, once per database, component and process: stores are
/// opened per request, and the migration lock would serialise them all.
pub fn migrate_once(cfg: &PgConfig, component: &str, steps: &[Migration]) -> Result<(), String> {
    let key = (cfg.url().to_string(), component.to_string());
    if MIGRATED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&key)
    {
        return Ok(());
    }
    cfg.connect()?.with(|c| migrate(c, component, steps))?;
    MIGRATED.lock().unwrap_or_else(|p| p.into_inner()).push(key);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn locks_differ() {
        let mut keys = vec![
            super::MIGRATION_LOCK,
            crate::release::ledger::pg::WRITE_LOCK,
            crate::storage::leader::LEADER_LOCK,
            crate::notify::outbox::pg::ENQUEUE_LOCK,
        ];
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 4);
    }
}
