//! Leadership among servers that share one PostgreSQL database: whoever holds the session
//! advisory lock `LEADER_LOCK` on its own dedicated connection leads, and runs the scheduler,
//! retention and reconciliation; the others serve the API and retry every `retry`.
//!
//! The database frees the lock when the session ends, so a leader killed with `kill -9` (its
//! socket closes) is replaced within one `retry`. A leader whose connection stops answering
//! steps down by itself: a keep-alive query runs every `keepalive` and must answer within
//! `keepalive_timeout`; when it does not, the connection is dropped (so the lock goes with
//! the session) and the leader work stops. Leader work that writes shared state is a
//! compare-and-set as well (the ledger's transitions, the scheduler's fired instants), so
//! the short window in which a cut-off leader has not yet noticed cannot run anything twice.
//!
//! The leader also writes who it is to `opsdeck_leader`, for `/v1/health` on every server.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pg::{AsyncConn, Migration, PgConfig, describe};

/// The session advisory lock that makes a server the leader.
pub const LEADER_LOCK: i64 = 0x6f70_7364_6b00_0003;

/// What this server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not decided yet (connecting).
    Starting,
    /// This server leads.
    Leader,
    /// Another server leads (as it recorded itself), or nobody can be reached.
    Follower { holder: String },
}

impl Role {
    /// Whether this server leads.
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader)
    }
}

/// How often things happen.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A follower tries the lock this often.
    pub retry: Duration,
    /// The leader checks its connection this often.
    pub keepalive: Duration,
    /// A keep-alive slower than this makes the leader step down.
    pub keepalive_timeout: Duration,
}

impl Default for Timing {
    /// Takeover within about `retry` after a leader dies; a cut-off leader steps down within
    /// `keepalive + keepalive_timeout`. Both well inside the 15 s the issue asks for.
    fn default() -> Self {
        Timing {
            retry: Duration::from_secs(2),
            keepalive: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(3),
        }
    }
}

/// The leader table (component `leader` in `opsdeck_migrations`).
fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        sql: "CREATE TABLE opsdeck_leader (
                one INTEGER PRIMARY KEY CHECK (one = 1),
                holder TEXT NOT NULL, instance TEXT NOT NULL,
                since TEXT NOT NULL, heartbeat TEXT NOT NULL)"
            .into(),
    }]
}

/// "pid 42 on manager-1": this process, as followers report it.
pub fn me() -> String {
    format!(
        "pid {} on {}",
        std::process::id(),
        gethostname::gethostname().to_string_lossy()
    )
}

/// Starts the election; the receiver always holds this server's current role.
pub fn spawn(
    cfg: Arc<PgConfig>,
    timing: Timing,
    cancel: CancellationToken,
) -> watch::Receiver<Role> {
    let (tx, rx) = watch::channel(Role::Starting);
    tokio::spawn(async move {
        // The table first (once; under the migration lock, so servers starting together agree).
        loop {
            let c = cfg.clone();
            let done = tokio::task::spawn_blocking(move || {
                c.connect()?
                    .with(|c| super::pg::migrate(c, "leader", &migrations()))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match done {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!("leadership: {e}; retrying");
                    set(
                        &tx,
                        Role::Follower {
                            holder: "unknown (the database cannot be reached)".into(),
                        },
                    );
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(timing.retry) => {}
            }
        }
        let mut conn: Option<AsyncConn> = None;
        let mut last_error = String::new();
        loop {
            if conn.is_none() {
                match cfg.connect_async().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        if e != last_error {
                            tracing::warn!("leadership: {e}");
                            last_error = e;
                        }
                        set(
                            &tx,
                            Role::Follower {
                                holder: "unknown (the database cannot be reached)".into(),
                            },
                        );
                    }
                }
            }
            if let Some(c) = &conn {
                match within(timing.keepalive_timeout, try_lock(c)).await {
                    Ok(true) => {
                        tracing::info!("leadership: this server is the leader ({})", me());
                        set(&tx, Role::Leader);
                        let why = lead(c, timing, &cancel).await;
                        // Dropping the connection ends the session, which frees the lock even
                        // if the database still thinks we are alive.
                        conn = None;
                        match why {
                            None => return,
                            Some(e) => {
                                tracing::error!(
                                    "leadership: stepping down, the database connection failed: {e}"
                                );
                                set(
                                    &tx,
                                    Role::Follower {
                                        holder: "unknown (this server lost the database)".into(),
                                    },
                                );
                            }
                        }
                    }
                    Ok(false) => {
                        let holder = match within(timing.keepalive_timeout, holder(c)).await {
                            Ok(h) => h,
                            Err(_) => "another server".into(),
                        };
                        set(&tx, Role::Follower { holder });
                    }
                    Err(e) => {
                        tracing::warn!("leadership: {e}");
                        conn = None;
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(timing.retry) => {}
            }
        }
    });
    rx
}

fn set(tx: &watch::Sender<Role>, role: Role) {
    tx.send_if_modified(|r| {
        if *r == role {
            return false;
        }
        if let Role::Follower { holder } = &role {
            tracing::info!("leadership: following; the leader is {holder}");
        }
        *r = role;
        true
    });
}

async fn within<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within {} s", limit.as_secs_f32())),
    }
}

async fn try_lock(c: &AsyncConn) -> Result<bool, tokio_postgres::Error> {
    let row = c
        .client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
        .await?;
    row.try_get(0)
}

/// Who the leader says it is, and how fresh that is.
async fn holder(c: &AsyncConn) -> Result<String, tokio_postgres::Error> {
    let row = c
        .client
        .query_opt(
            "SELECT holder, heartbeat FROM opsdeck_leader WHERE one = 1",
            &[],
        )
        .await?;
    Ok(match row {
        Some(r) => format!(
            "{} (alive at {})",
            r.get::<_, String>(0),
            r.get::<_, String>(1)
        ),
        None => "another server".into(),
    })
}

/// Holds the leadership: records this server, then checks the connection until it fails
/// (`Some(reason)`) or the server stops (`None`).
async fn lead(c: &AsyncConn, timing: Timing, cancel: &CancellationToken) -> Option<String> {
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (who, instance, since) = (me(), super::pg::instance(), now());
    let record = within(
        timing.keepalive_timeout,
        c.client.execute(
            "INSERT INTO opsdeck_leader (one, holder, instance, since, heartbeat)
         VALUES (1, $1, $2, $3, $3)
         ON CONFLICT (one) DO UPDATE SET holder = $1, instance = $2, since = $3, heartbeat = $3",
            &[&who, &instance, &since],
        ),
    )
    .await;
    if let Err(e) = record {
        return Some(e);
    }
    loop {
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(timing.keepalive) => {}
        }
        // The heartbeat is the keep-alive: one round trip that also tells followers we live.
        let at = now();
        let beat = within(
            timing.keepalive_timeout,
            c.client.execute(
                "UPDATE opsdeck_leader SET heartbeat = $2 WHERE one = 1 AND instance = $1",
                &[&instance, &at],
            ),
        )
        .await;
        if let Err(e) = beat {
            return Some(e);
        }
    }
}
