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
use super::state::ServerState;
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
        // The release as this audit row left it (its snapshot): reading the release now could
        // show a later status twice and this one never.
        let row = conn
            .client
            .query_opt(
                "SELECT actor, from_status, to_status, note, release_snapshot
                 FROM audit WHERE id = $1",
                &[&a.audit],
            )
            .await
            .map_err(|e| crate::storage::pg::describe(&e))?;
        let Some(row) = row else { continue };
        let snapshot: Option<String> = row.get(4);
        let Some(release) = snapshot.as_deref().and_then(release_from_snapshot) else {
            continue;
        };
        publish(state, release, &row);
    }
}

/// A release from an audit row's snapshot: `chain::RELEASE_COLUMNS` as a JSON array.
pub fn release_from_snapshot(json: &str) -> Option<Release> {
    let v: Vec<serde_json::Value> = serde_json::from_str(json).ok()?;
    let text = |i: usize| v.get(i).and_then(|x| x.as_str()).map(str::to_string);
    let time = |i: usize| {
        text(i)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    Some(Release {
        id: v.first()?.as_i64()?,
        service_name: text(1)?,
        release_tag: text(2)?,
        rollback_to_tag: text(3),
        image: text(4),
        status: text(5)?.parse().ok()?,
        initiated_by: text(6),
        github_run_id: text(7),
        github_action_link: text(8),
        github_ref: text(9),
        created_at: time(10)?,
        started_at: time(11),
        completed_at: time(12),
    })
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

    #[test]
    fn a_snapshot_reads_back_as_the_release_it_was() {
        let json = r#"[7,"api","v1",null,null,"deploying","ci",null,null,null,"2024-05-01T10:00:00+00:00","2024-05-01T10:05:00+00:00",null]"#;
        let r = release_from_snapshot(json).unwrap();
        assert_eq!((r.id, r.status), (7, Status::Deploying));
        assert_eq!(r.initiated_by.as_deref(), Some("ci"));
        assert!(r.started_at.is_some() && r.completed_at.is_none());
        assert!(release_from_snapshot("[1]").is_none());
    }
}
