//! The ledger in SQLite (the default): WAL, busy timeout, schema versioned with
//! `user_version`; every write inside `BEGIN IMMEDIATE` (the write lock).

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::chain::{self, Verified, VerifyError};
use super::{
    AuditEntry, LedgerError, LedgerStore, NewRelease, Release, allowed_moves_sql, now_text,
    parse_time, stamps, statuses_sql,
};
use crate::release::actor::Actor;
use crate::release::lifecycle::{self, Status};

/// 1: releases and audit; 2: the audit hash chain (`chain.rs`).
const SCHEMA_VERSION: i64 = 2;

/// A ledger file.
pub struct SqliteLedger {
    conn: Connection,
}

/// Only these transitions may be written: generated from the lifecycle table.
fn lifecycle_trigger() -> String {
    format!(
        "CREATE TRIGGER IF NOT EXISTS releases_lifecycle BEFORE UPDATE OF status ON releases
         WHEN OLD.status <> NEW.status AND NOT ({})
         BEGIN SELECT RAISE(ABORT, 'the release lifecycle forbids this transition'); END;",
        allowed_moves_sql()
    )
}

impl SqliteLedger {
    /// Opens (creating and migrating) the ledger at `path`.
    pub fn open(path: &Path) -> Result<SqliteLedger, LedgerError> {
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
                    statuses_sql(),
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
        Ok(SqliteLedger { conn })
    }
}

impl LedgerStore for SqliteLedger {
    fn create(&self, new: &NewRelease, status: Status, actor: &Actor) -> Result<i64, LedgerError> {
        let tx = immediate(&self.conn)?;
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
                now_text()
            ],
        )?;
        let id = tx.last_insert_rowid();
        audit(&tx, id, actor, None, status, Some("created"))?;
        tx.commit()?;
        Ok(id)
    }

    fn get(&self, id: i64) -> Result<Option<Release>, LedgerError> {
        Ok(self
            .conn
            .query_row(&format!("{SELECT} WHERE id = ?1"), params![id], row)
            .optional()?)
    }

    fn list(
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

    fn audit(&self, id: i64) -> Result<Vec<AuditEntry>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT at, actor, sudo_user, ssh_client, from_status, to_status, note FROM audit
             WHERE release_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![id], audit_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn transition(
        &self,
        id: i64,
        to: Status,
        actor: &Actor,
        note: Option<&str>,
        rollback_to: Option<&str>,
    ) -> Result<Status, LedgerError> {
        let tx = immediate(&self.conn)?;
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
        let (started, completed) = stamps(to);
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
                now_text(),
                completed,
                rollback_to,
                current.as_str()
            ],
        )?;
        audit(&tx, id, actor, Some(current), to, note)?;
        tx.commit()?;
        Ok(current)
    }

    fn record(&self, id: i64, actor: &Actor, note: &str) -> Result<Status, LedgerError> {
        let tx = immediate(&self.conn)?;
        let current = status_of(&tx, id)?;
        audit(&tx, id, actor, Some(current), current, Some(note))?;
        tx.commit()?;
        Ok(current)
    }

    fn deployed_tags(
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

    fn data_version(&self) -> Result<i64, LedgerError> {
        let files: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        let rows: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM audit", [], |r| r.get(0))?;
        Ok(files * 1_000_000_007 + rows)
    }

    fn verify(&self) -> Result<Verified, VerifyError> {
        chain::verify(&self.conn)
    }

    fn sqlite(&self) -> Option<&Connection> {
        Some(&self.conn)
    }
}

/// `BEGIN IMMEDIATE` (the file's write lock, at once) on the store's connection, which the
/// trait lends as `&self`.
fn immediate(conn: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
}

const SELECT: &str = "SELECT id, service_name, release_tag, rollback_to_tag, image, status, initiated_by,
    github_run_id, github_action_link, github_ref, created_at, started_at, completed_at FROM releases";

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
        &now_text(),
        &actor.user,
        actor.sudo_user.as_deref(),
        actor.ssh_client.as_deref(),
        from.map(|s| s.as_str()),
        to.as_str(),
        note,
    )
}
