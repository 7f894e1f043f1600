//! The ledger in PostgreSQL (`storage.url`), for several servers sharing one ledger.
//!
//! The tables and columns are SQLite's, the times the same RFC 3339 text (the audit chain
//! hashes the stored text, so a ledger copied from SQLite verifies here with the same head).
//! Every write is one transaction that first takes an advisory transaction lock
//! (`WRITE_LOCK`): the chain links each audit row to the one before it, so appends are
//! serialised as SQLite's `BEGIN IMMEDIATE` serialises them, and a transition is a
//! compare-and-set (`UPDATE … WHERE id = $1 AND status = $from`) under it: of two servers
//! racing on one release, one wins and the other is told who did.
//!
//! The database refuses by itself what opsdeck never writes: a status outside the lifecycle
//! (CHECK), a move the lifecycle table forbids (a trigger generated from it), and any UPDATE,
//! DELETE or TRUNCATE of the audit. Statement triggers bump the `ledger_changes` sequence on
//! every change to either table: `data_version`, which the watcher polls.

use chrono::{DateTime, Utc};
use postgres::{GenericClient, IsolationLevel};

use super::chain::{self, AUDIT_COLUMNS, GENESIS, RELEASE_COLUMNS, Verified, VerifyError, Walk};
use super::{
    AuditEntry, LedgerError, LedgerStore, NewRelease, Release, allowed_moves_sql, now_text,
    parse_time, stamps, statuses_sql,
};
use crate::release::actor::Actor;
use crate::release::lifecycle::{self, Status};
use crate::storage::pg::{Migration, PgClient, PgConfig, describe, migrate_once};

/// The advisory lock every ledger write holds until it commits.
pub const WRITE_LOCK: i64 = 0x6f70_7364_6b00_0002;

/// The channel of `NOTIFY "<instance> <release id> <audit id>"` after each audit row.
pub const CHANGES_CHANNEL: &str = "opsdeck_ledger";

/// The advisory lock class of "a server is deploying or rolling back release N" (the
/// two-key form: this class and the release id), held on a connection of its own.
pub const WORK_LOCK_CLASS: i32 = 0x6f70_6b01;

/// The second key of a release's work lock (ids beyond 2^31 share keys: a false "busy" at
/// worst, never a missed one).
fn work_key(id: i64) -> i32 {
    id as i32
}

/// The ledger's schema, step by step (`opsdeck_migrations`, component `ledger`).
pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        sql: format!(
            "CREATE TABLE releases (
               id BIGINT PRIMARY KEY,
               service_name TEXT NOT NULL,
               release_tag TEXT NOT NULL,
               rollback_to_tag TEXT,
               image TEXT,
               status TEXT NOT NULL CHECK (status IN ({statuses})),
               initiated_by TEXT, github_run_id TEXT, github_action_link TEXT, github_ref TEXT,
               created_at TEXT NOT NULL, started_at TEXT, completed_at TEXT);
             CREATE TABLE audit (
               id BIGINT PRIMARY KEY,
               release_id BIGINT NOT NULL REFERENCES releases(id),
               at TEXT NOT NULL, actor TEXT NOT NULL, sudo_user TEXT, ssh_client TEXT,
               from_status TEXT, to_status TEXT NOT NULL, note TEXT,
               release_snapshot TEXT, hash TEXT);
             CREATE INDEX audit_release ON audit(release_id, id);
             CREATE INDEX releases_service ON releases(service_name, id);

             CREATE FUNCTION opsdeck_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
             CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
               FOR EACH ROW EXECUTE FUNCTION opsdeck_audit_append_only();
             CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
               FOR EACH ROW EXECUTE FUNCTION opsdeck_audit_append_only();
             CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
               FOR EACH STATEMENT EXECUTE FUNCTION opsdeck_audit_append_only();

             CREATE FUNCTION opsdeck_releases_lifecycle() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF OLD.status <> NEW.status AND NOT ({moves}) THEN
                 RAISE EXCEPTION 'the release lifecycle forbids this transition (% to %)',
                   OLD.status, NEW.status;
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER releases_lifecycle BEFORE UPDATE OF status ON releases
               FOR EACH ROW EXECUTE FUNCTION opsdeck_releases_lifecycle();

             CREATE SEQUENCE ledger_changes;
             CREATE FUNCTION opsdeck_ledger_changed() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM nextval('ledger_changes'); RETURN NULL; END $$;
             CREATE TRIGGER releases_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
               ON releases FOR EACH STATEMENT EXECUTE FUNCTION opsdeck_ledger_changed();
             CREATE TRIGGER audit_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
               ON audit FOR EACH STATEMENT EXECUTE FUNCTION opsdeck_ledger_changed();",
            statuses = statuses_sql(),
            moves = allowed_moves_sql(),
        ),
    }]
}

