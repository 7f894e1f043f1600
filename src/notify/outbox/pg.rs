//! The outbox in PostgreSQL (`storage.url`): every server queues here, the leader delivers.
//! SQLite's columns (times as epoch milliseconds), tables prefixed `notify_`.

use chrono::{DateTime, Utc};

use super::{Delivery, NotifyEvent, OutboxStore, Result, StoreError, event_of, from_ms, ms};
use crate::storage::PgConfig;
use crate::storage::pg::{Migration, migrate_once};

/// Held by each enqueue until it commits: ids then follow commit order, so a deliverer never
/// sends a later message of a sink before an earlier one that was still being written.
pub const ENQUEUE_LOCK: i64 = 0x6f70_7364_6b00_0004;

/// The outbox's schema (`opsdeck_migrations`, component `outbox`).
pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        sql: "CREATE TABLE notify_events (
                id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL,
                created_at BIGINT NOT NULL);
              CREATE TABLE notify_deliveries (
                id BIGSERIAL PRIMARY KEY,
                event_id BIGINT NOT NULL REFERENCES notify_events(id),
                sink TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT,
                last_error TEXT);
              CREATE INDEX notify_deliveries_sink ON notify_deliveries(sink, state, id);
              CREATE TABLE notify_export_groups (grp TEXT PRIMARY KEY, failing BOOLEAN NOT NULL);"
            .into(),
    }]
}

/// The outbox in a PostgreSQL database; each call borrows a pooled connection.
pub struct PgOutbox {
    cfg: PgConfig,
}

impl PgOutbox {
    /// Brings the schema up to date (once per database and process).
    pub fn open(cfg: &PgConfig) -> Result<PgOutbox> {
        migrate_once(cfg, "outbox", &migrations()).map_err(StoreError::Postgres)?;
        Ok(PgOutbox { cfg: cfg.clone() })
    }

    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> std::result::Result<T, postgres::Error> + Send,
    ) -> Result<T> {
        let c = self.cfg.connect().map_err(StoreError::Postgres)?;
        Ok(c.with(f)?)
    }
}

const SELECT: &str = "SELECT d.id, d.event_id, d.sink, d.state, d.attempts, d.next_at,
        d.created_at, d.updated_at, d.last_error, e.body
     FROM notify_deliveries d JOIN notify_events e ON e.id = d.event_id";

fn row(r: &postgres::Row) -> Delivery {
    Delivery {
        id: r.get(0),
        event_id: r.get(1),
        sink: r.get(2),
        state: r.get(3),
        attempts: r.get::<_, i32>(4).max(0) as u32,
        next_at: from_ms(r.get(5)),
        created_at: from_ms(r.get(6)),
        updated_at: r.get::<_, Option<i64>>(7).map(from_ms),
        last_error: r.get(8),
        event: event_of(r.get(9)),
    }
}

impl OutboxStore for PgOutbox {
    fn recover(&self) -> Result<usize> {
        self.with(|c| {
            c.execute(
                "UPDATE notify_deliveries SET state = 'queued' WHERE state = 'sending'",
                &[],
            )
            .map(|n| n as usize)
        })
    }

