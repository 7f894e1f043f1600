//! `Ledger`: releases and their append-only audit trail, in SQLite (`sqlite.rs`, the default)
//! or PostgreSQL (`pg.rs`, `storage.url`) behind one trait, `LedgerStore`. Every status change
//! is a compare-and-set under the store's write lock; the lifecycle is also enforced by the
//! database (triggers generated from the lifecycle table), so no writer at all can store a
//! forbidden status, and the audit is append-only. Both stores keep the same columns as the
//! same text, so the SHA-256 chain of `chain.rs` gives the same hashes on either, and a copy
//! verifies.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::actor::Actor;
use super::lifecycle::{self, Status};
use crate::storage::LedgerAt;

pub mod chain;
pub mod pg;
pub mod sqlite;
pub use chain::{Row as TamperRow, Tamper, Verified, VerifyError};
pub use pg::PgLedger;
pub use sqlite::SqliteLedger;

/// A release row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: i64,
    pub service_name: String,
    pub release_tag: String,
    pub rollback_to_tag: Option<String>,
    /// Image repository, when given at creation (else the service's configured one).
    pub image: Option<String>,
    pub status: Status,
    pub initiated_by: Option<String>,
    pub github_run_id: Option<String>,
    pub github_action_link: Option<String>,
    pub github_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// One audited transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub sudo_user: Option<String>,
    pub ssh_client: Option<String>,
    pub from: Option<String>,
    pub to: String,
    pub note: Option<String>,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A status change (or the creation).
    Transition,
    /// An action refused (status unchanged).
    Refusal,
    /// The engine runs a tag the ledger did not deploy last (status unchanged).
    ExternalChange,
    /// opsdeck put the service back after a failed deploy (status unchanged).
    AutomaticRollback,
    /// A deploy that never reached the engine: the release stays approved (status unchanged).
    NotDeployed,
}

impl AuditKind {
    /// The name, which also starts the note of the kinds that change no status.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Transition => "transition",
            AuditKind::Refusal => "refusal",
            AuditKind::ExternalChange => "external_change",
            AuditKind::AutomaticRollback => "automatic_rollback",
            AuditKind::NotDeployed => "not_deployed",
        }
    }

    /// The kind of an entry from its statuses and note.
    pub fn of(from: Option<&str>, to: &str, note: Option<&str>) -> AuditKind {
        if from != Some(to) {
            return AuditKind::Transition;
        }
        let note = note.unwrap_or("");
        [
            AuditKind::ExternalChange,
            AuditKind::AutomaticRollback,
            AuditKind::NotDeployed,
        ]
        .into_iter()
        .find(|k| {
            note.strip_prefix(k.as_str())
                .is_some_and(|r| r.starts_with(':'))
        })
        .unwrap_or(AuditKind::Refusal)
    }
}

impl AuditEntry {
    /// What this entry records.
    pub fn kind(&self) -> AuditKind {
        AuditKind::of(self.from.as_deref(), &self.to, self.note.as_deref())
    }
}

impl LedgerChange {
    /// What this change records.
    pub fn kind(&self) -> AuditKind {
        AuditKind::of(
            self.from.map(|s| s.as_str()),
            self.to.as_str(),
            self.note.as_deref(),
        )
    }
}

/// What `create` needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewRelease {
    pub service_name: String,
    pub release_tag: String,
    pub image: Option<String>,
    pub initiated_by: Option<String>,
    pub github_run_id: Option<String>,
    pub github_action_link: Option<String>,
    pub github_ref: Option<String>,
    pub status: Option<Status>,
}

/// Why a ledger call failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no release with id {0}")]
    NotFound(i64),
    #[error("release {id} is {current}{}; {}", last_change(.last), forbidden_text(*.current, *.to))]
    Forbidden {
        id: i64,
        current: Status,
        to: Status,
        last: Option<Box<AuditEntry>>,
    },
    #[error("the ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A PostgreSQL error, already worded (it never holds the password).
    #[error("the ledger: {0}")]
    Postgres(String),
}

impl From<postgres::Error> for LedgerError {
    fn from(e: postgres::Error) -> Self {
        LedgerError::Postgres(crate::storage::pg::describe(&e))
    }
}

