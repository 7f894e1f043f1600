//! `Ledger`: releases and their append-only audit trail in SQLite (WAL, busy timeout, schema
//! versioned with `user_version`). Every status change is a compare-and-set inside
//! `BEGIN IMMEDIATE`; the lifecycle is also enforced by SQL triggers, so no writer at all can
//! store a forbidden status.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::actor::Actor;
use super::lifecycle::{self, Status};

/// 1: releases and audit; 2: the audit hash chain (`chain.rs`).
const SCHEMA_VERSION: i64 = 2;

pub mod chain;
pub use chain::{Row as TamperRow, Tamper, Verified, VerifyError};

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

/// The ledger.
pub struct Ledger {
    conn: Connection,
    observer: Option<Observer>,
}

/// Only these transitions may be written: generated from the lifecycle table.
fn lifecycle_trigger() -> String {
    let pairs: Vec<String> = Status::ALL
        .iter()
        .flat_map(|from| {
            from.next()
                .iter()
                .map(move |to| format!("(OLD.status = '{from}' AND NEW.status = '{to}')"))
        })
        .collect();
    format!(
        "CREATE TRIGGER IF NOT EXISTS releases_lifecycle BEFORE UPDATE OF status ON releases
         WHEN OLD.status <> NEW.status AND NOT ({})
         BEGIN SELECT RAISE(ABORT, 'the release lifecycle forbids this transition'); END;",
        pairs.join(" OR ")
    )
}