/// A ledger in a PostgreSQL database: one pooled connection while it is open.
pub struct PgLedger {
    client: PgClient,
    /// For the work lock's own connection.
    cfg: PgConfig,
}

fn pg_err(e: postgres::Error) -> LedgerError {
    LedgerError::Postgres(describe(&e))
}

impl PgLedger {
    /// Connects and brings the schema up to date (once per database and process).
    pub fn open(cfg: &PgConfig) -> Result<PgLedger, LedgerError> {
        migrate_once(cfg, "ledger", &migrations()).map_err(LedgerError::Postgres)?;
        let client = cfg.connect().map_err(LedgerError::Postgres)?;
        Ok(PgLedger {
            client,
            cfg: cfg.clone(),
        })
    }

    /// Runs `f` in a transaction holding the ledger's write lock.
    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, LedgerError> + Send,
    ) -> Result<T, LedgerError> {
        self.client.with(|c| {
            let mut tx = c.transaction().map_err(pg_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .map_err(pg_err)?;
            let v = f(&mut tx)?;
            tx.commit().map_err(pg_err)?;
            Ok(v)
        })
    }

    /// Runs raw SQL on this ledger's connection: for tests that play a foreign writer.
    #[doc(hidden)]
    pub fn batch_execute(&self, sql: &str) -> Result<(), LedgerError> {
        self.client.with(|c| c.batch_execute(sql)).map_err(pg_err)
    }
}

const SELECT: &str = "SELECT id, service_name, release_tag, rollback_to_tag, image, status, initiated_by,
    github_run_id, github_action_link, github_ref, created_at, started_at, completed_at FROM releases";
const AUDIT_ENTRY: &str =
    "SELECT at, actor, sudo_user, ssh_client, from_status, to_status, note FROM audit";

fn status(s: &str) -> Result<Status, LedgerError> {
    s.parse()
        .map_err(|e: String| LedgerError::Postgres(format!("a release row: {e}")))
}

fn release(r: &postgres::Row) -> Result<Release, LedgerError> {
    Ok(Release {
        id: r.get(0),
        service_name: r.get(1),
        release_tag: r.get(2),
        rollback_to_tag: r.get(3),
        image: r.get(4),
        status: status(r.get(5))?,
        initiated_by: r.get(6),
        github_run_id: r.get(7),
        github_action_link: r.get(8),
        github_ref: r.get(9),
        created_at: parse_time(r.get(10)),
        started_at: r.get::<_, Option<String>>(11).map(parse_time),
        completed_at: r.get::<_, Option<String>>(12).map(parse_time),
    })
}

fn audit_entry(r: &postgres::Row) -> AuditEntry {
    AuditEntry {
        at: parse_time(r.get(0)),
        actor: r.get(1),
        sudo_user: r.get(2),
        ssh_client: r.get(3),
        from: r.get(4),
        to: r.get(5),
        note: r.get(6),
    }
}

/// The release's columns as stored, as the canonical JSON array of `chain.rs`.
fn snapshot(c: &mut impl GenericClient, id: i64) -> Result<Option<String>, postgres::Error> {
    Ok(c.query_opt(
        &format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1"),
        &[&id],
    )?
    .map(|r| snapshot_of(&r)))
}

fn snapshot_of(r: &postgres::Row) -> String {
    let texts: [Option<String>; 12] = std::array::from_fn(|i| r.get(i + 1));
    chain::snapshot_json(r.get(0), &texts)
}

/// Appends one chained audit row (inside the write lock, after the release has its new
/// content): the same row and hash SQLite's `chain::append` writes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn append(
    c: &mut impl GenericClient,
    release_id: i64,
    at: &str,
    actor: &Actor,
    from: Option<&str>,
    to: &str,
    note: Option<&str>,
) -> Result<(), postgres::Error> {
    let (id, prev) =
        match c.query_opt("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", &[])? {
            Some(r) => (
                r.get::<_, i64>(0) + 1,
                r.get::<_, Option<String>>(1).unwrap_or_default(),
            ),
            None => (1, GENESIS.to_string()),
        };
    let snap = snapshot(c, release_id)?.unwrap_or_else(|| "null".into());
    let texts = [
        Some(at.to_string()),
        Some(actor.user.clone()),
        actor.sudo_user.clone(),
        actor.ssh_client.clone(),
        from.map(str::to_string),
        Some(to.to_string()),
        note.map(str::to_string),
    ];
    let row = chain::audit_json(id, release_id, &texts);
    let hash = chain::row_hash(&prev, &row, &snap);
    c.execute(
        "INSERT INTO audit (id, release_id, at, actor, sudo_user, ssh_client, from_status,
                            to_status, note, release_snapshot, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &id,
            &release_id,
            &texts[0],
            &texts[1],
            &texts[2],
            &texts[3],
            &texts[4],
            &texts[5],
            &texts[6],
            &snap,
            &hash,
        ],
    )?;
    // Delivered at commit (and not at all on rollback) to every server listening: each
    // publishes the change to its own event streams. Ours is skipped by its instance.
    c.execute(
        "SELECT pg_notify($1, $2)",
        &[
            &CHANGES_CHANNEL,
            &format!("{} {release_id} {id}", crate::storage::pg::instance()),
        ],
    )?;
    Ok(())
}

