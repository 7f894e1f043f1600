//! The run history in SQLite (`history.db` in the data dir, WAL, busy timeout): two processes
//! can record runs at once, and the dashboard can query the last export of each group.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{AttemptEnd, AttemptRecord, Attempts, HistoryStore, RunRecord, SavedFile, time_opt};

const SCHEMA_VERSION: i64 = 2;

/// The SQLite history: one connection.
pub struct SqliteHistory {
    conn: Mutex<Connection>,
}

type Result<T> = rusqlite::Result<T>;

impl SqliteHistory {
    /// Opens (and creates or migrates) the history at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        // Error messages from servers: nobody else's business, nor its -wal and -shm.
        let conn = crate::private::open_db(path, true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        crate::sqlite::enable_wal(&conn)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < 1 {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS runs (
                   id INTEGER PRIMARY KEY, job TEXT NOT NULL, trigger TEXT NOT NULL,
                   scheduled_for TEXT, started_at TEXT NOT NULL, finished_at TEXT,
                   outcome TEXT NOT NULL, detail TEXT);
                 CREATE TABLE IF NOT EXISTS attempts (
                   id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),
                   group_name TEXT NOT NULL, attempt INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
                   started_at TEXT NOT NULL, finished_at TEXT, outcome TEXT NOT NULL,
                   bytes INTEGER, rows INTEGER, file TEXT, error TEXT);
                 CREATE INDEX IF NOT EXISTS attempts_group ON attempts(group_name, id);
                 CREATE INDEX IF NOT EXISTS runs_job ON runs(job, id);
                 COMMIT;",
            )?;
            conn.pragma_update(None, "user_version", 1)?;
        }
        if version < 2 {
            // v2: the pid of the process running a run, so a dead one's runs can be closed.
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 ALTER TABLE runs ADD COLUMN pid INTEGER;
                 COMMIT;",
            )
            .or_else(|e| {
                // Another process migrated in between.
                let _ = conn.execute_batch("ROLLBACK");
                if e.to_string().contains("duplicate column") {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        let h = Self {
            conn: Mutex::new(conn),
        };
        h.close_dead()?;
        Ok(h)
    }

    /// Checks the database pages (`PRAGMA quick_check`): what a corrupt file fails.
    pub fn integrity(&self) -> Result<()> {
        self.with(|c| {
            let r: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if r == "ok" {
                Ok(())
            } else {
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(r),
                ))
            }
        })
    }

    /// Marks runs (and their attempts) left "running" by a process that no longer exists as
    /// "interrupted". Returns how many runs it closed.
    fn close_dead(&self) -> Result<usize> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, pid FROM runs WHERE outcome = 'running'")?;
            let dead: Vec<i64> = st
                .query_map([], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
                })?
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|(_, pid)| {
                    pid.is_none_or(|p| {
                        !crate::export::recovery::pid_alive(p.try_into().unwrap_or(0))
                    })
                })
                .map(|(id, _)| id)
                .collect();
            let now = Utc::now().to_rfc3339();
            for id in &dead {
                c.execute(
                    "UPDATE runs SET outcome = 'interrupted', finished_at = ?2,
                     detail = 'the process running it ended without finishing it'
                     WHERE id = ?1 AND outcome = 'running'",
                    params![id, now],
                )?;
                c.execute(
                    "UPDATE attempts SET outcome = 'interrupted', finished_at = ?2
                     WHERE run_id = ?1 AND outcome = 'running'",
                    params![id, now],
                )?;
            }
            Ok(dead.len())
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    /// `with`, the error as the trait's.
    fn w<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> super::Result<T> {
        Ok(self.with(f)?)
    }

    fn query_attempts(&self, tail: &str, p: impl rusqlite::Params) -> Result<Vec<AttemptRecord>> {
        self.with(|c| {
            let sql = format!(
                "SELECT id, run_id, group_name, attempt, max_attempts, started_at, finished_at, outcome,
                        bytes, rows, file, error FROM attempts {tail}"
            );
            let mut st = c.prepare(&sql)?;
            st.query_map(p, |r| {
                Ok(AttemptRecord {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    group: r.get(2)?,
                    attempt: r.get(3)?,
                    max_attempts: r.get(4)?,
                    started_at: time_opt(Some(r.get(5)?)).unwrap_or_default(),
                    finished_at: time_opt(r.get(6)?),
                    outcome: r.get(7)?,
                    bytes: r.get(8)?,
                    rows: r.get(9)?,
                    file: r.get(10)?,
                    error: r.get(11)?,
                })
            })?
            .collect()
        })
    }
}

impl HistoryStore for SqliteHistory {
    fn close_dead_runs(&self) -> super::Result<usize> {
        Ok(self.close_dead()?)
    }

