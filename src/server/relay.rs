//! Ledger changes made through other servers on the same PostgreSQL database, to this
//! server's event streams: each audit row is announced with `NOTIFY` at commit
//! (`release::ledger::pg::CHANGES_CHANNEL`, payload "<instance> <release id> <audit id>");
//! here a dedicated connection `LISTEN`s, skips this process's own changes (its observer
//! published them already), reads the release and the audit row, and publishes the same
//! `WireBody::Release` the observer would have.
//!
//! A change made while the listening connection is down is not replayed: the connection is
//! made again within a second or two, and the dashboards' release lists are refreshed by the
//! next change anyway.

use std::sync::Arc;
use std::time::Duration;

use super::hub::WireBody;
use super::state::{ServerState, blocking};
use crate::release::ledger::LedgerChange;
use crate::release::ledger::pg::CHANGES_CHANNEL;
use crate::release::{Release, Status};
use crate::storage::PgConfig;

/// One announced change.
#[derive(Debug, PartialEq, Eq)]
pub struct Announced {
    pub instance: String,
    pub release: i64,
    pub audit: i64,
}

/// Parses a payload; `None` for anything else (a stray `NOTIFY` by hand).
pub fn parse(payload: &str) -> Option<Announced> {
    let mut parts = payload.rsplitn(3, ' ');
    let audit = parts.next()?.parse().ok()?;
    let release = parts.next()?.parse().ok()?;
    let instance = parts.next()?.to_string();
    Some(Announced {
        instance,
        release,
        audit,
    })
}

/// Listens until the server shuts down.
pub fn spawn(state: Arc<ServerState>, pg: Arc<PgConfig>) {
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            if state.shutdown.is_cancelled() {
                return;
            }
            match listen(&state, &pg).await {
                Ok(()) => return,
                Err(e) => {
                    if e != last_error {
                        tracing::warn!("events from other servers: {e}; listening again");
                        last_error = e;
                    }
                }
            }
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}

async fn listen(state: &Arc<ServerState>, pg: &PgConfig) -> Result<(), String> {
    let mut conn = pg.connect_async().await?;
    conn.client
        .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
        .await
        .map_err(|e| crate::storage::pg::describe(&e))?;
    let me = crate::storage::pg::instance();
    loop {
        let n = tokio::select! {
            () = state.shutdown.cancelled() => return Ok(()),
            n = conn.notices.recv() => n.ok_or("the connection closed")?,
        };
        let Some(a) = parse(n.payload()).filter(|a| a.instance != me) else {
            continue;
        };
        let row = conn
            .client
            .query_opt(
                "SELECT actor, from_status, to_status, note FROM audit WHERE id = $1",
                &[&a.audit],
            )
            .await
            .map_err(|e| crate::storage::pg::describe(&e))?;
        let Some(row) = row else { continue };
        let id = a.release;
        let me2 = state.clone();
        let Ok(Some(release)) = blocking(move || me2.read(|l| l.get(id))).await else {
            continue;
        };
        publish(state, release, &row);
    }
}

fn publish(state: &ServerState, release: Release, row: &tokio_postgres::Row) {
    let status = |s: Option<String>| s.and_then(|s| s.parse::<Status>().ok());
    let Some(to) = status(row.get(2)) else { return };
    let change = LedgerChange {
        release,
        actor: row.get(0),
        from: status(row.get(1)),
        to,
        note: row.get(3),
    };
    // The service lines show what the ledger says: read the engine again.
    if let Some(w) = state.services.get() {
        w.poke();
    }
    let summary = super::hub::summary(&change);
    state.hub.publish(
        Some(change.actor.clone()),
        WireBody::Release {
            release: change.release,
            summary,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_strays_do_not() {
        assert_eq!(
            parse("host-a:42:1700 12 99"),
            Some(Announced {
                instance: "host-a:42:1700".into(),
                release: 12,
                audit: 99
            })
        );
        // A host name with spaces cannot break the numbers at the end.
        assert_eq!(parse("a b:1:2 3 4").unwrap().instance, "a b:1:2");
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("x 1 y"), None);
    }
}