fn status_of(tx: &mut postgres::Transaction<'_>, id: i64) -> Result<Status, LedgerError> {
    let row = tx
        .query_opt("SELECT status FROM releases WHERE id = $1", &[&id])
        .map_err(pg_err)?
        .ok_or(LedgerError::NotFound(id))?;
    status(row.get(0))
}

fn last_entry(
    tx: &mut postgres::Transaction<'_>,
    id: i64,
) -> Result<Option<Box<AuditEntry>>, LedgerError> {
    Ok(tx
        .query_opt(
            &format!("{AUDIT_ENTRY} WHERE release_id = $1 ORDER BY id DESC LIMIT 1"),
            &[&id],
        )
        .map_err(pg_err)?
        .map(|r| Box::new(audit_entry(&r))))
}

impl LedgerStore for PgLedger {
    fn hold_work(&self, id: i64) -> Result<super::WorkHold, LedgerError> {
        // A session lock on a connection of its own: it lives exactly as long as the work,
        // and a server killed mid-deploy frees it with its session.
        let c = self.cfg.connect_own().map_err(LedgerError::Postgres)?;
        let got: bool = c.with(|c| {
            c.query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&WORK_LOCK_CLASS, &work_key(id)],
            )
            .map(|r| r.get(0))
            .map_err(pg_err)
        })?;
        Ok(if got {
            super::WorkHold::Held(Box::new(c))
        } else {
            super::WorkHold::Busy
        })
    }

    fn work_held(&self, id: i64) -> Result<bool, LedgerError> {
        self.client.with(|c| {
            let got: bool = c
                .query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&WORK_LOCK_CLASS, &work_key(id)],
                )
                .map_err(pg_err)?
                .get(0);
            if got {
                c.execute(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&WORK_LOCK_CLASS, &work_key(id)],
                )
                .map_err(pg_err)?;
            }
            Ok(!got)
        })
    }

    fn create(&self, new: &NewRelease, status: Status, actor: &Actor) -> Result<i64, LedgerError> {
        self.write(|tx| {
            // The next id as SQLite gives it (the largest plus one), under the write lock.
            let id: i64 = tx
                .query_one(
                    "INSERT INTO releases (id, service_name, release_tag, image, status,
                       initiated_by, github_run_id, github_action_link, github_ref, created_at)
                     SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9
                     FROM releases RETURNING id",
                    &[
                        &new.service_name,
                        &new.release_tag,
                        &new.image,
                        &status.as_str(),
                        &new.initiated_by,
                        &new.github_run_id,
                        &new.github_action_link,
                        &new.github_ref,
                        &now_text(),
                    ],
                )
                .map_err(pg_err)?
                .get(0);
            append(
                tx,
                id,
                &now_text(),
                actor,
                None,
                status.as_str(),
                Some("created"),
            )
            .map_err(pg_err)?;
            Ok(id)
        })
    }

    fn get(&self, id: i64) -> Result<Option<Release>, LedgerError> {
        self.client
            .with(|c| c.query_opt(&format!("{SELECT} WHERE id = $1"), &[&id]))
            .map_err(pg_err)?
            .map(|r| release(&r))
            .transpose()
    }

    fn list(
        &self,
        service: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<Release>, LedgerError> {
        let status = status.map(|s| s.as_str());
        self.client
            .with(|c| {
                c.query(
                    &format!(
                        "{SELECT} WHERE ($1::text IS NULL OR service_name = $1)
                           AND ($2::text IS NULL OR status = $2) ORDER BY id DESC"
                    ),
                    &[&service, &status],
                )
            })
            .map_err(pg_err)?
            .iter()
            .map(release)
            .collect()
    }

    fn audit(&self, id: i64) -> Result<Vec<AuditEntry>, LedgerError> {
        Ok(self
            .client
            .with(|c| {
                c.query(
                    &format!("{AUDIT_ENTRY} WHERE release_id = $1 ORDER BY id"),
                    &[&id],
                )
            })
            .map_err(pg_err)?
            .iter()
            .map(audit_entry)
            .collect())
    }

    fn transition(
        &self,
        id: i64,
        to: Status,
        actor: &Actor,
        note: Option<&str>,
        rollback_to: Option<&str>,
    ) -> Result<Status, LedgerError> {
        self.write(|tx| {
            let current = status_of(tx, id)?;
            let forbidden = |tx: &mut postgres::Transaction<'_>, current| {
                Ok::<_, LedgerError>(LedgerError::Forbidden {
                    id,
                    current,
                    to,
                    last: last_entry(tx, id)?,
                })
            };
            if lifecycle::check(current, to).is_err() {
                return Err(forbidden(tx, current)?);
            }
            let (started, completed) = stamps(to);
            let now = now_text();
            let n = tx
                .execute(
                    "UPDATE releases SET status = $2,
                       started_at = CASE WHEN $3::bool THEN $4::text ELSE started_at END,
                       completed_at = CASE WHEN $5::bool THEN $4::text WHEN $3::bool THEN NULL
                                      ELSE completed_at END,
                       rollback_to_tag = COALESCE($6::text, rollback_to_tag)
                     WHERE id = $1 AND status = $7",
                    &[
                        &id,
                        &to.as_str(),
                        &started,
                        &now,
                        &completed,
                        &rollback_to,
                        &current.as_str(),
                    ],
                )
                .map_err(pg_err)?;
            if n != 1 {
                // Moved by a writer that did not take the lock (the compare failed): lost.
                let now = status_of(tx, id)?;
                return Err(forbidden(tx, now)?);
            }
            append(
                tx,
                id,
                &now_text(),
                actor,
                Some(current.as_str()),
                to.as_str(),
                note,
            )
            .map_err(pg_err)?;
            Ok(current)
        })
    }

    fn record(&self, id: i64, actor: &Actor, note: &str) -> Result<Status, LedgerError> {
        self.write(|tx| {
            let current = status_of(tx, id)?;
            append(
                tx,
                id,
                &now_text(),
                actor,
                Some(current.as_str()),
                current.as_str(),
                Some(note),
            )
            .map_err(pg_err)?;
            Ok(current)
        })
    }

    fn deployed_tags(
        &self,
        service: &str,
    ) -> Result<Vec<(i64, String, DateTime<Utc>)>, LedgerError> {
        Ok(self
            .client
            .with(|c| {
                c.query(
                    "SELECT r.id, r.release_tag, MAX(a.at) FROM releases r
                     JOIN audit a ON a.release_id = r.id
                     WHERE r.service_name = $1 AND a.to_status = 'deployed'
                     GROUP BY r.id ORDER BY MAX(a.id) DESC",
                    &[&service],
                )
            })
            .map_err(pg_err)?
            .iter()
            .map(|r| (r.get(0), r.get(1), parse_time(r.get(2))))
            .collect())
    }

    fn data_version(&self) -> Result<i64, LedgerError> {
        let row = self
            .client
            .with(|c| c.query_one("SELECT last_value, is_called FROM ledger_changes", &[]))
            .map_err(pg_err)?;
        Ok(if row.get::<_, bool>(1) { row.get(0) } else { 0 })
    }

    fn verify(&self) -> Result<Verified, VerifyError> {
        let e = |e: postgres::Error| VerifyError::Postgres(describe(&e));
        self.client.with(|c| {
            // One snapshot for both reads, as on SQLite.
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(e)?;
            let mut walk = Walk::default();
            for r in tx
                .query(
                    &format!(
                        "SELECT {AUDIT_COLUMNS}, release_snapshot, hash FROM audit ORDER BY id"
                    ),
                    &[],
                )
                .map_err(e)?
            {
                let id: i64 = r.get(0);
                let release_id: i64 = r.get(1);
                let texts: [Option<String>; 7] = std::array::from_fn(|i| r.get(i + 2));
                walk.audit(
                    id,
                    Some(release_id),
                    &chain::audit_json(id, release_id, &texts),
                    r.get(9),
                    r.get(10),
                )?;
            }
            for r in tx
                .query(
                    &format!("SELECT {RELEASE_COLUMNS} FROM releases ORDER BY id"),
                    &[],
                )
                .map_err(e)?
            {
                walk.release(r.get(0), &snapshot_of(&r))?;
            }
            tx.commit().map_err(e)?;
            Ok(walk.finish()?)
        })
    }
}