    fn start_run(
        &self,
        job: &str,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> super::Result<i64> {
        self.w(|c| {
            c.execute(
                "INSERT INTO runs (job, trigger, scheduled_for, started_at, outcome, pid) VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
                params![job, trigger, scheduled_for.map(|t| t.to_rfc3339()), Utc::now().to_rfc3339(), std::process::id()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    fn record_past_run(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        took: chrono::Duration,
        saved: &[(&str, u64, u64, &str)],
    ) -> super::Result<i64> {
        let started = scheduled_for.to_rfc3339();
        let finished = (scheduled_for + took).to_rfc3339();
        self.w(|c| {
            c.execute(
                "INSERT INTO runs (job, trigger, scheduled_for, started_at, finished_at, outcome)
                 VALUES (?1, 'scheduled', ?2, ?2, ?3, 'ok')",
                params![job, started, finished],
            )?;
            let run = c.last_insert_rowid();
            for (group, rows, bytes, file) in saved {
                c.execute(
                    "INSERT INTO attempts (run_id, group_name, attempt, max_attempts, started_at, finished_at,
                                           outcome, bytes, rows, file)
                     VALUES (?1, ?2, 1, 3, ?3, ?4, 'saved', ?5, ?6, ?7)",
                    params![run, group, started, finished, bytes, rows, file],
                )?;
            }
            Ok(run)
        })
    }

    fn finish_run(&self, id: i64, outcome: &str, detail: Option<&str>) -> super::Result<()> {
        self.w(|c| {
            c.execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, detail = ?4 WHERE id = ?1",
                params![
                    id,
                    Utc::now().to_rfc3339(),
                    outcome,
                    detail.map(crate::sanitize::clean)
                ],
            )
            .map(drop)
        })
    }

    fn start_attempt(
        &self,
        run_id: i64,
        group: &str,
        attempt: u32,
        max: u32,
    ) -> super::Result<i64> {
        self.w(|c| {
            c.execute(
                "INSERT INTO attempts (run_id, group_name, attempt, max_attempts, started_at, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
                params![run_id, group, attempt, max, Utc::now().to_rfc3339()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    fn finish_attempt(&self, id: i64, end: &AttemptEnd<'_>) -> super::Result<()> {
        self.w(|c| {
            c.execute(
                "UPDATE attempts SET finished_at = ?2, outcome = ?3, bytes = ?4, rows = ?5, file = ?6, error = ?7
                 WHERE id = ?1",
                params![id, Utc::now().to_rfc3339(), end.outcome, end.bytes, end.rows, end.file,
                        end.error.map(crate::sanitize::clean)],
            )
            .map(drop)
        })
    }

    fn recent_runs(&self, job: &str, limit: usize) -> super::Result<Vec<RunRecord>> {
        self.w(|c| {
            let mut st = c.prepare(
                "SELECT id, job, trigger, scheduled_for, started_at, finished_at, outcome, detail
                 FROM runs WHERE job = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            st.query_map(params![job, limit as i64], |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    job: r.get(1)?,
                    trigger: r.get(2)?,
                    scheduled_for: time_opt(r.get(3)?),
                    started_at: time_opt(Some(r.get(4)?)).unwrap_or_default(),
                    finished_at: time_opt(r.get(5)?),
                    outcome: r.get(6)?,
                    detail: r.get(7)?,
                })
            })?
            .collect()
        })
    }

    fn attempts(&self, which: Attempts<'_>) -> super::Result<Vec<AttemptRecord>> {
        Ok(match which {
            Attempts::OfRun(run) => {
                self.query_attempts("WHERE run_id = ?1 ORDER BY id", params![run])?
            }
            Attempts::LastOf(group) => self.query_attempts(
                "WHERE group_name = ?1 ORDER BY id DESC LIMIT 1",
                params![group],
            )?,
            Attempts::LastSavedOf(group) => self.query_attempts(
                "WHERE group_name = ?1 AND outcome = 'saved' ORDER BY id DESC LIMIT 1",
                params![group],
            )?,
        })
    }

    fn saved_exports(&self, limit: usize) -> super::Result<Vec<SavedFile>> {
        self.w(|c| {
            let mut st = c.prepare(
                "SELECT group_name, file, rows, COALESCE(finished_at, started_at) FROM attempts
                 WHERE outcome = 'saved' AND file IS NOT NULL ORDER BY id DESC LIMIT ?1",
            )?;
            let mut v: Vec<_> = st
                .query_map(params![limit as i64], |r| {
                    Ok(SavedFile {
                        group: r.get(0)?,
                        file: r.get(1)?,
                        rows: r.get::<_, Option<u64>>(2)?.unwrap_or(0),
                        at: time_opt(Some(r.get(3)?)).unwrap_or_default(),
                    })
                })?
                .collect::<Result<_>>()?;
            v.reverse();
            Ok(v)
        })
    }

    fn attempt_count(&self, run_id: i64) -> super::Result<u32> {
        self.w(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE run_id = ?1",
                params![run_id],
                |r| r.get(0),
            )
        })
    }

    fn runs_for_instant(&self, job: &str, at: DateTime<Utc>) -> super::Result<u64> {
        self.w(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM runs WHERE job = ?1 AND scheduled_for = ?2",
                params![job, at.to_rfc3339()],
                |r| r.get(0),
            )
            .optional()
            .map(|n| n.unwrap_or(0))
        })
    }
}
