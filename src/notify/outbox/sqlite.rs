//! The outbox in SQLite: `notify.db` (WAL, mode 0600) next to the ledger.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Delivery, NotifyEvent, OutboxStore, Result, event_of, from_ms, ms};

const SCHEMA_VERSION: i64 = 1;

/// The SQLite outbox: one connection.
pub struct SqliteOutbox {
    conn: Mutex<Connection>,
}

impl SqliteOutbox {
    /// Opens (creating, mode 0600) the outbox at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<SqliteOutbox> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
        }
        let conn = Connection::open(path)?;
        // Short: enqueue sits in a deploy's and an export's path and must not hold them up.
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        crate::sqlite::enable_wal(&conn)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS events (
                   id INTEGER PRIMARY KEY,
                   kind TEXT NOT NULL,
                   body TEXT NOT NULL,
                   created_at INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS deliveries (
                   id INTEGER PRIMARY KEY,
                   event_id INTEGER NOT NULL REFERENCES events(id),
                   sink TEXT NOT NULL,
                   state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
                   attempts INTEGER NOT NULL DEFAULT 0,
                   next_at INTEGER NOT NULL,
                   created_at INTEGER NOT NULL,
                   updated_at INTEGER,
                   last_error TEXT);
                 CREATE INDEX IF NOT EXISTS deliveries_sink ON deliveries(sink, state, id);
                 CREATE TABLE IF NOT EXISTS export_groups (
                   grp TEXT PRIMARY KEY,
                   failing INTEGER NOT NULL);
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))?;
        }
        Ok(SqliteOutbox {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const SELECT: &str = "SELECT d.id, d.event_id, d.sink, d.state, d.attempts, d.next_at,
        d.created_at, d.updated_at, d.last_error, e.body
     FROM deliveries d JOIN events e ON e.id = d.event_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    let body: String = r.get(9)?;
    Ok(Delivery {
        id: r.get(0)?,
        event_id: r.get(1)?,
        sink: r.get(2)?,
        state: r.get(3)?,
        attempts: r.get(4)?,
        next_at: from_ms(r.get(5)?),
        created_at: from_ms(r.get(6)?),
        updated_at: r.get::<_, Option<i64>>(7)?.map(from_ms),
        last_error: r.get(8)?,
        event: event_of(&body),
    })
}

impl OutboxStore for SqliteOutbox {
    fn recover(&self) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE deliveries SET state = 'queued' WHERE state = 'sending'",
            [],
        )?)
    }

    fn insert(&self, ev: &NotifyEvent, sinks: &[String], state: &str) -> Result<Vec<i64>> {
        let now = ms(Utc::now());
        let body = serde_json::to_string(ev).unwrap_or_default();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO events (kind, body, created_at) VALUES (?1, ?2, ?3)",
            params![ev.kind.as_str(), body, now],
        )?;
        let event_id = tx.last_insert_rowid();
        let attempts = i64::from(state != "queued");
        let mut ids = Vec::new();
        for sink in sinks {
            tx.execute(
                "INSERT INTO deliveries (event_id, sink, state, attempts, next_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                params![
                    event_id,
                    sink,
                    state,
                    attempts,
                    now,
                    (state != "queued").then_some(now),
                ],
            )?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit()?;
        Ok(ids)
    }

    fn next(&self, sink: &str) -> Result<Option<Delivery>> {
        Ok(self
            .conn()
            .query_row(
                &format!("{SELECT} WHERE d.sink = ?1 AND d.state = 'queued' ORDER BY d.id LIMIT 1"),
                params![sink],
                row,
            )
            .optional()?)
    }

    fn claim(&self, id: i64) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ?2
             WHERE id = ?1 AND state = 'queued'",
            params![id, ms(Utc::now())],
        )?;
        Ok(n == 1)
    }

    fn sent(&self, id: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE deliveries SET state = 'sent', updated_at = ?2
             WHERE id = ?1 AND state = 'sending'",
            params![id, ms(Utc::now())],
        )?;
        Ok(())
    }

    fn retry(&self, id: i64, next_at: DateTime<Utc>, error: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE deliveries SET state = 'queued', next_at = ?2, last_error = ?3, updated_at = ?4
             WHERE id = ?1 AND state = 'sending'",
            params![id, ms(next_at), error, ms(Utc::now())],
        )?;
        Ok(())
    }

    fn failed(&self, id: i64, error: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE deliveries SET state = 'failed', last_error = ?2, updated_at = ?3
             WHERE id = ?1 AND state IN ('queued', 'sending')",
            params![id, error, ms(Utc::now())],
        )?;
        Ok(())
    }

    fn log(&self, limit: usize) -> Result<Vec<Delivery>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("{SELECT} ORDER BY d.id DESC LIMIT ?1"))?;
        Ok(st
            .query_map(params![limit as i64], row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn heads(&self) -> Result<Vec<(String, String, u32, String)>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT d.sink, d.state, d.attempts, COALESCE(d.last_error, '')
             FROM deliveries d
             WHERE d.id = (SELECT id FROM deliveries x WHERE x.sink = d.sink
                           ORDER BY (x.state IN ('queued', 'sending')) DESC,
                                    CASE WHEN x.state IN ('queued', 'sending') THEN x.id ELSE -x.id END
                           LIMIT 1)",
        )?;
        Ok(st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn set_failing(&self, group: &str, failing: bool) -> Result<bool> {
        let conn = self.conn();
        let was: bool = conn
            .query_row(
                "SELECT failing FROM export_groups WHERE grp = ?1",
                params![group],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false);
        conn.execute(
            "INSERT INTO export_groups (grp, failing) VALUES (?1, ?2)
             ON CONFLICT(grp) DO UPDATE SET failing = excluded.failing",
            params![group, failing],
        )?;
        Ok(was)
    }
}
