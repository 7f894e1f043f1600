//! The durable outbox: `notify.db` (SQLite, WAL, mode 0600) next to the ledger. An event is
//! stored once (`events`), with one `deliveries` row per sink that wants it. A delivery is
//! `queued` → `sending` (claimed, attempt counted) → `sent` | `queued` again (a retry at
//! `next_at`) | `failed` (given up). A `sending` row found at start was interrupted: it goes
//! back to `queued`, so it is sent at least once.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{EventKind, NotifyEvent};

const SCHEMA_VERSION: i64 = 1;

/// One message to one sink, with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery's id: webhooks carry it as `id`, for receivers to drop a repeat.
    pub id: i64,
    pub event_id: i64,
    pub sink: String,
    /// `queued`, `sending`, `sent` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub next_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub event: NotifyEvent,
}

/// The outbox.
pub struct Outbox {
    conn: Connection,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

impl Outbox {
    /// Opens (creating, mode 0600) the outbox at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Outbox> {
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
        Ok(Outbox { conn })
    }

    /// Puts deliveries interrupted while `sending` back in the queue; how many.
    pub fn recover(&self) -> rusqlite::Result<usize> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'queued' WHERE state = 'sending'",
            [],
        )
    }

    /// Stores `ev` with one queued delivery per sink, in one transaction; the deliveries' ids.
    pub fn enqueue(&mut self, ev: &NotifyEvent, sinks: &[String]) -> rusqlite::Result<Vec<i64>> {
        self.insert(ev, sinks, "queued", None)
    }

    /// Stores `ev` with one delivery to `sink` already `sending` (attempt 1): a message sent
    /// directly (a test), whose end is then marked with `sent` or `failed`. Only a crash
    /// in between leaves it `sending`, and `recover` queues it again.
    pub fn start_direct(&mut self, ev: &NotifyEvent, sink: &str) -> rusqlite::Result<i64> {
        let ids = self.insert(ev, &[sink.to_string()], "sending", None)?;
        Ok(ids[0])
    }

    fn insert(
        &mut self,
        ev: &NotifyEvent,
        sinks: &[String],
        state: &str,
        error: Option<&str>,
    ) -> rusqlite::Result<Vec<i64>> {
        if sinks.is_empty() {
            return Ok(vec![]);
        }
        let now = ms(Utc::now());
        let body = serde_json::to_string(ev).unwrap_or_default();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO events (kind, body, created_at) VALUES (?1, ?2, ?3)",
            params![ev.kind.as_str(), body, now],
        )?;
        let event_id = tx.last_insert_rowid();
        let attempts = i64::from(state != "queued");
        let mut ids = Vec::new();
        for sink in sinks {
            tx.execute(
                "INSERT INTO deliveries (event_id, sink, state, attempts, next_at, created_at, updated_at, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
                params![
                    event_id,
                    sink,
                    state,
                    attempts,
                    now,
                    (state != "queued").then_some(now),
                    error
                ],
            )?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit()?;
        Ok(ids)
    }

    const SELECT: &'static str = "SELECT d.id, d.event_id, d.sink, d.state, d.attempts, d.next_at,
            d.created_at, d.updated_at, d.last_error, e.body
         FROM deliveries d JOIN events e ON e.id = d.event_id";

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
        let body: String = r.get(9)?;
        let event = serde_json::from_str(&body).unwrap_or_else(|_| {
            let mut e = NotifyEvent::new(EventKind::Test);
            e.reason = Some("unreadable event".into());
            e
        });
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
            event,
        })
    }

    /// The sink's oldest queued delivery: the next to send, in order.
    pub fn next(&self, sink: &str) -> rusqlite::Result<Option<Delivery>> {
        self.conn
            .query_row(
                &format!(
                    "{} WHERE d.sink = ?1 AND d.state = 'queued' ORDER BY d.id LIMIT 1",
                    Self::SELECT
                ),
                params![sink],
                Self::row,
            )
            .optional()
    }

    /// Marks a delivery `sending` and counts the attempt.
    pub fn claim(&self, id: i64) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ?2
             WHERE id = ?1",
            params![id, ms(Utc::now())],
        )?;
        Ok(())
    }

    /// The receiver accepted it.
    pub fn sent(&self, id: i64) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'sent', updated_at = ?2 WHERE id = ?1",
            params![id, ms(Utc::now())],
        )?;
        Ok(())
    }

    /// Another attempt at `next_at`.
    pub fn retry(&self, id: i64, next_at: DateTime<Utc>, error: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'queued', next_at = ?2, last_error = ?3, updated_at = ?4
             WHERE id = ?1",
            params![id, ms(next_at), error, ms(Utc::now())],
        )?;
        Ok(())
    }

    /// Given up.
    pub fn failed(&self, id: i64, error: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'failed', last_error = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, error, ms(Utc::now())],
        )?;
        Ok(())
    }

    /// The last `limit` deliveries, newest first.
    pub fn log(&self, limit: usize) -> rusqlite::Result<Vec<Delivery>> {
        let mut st = self
            .conn
            .prepare(&format!("{} ORDER BY d.id DESC LIMIT ?1", Self::SELECT))?;
        st.query_map(params![limit as i64], Self::row)?.collect()
    }

    /// Each sink whose next message has failed `min_attempts` times or more, or whose last
    /// finished message was given up: (sink, attempts, last error).
    pub fn failing(&self, min_attempts: u32) -> rusqlite::Result<Vec<(String, u32, String)>> {
        let mut st = self.conn.prepare(
            "SELECT d.sink, d.state, d.attempts, COALESCE(d.last_error, '')
             FROM deliveries d
             WHERE d.id = (SELECT id FROM deliveries x WHERE x.sink = d.sink
                           ORDER BY (x.state IN ('queued', 'sending')) DESC,
                                    CASE WHEN x.state IN ('queued', 'sending') THEN x.id ELSE -x.id END
                           LIMIT 1)",
        )?;
        let rows: Vec<(String, String, u32, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .filter(|(_, state, attempts, _)| {
                state == "failed" || (state != "sent" && *attempts >= min_attempts)
            })
            .map(|(s, _, a, e)| (s, a, e))
            .collect())
    }

    /// Records an export outcome of `group`; the event it means: every failure is
    /// `export_failed`, the first success after one is `export_recovered`.
    pub fn export_outcome(&self, group: &str, ok: bool) -> rusqlite::Result<Option<EventKind>> {
        let was_failing: bool = self
            .conn
            .query_row(
                "SELECT failing FROM export_groups WHERE grp = ?1",
                params![group],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false);
        self.conn.execute(
            "INSERT INTO export_groups (grp, failing) VALUES (?1, ?2)
             ON CONFLICT(grp) DO UPDATE SET failing = excluded.failing",
            params![group, !ok],
        )?;
        Ok(match (ok, was_failing) {
            (false, _) => Some(EventKind::ExportFailed),
            (true, true) => Some(EventKind::ExportRecovered),
            (true, false) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tag: &str) -> NotifyEvent {
        let mut e = NotifyEvent::new(EventKind::ReleaseWaiting);
        e.service = Some("api".into());
        e.tag = Some(tag.into());
        e
    }

    #[test]
    fn in_order_per_sink_and_a_sending_row_is_queued_again_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.db");
        let mut o = Outbox::open(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let a = o.enqueue(&ev("v1"), &["t".into(), "w".into()]).unwrap();
        let b = o.enqueue(&ev("v2"), &["t".into()]).unwrap();
        assert_eq!(o.next("t").unwrap().unwrap().id, a[0]);
        o.claim(a[0]).unwrap();
        // The process dies here: the row stays `sending` and is the next one again.
        drop(o);
        let o = Outbox::open(&path).unwrap();
        assert_eq!(o.recover().unwrap(), 1);
        let d = o.next("t").unwrap().unwrap();
        assert_eq!((d.id, d.state.as_str(), d.attempts), (a[0], "queued", 1));
        o.claim(d.id).unwrap();
        o.sent(d.id).unwrap();
        assert_eq!(o.next("t").unwrap().unwrap().id, b[0]);
        assert_eq!(
            o.next("w").unwrap().unwrap().event.tag.as_deref(),
            Some("v1")
        );
        let log = o.log(10).unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(log.iter().filter(|d| d.state == "sent").count(), 1);
    }

    #[test]
    fn failing_sinks_and_export_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&dir.path().join("notify.db")).unwrap();
        let id = o.enqueue(&ev("v1"), &["t".into()]).unwrap()[0];
        for _ in 0..3 {
            o.claim(id).unwrap();
            o.retry(id, Utc::now(), "connection refused").unwrap();
        }
        assert_eq!(
            o.failing(3).unwrap(),
            vec![("t".to_string(), 3, "connection refused".to_string())]
        );
        o.claim(id).unwrap();
        o.sent(id).unwrap();
        assert!(o.failing(3).unwrap().is_empty());
        assert_eq!(o.export_outcome("API", true).unwrap(), None);
        assert_eq!(
            o.export_outcome("API", false).unwrap(),
            Some(EventKind::ExportFailed)
        );
        assert_eq!(
            o.export_outcome("API", true).unwrap(),
            Some(EventKind::ExportRecovered)
        );
        assert_eq!(o.export_outcome("API", true).unwrap(), None);
    }
}