fn last_change(last: &Option<Box<AuditEntry>>) -> String {
    match last {
        // "alice approved it 3 s ago": a second approver learns plainly who won.
        Some(a) => format!(
            " ({} {} {} ago, at {})",
            a.actor,
            match a.to.as_str() {
                "manual_test_passed" => "approved it".to_string(),
                "manual_test_failed" => "rejected it".to_string(),
                to => format!("set it to {to}"),
            },
            ago(Utc::now() - a.at),
            a.at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => String::new(),
    }
}

/// "3 s", "4 min", "2 h", "5 days".
fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

fn forbidden_text(current: Status, to: Status) -> String {
    lifecycle::check(current, to)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// A change written through this connection, for the observer (the server's event fan-out).
#[derive(Debug, Clone)]
pub struct LedgerChange {
    pub release: Release,
    pub actor: String,
    /// `None` for a creation; equal to `to` for an audited refusal.
    pub from: Option<Status>,
    pub to: Status,
    pub note: Option<String>,
}

/// Called after each committed change.
pub type Observer = std::sync::Arc<dyn Fn(LedgerChange) + Send + Sync>;

/// What a store does; `Ledger` adds the observer on top. Each write is one transaction under
/// the store's write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory transaction
/// lock), because the audit chain links every row to the one before it.
pub trait LedgerStore: Send {
    /// Inserts a release with `status` and its `created` audit row; returns its id.
    fn create(&self, new: &NewRelease, status: Status, actor: &Actor) -> Result<i64, LedgerError>;
    /// One release.
    fn get(&self, id: i64) -> Result<Option<Release>, LedgerError>;
    /// Releases, newest first, optionally of one service and/or status.
    fn list(
        &self,
        service: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<Release>, LedgerError>;
    /// The audit trail of a release, oldest first.
    fn audit(&self, id: i64) -> Result<Vec<AuditEntry>, LedgerError>;
    /// Compare-and-set from the current status to `to`, audited; returns the status it left.
    /// A move the lifecycle forbids is `LedgerError::Forbidden` with the last audit entry.
    fn transition(
        &self,
        id: i64,
        to: Status,
        actor: &Actor,
        note: Option<&str>,
        rollback_to: Option<&str>,
    ) -> Result<Status, LedgerError>;
    /// An audit entry that changes no status; returns the status.
    fn record(&self, id: i64, actor: &Actor, note: &str) -> Result<Status, LedgerError>;
    /// `(id, tag, when)` of a service's releases that reached `deployed`, newest first.
    fn deployed_tags(
        &self,
        service: &str,
    ) -> Result<Vec<(i64, String, DateTime<Utc>)>, LedgerError>;
    /// Changes whenever anyone commits a change to the ledger's tables.
    fn data_version(&self) -> Result<i64, LedgerError>;
    /// The tamper check of `chain.rs`.
    fn verify(&self) -> Result<Verified, VerifyError>;
    /// Takes "this process works on release `id`" for every server sharing the store, held
    /// until the returned value drops. SQLite: `NotShared` (the desk's file lock is enough,
    /// one server per file).
    fn hold_work(&self, _id: i64) -> Result<WorkHold, LedgerError> {
        Ok(WorkHold::NotShared)
    }
    /// Whether some server holds the work lock of `id` (a deploy in flight there).
    fn work_held(&self, _id: i64) -> Result<bool, LedgerError> {
        Ok(false)
    }
    /// The SQLite connection, for tests that play a foreign writer.
    fn sqlite(&self) -> Option<&Connection> {
        None
    }
}

/// The outcome of `LedgerStore::hold_work`.
pub enum WorkHold {
    /// The store has no shared work lock.
    NotShared,
    /// Held while this lives.
    Held(Box<dyn std::any::Any + Send>),
    /// Another server (or connection) works on it.
    Busy,
}

/// `OLD.status = 'a' AND NEW.status = 'b' OR ...` for every move the lifecycle allows: the
/// condition both stores' triggers are generated from.
pub(crate) fn allowed_moves_sql() -> String {
    let pairs: Vec<String> = Status::ALL
        .iter()
        .flat_map(|from| {
            from.next()
                .iter()
                .map(move |to| format!("(OLD.status = '{from}' AND NEW.status = '{to}')"))
        })
        .collect();
    pairs.join(" OR ")
}

/// `'initiated', 'building', ...`: the statuses a release may have.
pub(crate) fn statuses_sql() -> String {
    let s: Vec<String> = Status::ALL.iter().map(|s| format!("'{s}'")).collect();
    s.join(", ")
}

/// Which columns a transition to `to` stamps: `(started, completed)`.
pub(crate) fn stamps(to: Status) -> (bool, bool) {
    let started = matches!(to, Status::Deploying | Status::Rollback);
    let completed = matches!(
        to,
        Status::Deployed
            | Status::ProductionFailed
            | Status::RollbackDone
            | Status::RollbackFailed
            | Status::StagingFailed
            | Status::ManualTestFailed
    );
    (started, completed)
}

/// The time as the ledger stores it (RFC 3339 text on both stores: the chain hashes it).
pub(crate) fn now_text() -> String {
    Utc::now().to_rfc3339()
}

pub(crate) fn parse_time(s: String) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The ledger.
pub struct Ledger {
    store: Box<dyn LedgerStore>,
    observer: Option<Observer>,
}

impl Ledger {
    /// Opens (creating and migrating) the SQLite ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Ok(Ledger::with_store(Box::new(SqliteLedger::open(path)?)))
    }

    /// Opens (creating and migrating) the ledger wherever `at` says.
    pub fn open_at(at: &LedgerAt) -> Result<Ledger, LedgerError> {
        match at {
            LedgerAt::Sqlite(path) => Ledger::open(path),
            LedgerAt::Postgres(pg) => Ok(Ledger::with_store(Box::new(PgLedger::open(pg)?))),
        }
    }

    /// A ledger over any store.
    pub fn with_store(store: Box<dyn LedgerStore>) -> Ledger {
        Ledger {
            store,
            observer: None,
        }
    }

    /// Checks the audit hash chain and every release against its last audit row; names the
    /// first row that does not match.
    pub fn verify(&self) -> Result<Verified, VerifyError> {
        self.store.verify()
    }

    /// Calls `f` after every change this connection commits.
    pub fn observe(&mut self, f: Observer) {
        self.observer = Some(f);
    }

    fn notify(
        &self,
        release: &Release,
        actor: &Actor,
        from: Option<Status>,
        to: Status,
        note: Option<&str>,
    ) {
        if let Some(f) = &self.observer {
            f(LedgerChange {
                release: release.clone(),
                actor: actor.person().to_string(),
                from,
                to,
                note: note.map(str::to_string),
            });
        }
    }

    /// Registers a release (status `initiated`, or `building`/`manual_testing` when CI says
    /// so) and audits its creation.
    pub fn create(&mut self, new: &NewRelease, actor: &Actor) -> Result<Release, LedgerError> {
        let status = new.status.unwrap_or(Status::Initiated);
        let id = self.store.create(new, status, actor)?;
        let r = self.get(id)?.ok_or(LedgerError::NotFound(id))?;
        self.notify(&r, actor, None, status, Some("created"));
        Ok(r)
    }

    /// One release.
    pub fn get(&self, id: i64) -> Result<Option<Release>, LedgerError> {
        self.store.get(id)
    }

    /// Releases, newest first, optionally of one service and/or status.
    pub fn list(
        &self,
        service: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<Release>, LedgerError> {
        self.store.list(service, status)
    }

    /// The audit trail of a release, oldest first.
    pub fn audit(&self, id: i64) -> Result<Vec<AuditEntry>, LedgerError> {
        self.store.audit(id)
    }

    /// Moves a release to `to` if the lifecycle allows it from its current status, as one
    /// compare-and-set: concurrent callers serialise on the write lock and the loser is told
    /// the status it lost to, who set it, and when.
    pub fn transition(
        &mut self,
        id: i64,
        to: Status,
        actor: &Actor,
        note: Option<&str>,
        rollback_to: Option<&str>,
    ) -> Result<Release, LedgerError> {
        let from = self.store.transition(id, to, actor, note, rollback_to)?;
        let r = self.get(id)?.ok_or(LedgerError::NotFound(id))?;
        self.notify(&r, actor, Some(from), to, note);
        Ok(r)
    }

    /// Audits a refused action without changing the status.
    pub fn record_refusal(
        &mut self,
        id: i64,
        actor: &Actor,
        note: &str,
    ) -> Result<(), LedgerError> {
        let current = self.store.record(id, actor, note)?;
        if let Some(r) = self.get(id)? {
            self.notify(&r, actor, Some(current), current, Some(note));
        }
        Ok(())
    }

    /// Audits something that changes no status: an `external_change` the engine showed, or
    /// an `automatic_rollback` after a failed deploy. The note starts with the kind's name.
    pub fn record_note(
        &mut self,
        id: i64,
        actor: &Actor,
        kind: AuditKind,
        note: &str,
    ) -> Result<(), LedgerError> {
        let note = format!("{}: {note}", kind.as_str());
        let current = self.store.record(id, actor, &note)?;
        if let Some(r) = self.get(id)? {
            self.notify(&r, actor, Some(current), current, Some(&note));
        }
        Ok(())
    }

    /// Tags of a service's releases that reached `deployed`, newest first (rollback targets).
    pub fn deployed_tags(
        &self,
        service: &str,
    ) -> Result<Vec<(i64, String, DateTime<Utc>)>, LedgerError> {
        self.store.deployed_tags(service)
    }

    /// See `LedgerStore::hold_work`.
    pub fn hold_work(&self, id: i64) -> Result<WorkHold, LedgerError> {
        self.store.hold_work(id)
    }

    /// See `LedgerStore::work_held`.
    pub fn work_held(&self, id: i64) -> Result<bool, LedgerError> {
        self.store.work_held(id)
    }

    /// Changes when any connection commits; cheap to poll for "something changed".
    pub fn data_version(&self) -> Result<i64, LedgerError> {
        self.store.data_version()
    }

    /// The raw SQLite connection (`None` on PostgreSQL), for tests that play a foreign writer.
    #[doc(hidden)]
    pub fn sqlite_connection(&self) -> Option<&Connection> {
        self.store.sqlite()
    }
}