    fn insert(&self, ev: &NotifyEvent, sinks: &[String], state: &str) -> Result<Vec<i64>> {
        let now = ms(Utc::now());
        let body = serde_json::to_string(ev).unwrap_or_default();
        let kind = ev.kind.as_str();
        let attempts = i32::from(state != "queued");
        let updated = (state != "queued").then_some(now);
        self.with(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ENQUEUE_LOCK])?;
            let event_id: i64 = tx
                .query_one(
                    "INSERT INTO notify_events (kind, body, created_at) VALUES ($1, $2, $3)
                     RETURNING id",
                    &[&kind, &body, &now],
                )?
                .get(0);
            let mut ids = Vec::new();
            for sink in sinks {
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO notify_deliveries
                           (event_id, sink, state, attempts, next_at, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id",
                        &[&event_id, sink, &state, &attempts, &now, &updated],
                    )?
                    .get(0);
                ids.push(id);
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    fn next(&self, sink: &str) -> Result<Option<Delivery>> {
        self.with(|c| {
            Ok(c.query_opt(
                &format!("{SELECT} WHERE d.sink = $1 AND d.state = 'queued' ORDER BY d.id LIMIT 1"),
                &[&sink],
            )?
            .map(|r| row(&r)))
        })
    }

    fn claim(&self, id: i64) -> Result<bool> {
        let now = ms(Utc::now());
        let n = self.with(move |c| {
            c.execute(
                "UPDATE notify_deliveries SET state = 'sending', attempts = attempts + 1,
                   updated_at = $2
                 WHERE id = $1 AND state = 'queued'",
                &[&id, &now],
            )
        })?;
        Ok(n == 1)
    }

    fn sent(&self, id: i64) -> Result<()> {
        let now = ms(Utc::now());
        self.with(move |c| {
            c.execute(
                "UPDATE notify_deliveries SET state = 'sent', updated_at = $2
                 WHERE id = $1 AND state = 'sending'",
                &[&id, &now],
            )
            .map(drop)
        })
    }

    fn retry(&self, id: i64, next_at: DateTime<Utc>, error: &str) -> Result<()> {
        let (now, next_at) = (ms(Utc::now()), ms(next_at));
        self.with(move |c| {
            c.execute(
                "UPDATE notify_deliveries SET state = 'queued', next_at = $2, last_error = $3,
                   updated_at = $4
                 WHERE id = $1 AND state = 'sending'",
                &[&id, &next_at, &error, &now],
            )
            .map(drop)
        })
    }

    fn failed(&self, id: i64, error: &str) -> Result<()> {
        let now = ms(Utc::now());
        self.with(move |c| {
            c.execute(
                "UPDATE notify_deliveries SET state = 'failed', last_error = $2, updated_at = $3
                 WHERE id = $1 AND state IN ('queued', 'sending')",
                &[&id, &error, &now],
            )
            .map(drop)
        })
    }

    fn log(&self, limit: usize) -> Result<Vec<Delivery>> {
        let limit = limit as i64;
        self.with(move |c| {
            Ok(
                c.query(&format!("{SELECT} ORDER BY d.id DESC LIMIT $1"), &[&limit])?
                    .iter()
                    .map(row)
                    .collect(),
            )
        })
    }

    fn heads(&self) -> Result<Vec<(String, String, u32, String)>> {
        self.with(|c| {
            Ok(c.query(
                "SELECT d.sink, d.state, d.attempts, COALESCE(d.last_error, '')
                 FROM notify_deliveries d
                 WHERE d.id = (SELECT id FROM notify_deliveries x WHERE x.sink = d.sink
                               ORDER BY (x.state IN ('queued', 'sending')) DESC,
                                        CASE WHEN x.state IN ('queued', 'sending')
                                             THEN x.id ELSE -x.id END
                               LIMIT 1)",
                &[],
            )?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get::<_, i32>(2).max(0) as u32,
                    r.get(3),
                )
            })
            .collect())
        })
    }

    fn set_failing(&self, group: &str, failing: bool) -> Result<bool> {
        self.with(move |c| {
            let mut tx = c.transaction()?;
            // The row locked, so two servers recording outcomes of one group take turns.
            let was: bool = tx
                .query_opt(
                    "SELECT failing FROM notify_export_groups WHERE grp = $1 FOR UPDATE",
                    &[&group],
                )?
                .map(|r| r.get(0))
                .unwrap_or(false);
            tx.execute(
                "INSERT INTO notify_export_groups (grp, failing) VALUES ($1, $2)
                 ON CONFLICT (grp) DO UPDATE SET failing = excluded.failing",
                &[&group, &failing],
            )?;
            tx.commit()?;
            Ok(was)
        })
    }
}
