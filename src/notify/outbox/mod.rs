//! The durable outbox. An event is stored once (`events`), with one `deliveries` row per sink
//! that wants it. A delivery is `queued` → `sending` (claimed by compare-and-set, attempt
//! counted) → `sent` | `queued` again (a retry at `next_at`) | `failed` (given up). A
//! `sending` row found by a new deliverer was interrupted: it goes back to `queued`, so it
//! is sent at least once; a `sent` row is never sent again.
//!
//! In SQLite (`notify.db` beside the ledger, `sqlite.rs`) or in PostgreSQL (`storage.url`,
//! `pg.rs`), where every server queues into one outbox and the leader delivers.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{EventKind, NotifyEvent};
pub use crate::storage::StoreError;

pub mod pg;
mod sqlite;

pub use pg::PgOutbox;
pub use sqlite::SqliteOutbox;

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

type Result<T> = std::result::Result<T, StoreError>;

/// What differs between the stores. Every state change but `recover` is a compare-and-set on
/// the row's state, so a deliverer that lost the race (two servers leading for a moment)
/// changes nothing.
pub trait OutboxStore: Send + Sync {
    /// Puts deliveries left `sending` back in the queue; how many.
    fn recover(&self) -> Result<usize>;
    /// Stores `ev` (its kind and JSON body) with one delivery per sink in `state`, in one
    /// transaction; the deliveries' ids.
    fn insert(&self, ev: &NotifyEvent, sinks: &[String], state: &str) -> Result<Vec<i64>>;
    /// The sink's oldest queued delivery.
    fn next(&self, sink: &str) -> Result<Option<Delivery>>;
    /// `queued` → `sending`, counting the attempt; false when it was not queued.
    fn claim(&self, id: i64) -> Result<bool>;
    /// `sending` → `sent`.
    fn sent(&self, id: i64) -> Result<()>;
    /// `sending` → `queued` at `next_at`.
    fn retry(&self, id: i64, next_at: DateTime<Utc>, error: &str) -> Result<()>;
    /// `queued` or `sending` → `failed`.
    fn failed(&self, id: i64, error: &str) -> Result<()>;
    /// The last `limit` deliveries, newest first.
    fn log(&self, limit: usize) -> Result<Vec<Delivery>>;
    /// Per sink: the state, attempts and last error of its head (the oldest unfinished
    /// delivery, else the newest finished one).
    fn heads(&self) -> Result<Vec<(String, String, u32, String)>>;
    /// Sets whether `group`'s last export failed; whether it had failed before.
    fn set_failing(&self, group: &str, failing: bool) -> Result<bool>;
}

/// The outbox.
pub struct Outbox {
    store: Box<dyn OutboxStore>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// The event of a stored body (a placeholder for one this version cannot read).
fn event_of(body: &str) -> NotifyEvent {
    serde_json::from_str(body).unwrap_or_else(|_| {
        let mut e = NotifyEvent::new(EventKind::Test);
        e.reason = Some("unreadable event".into());
        e
    })
}

impl Outbox {
    /// Opens (creating, mode 0600) the SQLite outbox at `path`.
    pub fn open(path: &std::path::Path) -> Result<Outbox> {
        Ok(Outbox {
            store: Box::new(SqliteOutbox::open(path)?),
        })
    }

    /// Opens the outbox in a PostgreSQL database (migrated at first use by this process).
    pub fn open_pg(cfg: &crate::storage::PgConfig) -> Result<Outbox> {
        Ok(Outbox {
            store: Box::new(PgOutbox::open(cfg)?),
        })
    }

    /// Puts deliveries interrupted while `sending` back in the queue; how many.
    pub fn recover(&self) -> Result<usize> {
        self.store.recover()
    }

    /// Stores `ev` with one queued delivery per sink, in one transaction; the deliveries' ids.
    pub fn enqueue(&self, ev: &NotifyEvent, sinks: &[String]) -> Result<Vec<i64>> {
        if sinks.is_empty() {
            return Ok(vec![]);
        }
        self.store.insert(ev, sinks, "queued")
    }

    /// Stores `ev` with one delivery to `sink` already `sending` (attempt 1): a message sent
    /// directly (a test), whose end is then marked with `sent` or `failed`. Only a crash
    /// in between leaves it `sending`, and `recover` queues it again.
    pub fn start_direct(&self, ev: &NotifyEvent, sink: &str) -> Result<i64> {
        let ids = self.store.insert(ev, &[sink.to_string()], "sending")?;
        Ok(ids[0])
    }

    /// The sink's oldest queued delivery: the next to send, in order.
    pub fn next(&self, sink: &str) -> Result<Option<Delivery>> {
        self.store.next(sink)
    }

    /// Marks a queued delivery `sending` and counts the attempt; false when it was not
    /// queued any more (another deliverer took it).
    pub fn claim(&self, id: i64) -> Result<bool> {
        self.store.claim(id)
    }

    /// The receiver accepted it.
    pub fn sent(&self, id: i64) -> Result<()> {
        self.store.sent(id)
    }

    /// Another attempt at `next_at`.
    pub fn retry(&self, id: i64, next_at: DateTime<Utc>, error: &str) -> Result<()> {
        self.store.retry(id, next_at, error)
    }

    /// Given up.
    pub fn failed(&self, id: i64, error: &str) -> Result<()> {
        self.store.failed(id, error)
    }

    /// The last `limit` deliveries, newest first.
    pub fn log(&self, limit: usize) -> Result<Vec<Delivery>> {
        self.store.log(limit)
    }

    /// Each sink whose next message has failed `min_attempts` times or more, or whose last
    /// finished message was given up: (sink, attempts, last error).
    pub fn failing(&self, min_attempts: u32) -> Result<Vec<(String, u32, String)>> {
        Ok(self
            .store
            .heads()?
            .into_iter()
            .filter(|(_, state, attempts, _)| {
                state == "failed" || (state != "sent" && *attempts >= min_attempts)
            })
            .map(|(s, _, a, e)| (s, a, e))
            .collect())
    }

    /// Records an export outcome of `group`; the event it means: every failure is
    /// `export_failed`, the first success after one is `export_recovered`.
    pub fn export_outcome(&self, group: &str, ok: bool) -> Result<Option<EventKind>> {
        let was_failing = self.store.set_failing(group, !ok)?;
        Ok(match (ok, was_failing) {
            (false, _) => Some(EventKind::ExportFailed),
            (true, true) => Some(EventKind::ExportRecovered),
            (true, false) => None,
        })
    }
}