impl Ledger {
    /// Opens (creating and migrating) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        // 0600 from the start, -wal and -shm too; an existing ledger keeps its mode (in local
        // mode it may be shared on purpose).
        let mut conn = crate::private::open_db(path, false)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        crate::sqlite::enable_wal(&conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            // Decided again under the write lock: another process may have created or
            // migrated the ledger since the read above, and a step run twice would fail (or
            // set the version back).
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if now < 1 {
                let statuses: Vec<String> = Status::ALL.iter().map(|s| format!("'{s}'")).collect();
                tx.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS releases (
                       id INTEGER PRIMARY KEY,
                       service_name TEXT NOT NULL,
                       release_tag TEXT NOT NULL,
                       rollback_to_tag TEXT,
                       image TEXT,
                       status TEXT NOT NULL CHECK (status IN ({})),
                       initiated_by TEXT, github_run_id TEXT, github_action_link TEXT, github_ref TEXT,
                       created_at TEXT NOT NULL, started_at TEXT, completed_at TEXT);
                     CREATE TABLE IF NOT EXISTS audit (
                       id INTEGER PRIMARY KEY,
                       release_id INTEGER NOT NULL REFERENCES releases(id),
                       at TEXT NOT NULL, actor TEXT NOT NULL, sudo_user TEXT, ssh_client TEXT,
                       from_status TEXT, to_status TEXT NOT NULL, note TEXT);
                     CREATE INDEX IF NOT EXISTS audit_release ON audit(release_id, id);
                     CREATE INDEX IF NOT EXISTS releases_service ON releases(service_name, id);
                     CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
                       BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
                     CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
                       BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
                     {}",
                    statuses.join(", "),
                    lifecycle_trigger()
                ))?;
            }
            if now < 2 {
                chain::migrate(&tx)?;
            }
            if now < SCHEMA_VERSION {
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            tx.commit()?;
        }
        Ok(Ledger {
            conn,
            observer: None,
        })
    }

    /// Checks the audit hash chain and every release against its last audit row; names the
    /// first row that does not match.
    pub fn verify(&self) -> Result<Verified, VerifyError> {
        chain::verify(&self.conn)
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
        let now = Utc::now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO releases (service_name, release_tag, image, status, initiated_by, github_run_id,
                                   github_action_link, github_ref, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                new.service_name,
                new.release_tag,
                new.image,
                status.as_str(),
                new.initiated_by,
                new.github_run_id,
                new.github_action_link,
                new.github_ref,
                now.to_rfc3339()
            ],
        )?;
        let id = tx.last_insert_rowid();
        audit(&tx, id, actor, None, status, Some("created"))?;
        tx.commit()?;
        let r = self.get(id)?.ok_or(LedgerError::NotFound(id))?;
        self.notify(&r, actor, None, status, Some("created"));
        Ok(r)
    }

    /// One release.
    pub fn get(&self, id: i64) -> Result<Option<Release>, LedgerError> {
        Ok(self
            .conn
            .query_row(&format!("{SELECT} WHERE id = ?1"), params![id], row)
            .optional()?)
    }

    /// Releases, newest first, optionally of one service and/or status.
    pub fn list(
        &self,
        service: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<Release>, LedgerError> {
        let mut st = self.conn.prepare(&format!(
            "{SELECT} WHERE (?1 IS NULL OR service_name = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY id DESC"
        ))?;
        let rows = st.query_map(params![service, status.map(|s| s.as_str())], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The audit trail of a release, oldest first.
    pub fn audit(&self, id: i64) -> Result<Vec<AuditEntry>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT at, actor, sudo_user, ssh_client, from_status, to_status, note FROM audit
             WHERE release_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![id], audit_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = status_of(&tx, id)?;
        if lifecycle::check(current, to).is_err() {
            let last = tx
                .query_row(
                    "SELECT at, actor, sudo_user, ssh_client, from_status, to_status, note FROM audit
                     WHERE release_id = ?1 ORDER BY id DESC LIMIT 1",
                    params![id],
                    audit_row,
                )
                .optional()?
                .map(Box::new);
            return Err(LedgerError::Forbidden {
                id,
                current,
                to,
                last,
            });
        }
        let now = Utc::now().to_rfc3339();
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
        tx.execute(
            "UPDATE releases SET status = ?2,
               started_at = CASE WHEN ?3 THEN ?4 ELSE started_at END,
               completed_at = CASE WHEN ?5 THEN ?4 WHEN ?3 THEN NULL ELSE completed_at END,
               rollback_to_tag = COALESCE(?6, rollback_to_tag)
             WHERE id = ?1 AND status = ?7",
            params![
                id,
                to.as_str(),
                started,
                now,
                completed,
                rollback_to,
                current.as_str()
            ],
        )?;
        audit(&tx, id, actor, Some(current), to, note)?;
        tx.commit()?;
        let r = self.get(id)?.ok_or(LedgerError::NotFound(id))?;
        self.notify(&r, actor, Some(current), to, note);
        Ok(r)
    }

    /// Audits a refused action without changing the status.
    pub fn record_refusal(
        &mut self,
        id: i64,
        actor: &Actor,
        note: &str,
    ) -> Result<(), LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = status_of(&tx, id)?;
        audit(&tx, id, actor, Some(current), current, Some(note))?;
        tx.commit()?;
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
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = status_of(&tx, id)?;
        audit(&tx, id, actor, Some(current), current, Some(&note))?;
        tx.commit()?;
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
        let mut st = self.conn.prepare(
            "SELECT r.id, r.release_tag, MAX(a.at) FROM releases r JOIN audit a ON a.release_id = r.id
             WHERE r.service_name = ?1 AND a.to_status = 'deployed'
             GROUP BY r.id ORDER BY MAX(a.id) DESC",
        )?;
        let rows = st.query_map(params![service], |r| {
            Ok((r.get(0)?, r.get(1)?, parse_time(r.get(2)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Changes when any connection commits; cheap to poll for "something changed".
    pub fn data_version(&self) -> Result<i64, LedgerError> {
        let files: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        let rows: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM audit", [], |r| r.get(0))?;
        Ok(files * 1_000_000_007 + rows)
    }

    /// The raw connection, for tests that play a foreign writer.
    #[doc(hidden)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

const SELECT: &str = "SELECT id, service_name, release_tag, rollback_to_tag, image, status, initiated_by,
    github_run_id, github_action_link, github_ref, created_at, started_at, completed_at FROM releases";

fn parse_time(s: String) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Release> {
    let status: String = r.get(5)?;
    Ok(Release {
        id: r.get(0)?,
        service_name: r.get(1)?,
        release_tag: r.get(2)?,
        rollback_to_tag: r.get(3)?,
        image: r.get(4)?,
        status: status.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, e.into())
        })?,
        initiated_by: r.get(6)?,
        github_run_id: r.get(7)?,
        github_action_link: r.get(8)?,
        github_ref: r.get(9)?,
        created_at: parse_time(r.get(10)?),
        started_at: r.get::<_, Option<String>>(11)?.map(parse_time),
        completed_at: r.get::<_, Option<String>>(12)?.map(parse_time),
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        at: parse_time(r.get(0)?),
        actor: r.get(1)?,
        sudo_user: r.get(2)?,
        ssh_client: r.get(3)?,
        from: r.get(4)?,
        to: r.get(5)?,
        note: r.get(6)?,
    })
}

/// The current status of a release, inside a transaction.
fn status_of(tx: &rusqlite::Transaction<'_>, id: i64) -> Result<Status, LedgerError> {
    let current: Option<String> = tx
        .query_row(
            "SELECT status FROM releases WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    // The CHECK constraint keeps unknown names out; a parse failure would be a corrupt file.
    current
        .ok_or(LedgerError::NotFound(id))?
        .parse()
        .map_err(|e: String| {
            LedgerError::Sql(rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                e.into(),
            ))
        })
}

fn audit(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    actor: &Actor,
    from: Option<Status>,
    to: Status,
    note: Option<&str>,
) -> rusqlite::Result<()> {
    chain::append(
        tx,
        id,
        &Utc::now().to_rfc3339(),
        &actor.user,
        actor.sudo_user.as_deref(),
        actor.ssh_client.as_deref(),
        from.map(|s| s.as_str()),
        to.as_str(),
        note,
    )
}

#[cfg(test)]
mod tests;
