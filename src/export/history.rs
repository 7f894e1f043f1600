//! `RunHistory`: every job run and export attempt, in SQLite in the data dir, so a restarted
//! process and the dashboard know the last export of each group and the past runs of each job.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA_VERSION: i64 = 2;

/// A run of a job (`export` or `cleanup`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub job: String,
    pub trigger: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// One attempt to export one group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttemptRecord {
    pub id: i64,
    pub run_id: i64,
    pub group: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub bytes: Option<u64>,
    pub rows: Option<u64>,
    pub file: Option<String>,
    pub error: Option<String>,
}

/// A saved export as the history records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedFile {
    pub group: String,
    pub file: String,
    pub rows: u64,
    pub at: DateTime<Utc>,
}

/// What the dashboard shows from the history: the last runs of each job, the attempts each
/// export run made, and the saved exports (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistorySnapshot {
    pub runs: std::collections::BTreeMap<String, Vec<RunRecord>>,
    pub attempts: std::collections::BTreeMap<i64, u32>,
    pub saved: Vec<SavedFile>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct AttemptEnd<'a> {
    pub outcome: &'a str,
    pub bytes: Option<u64>,
    pub rows: Option<u64>,
    pub file: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// The history database. Cloning shares the connection; calls block briefly (small writes).
#[derive(Clone)]
pub struct RunHistory {
    conn: Arc<Mutex<Connection>>,
}

type Result<T> = rusqlite::Result<T>;

impl RunHistory {
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
            conn: Arc::new(Mutex::new(conn)),
        };
        h.close_dead_runs()?;
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
    pub fn close_dead_runs(&self) -> Result<usize> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, pid FROM runs WHERE outcome = 'running'")?;
            let dead: Vec<i64> = st
                .query_map([], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
                })?
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|(_, pid)| {
                    pid.is_none_or(|p| !super::recovery::pid_alive(p.try_into().unwrap_or(0)))
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

    /// Records the start of a job run; returns its id.
    pub fn start_run(
        &self,
        job: &str,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (job, trigger, scheduled_for, started_at, outcome, pid) VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
                params![job, trigger, scheduled_for.map(|t| t.to_rfc3339()), Utc::now().to_rfc3339(), std::process::id()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records a finished export run of the past in one go (imports and the demo).
    pub fn record_past_run(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        took: chrono::Duration,
        saved: &[(&str, u64, u64, &str)],
    ) -> Result<i64> {
        let started = scheduled_for.to_rfc3339();
        let finished = (scheduled_for + took).to_rfc3339();
        self.with(|c| {
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

    /// Records how a job run ended.
    pub fn finish_run(&self, id: i64, outcome: &str, detail: Option<&str>) -> Result<()> {
        self.with(|c| {
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

    /// Records the start of an export attempt; returns its id.
    pub fn start_attempt(&self, run_id: i64, group: &str, attempt: u32, max: u32) -> Result<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO attempts (run_id, group_name, attempt, max_attempts, started_at, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
                params![run_id, group, attempt, max, Utc::now().to_rfc3339()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records how an export attempt ended.
    pub fn finish_attempt(&self, id: i64, end: &AttemptEnd<'_>) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE attempts SET finished_at = ?2, outcome = ?3, bytes = ?4, rows = ?5, file = ?6, error = ?7
                 WHERE id = ?1",
                params![id, Utc::now().to_rfc3339(), end.outcome, end.bytes, end.rows, end.file,
                        end.error.map(crate::sanitize::clean)],
            )
            .map(drop)
        })
    }

    /// The most recent runs of a job, newest first.
    pub fn recent_runs(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        self.with(|c| {
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

    /// Attempts of one run, in order.
    pub fn attempts_of_run(&self, run_id: i64) -> Result<Vec<AttemptRecord>> {
        self.query_attempts("WHERE run_id = ?1 ORDER BY id", params![run_id])
    }

    /// The latest attempt of a group, if any.
    pub fn last_attempt(&self, group: &str) -> Result<Option<AttemptRecord>> {
        Ok(self
            .query_attempts(
                "WHERE group_name = ?1 ORDER BY id DESC LIMIT 1",
                params![group],
            )?
            .pop())
    }

    /// The latest successful attempt of a group, if any.
    pub fn last_saved(&self, group: &str) -> Result<Option<AttemptRecord>> {
        Ok(self
            .query_attempts(
                "WHERE group_name = ?1 AND outcome = 'saved' ORDER BY id DESC LIMIT 1",
                params![group],
            )?
            .pop())
    }

    /// Saved exports, oldest first, the last `limit` of them.
    pub fn saved_exports(&self, limit: usize) -> Result<Vec<SavedFile>> {
        self.with(|c| {
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

    /// The number of attempts of a run.
    /// The dashboard's view of the history: `runs_per_job` last runs of each job. Blocking.
    pub fn snapshot(&self, jobs: &[String], runs_per_job: usize) -> Result<HistorySnapshot> {
        let mut snap = HistorySnapshot::default();
        for job in jobs {
            let recent = self.recent_runs(job, runs_per_job)?;
            for r in &recent {
                let n = self.attempt_count(r.id)?;
                if n > 0 {
                    snap.attempts.insert(r.id, n);
                }
            }
            snap.runs.insert(job.clone(), recent);
        }
        snap.saved = self.saved_exports(20_000)?;
        Ok(snap)
    }

    pub fn attempt_count(&self, run_id: i64) -> Result<u32> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE run_id = ?1",
                params![run_id],
                |r| r.get(0),
            )
        })
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

    /// Number of runs of a job that were started for a given scheduled instant.
    pub fn runs_for_instant(&self, job: &str, at: DateTime<Utc>) -> Result<u64> {
        self.with(|c| {
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

fn time_opt(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_runs_and_attempts_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let h = RunHistory::open(&path).unwrap();
        let run = h.start_run("export", "manual", None).unwrap();
        let a1 = h.start_attempt(run, "API", 1, 3).unwrap();
        h.finish_attempt(
            a1,
            &AttemptEnd {
                outcome: "retrying",
                error: Some("HTTP 503"),
                ..Default::default()
            },
        )
        .unwrap();
        let a2 = h.start_attempt(run, "API", 2, 3).unwrap();
        h.finish_attempt(
            a2,
            &AttemptEnd {
                outcome: "saved",
                bytes: Some(10),
                rows: Some(2),
                file: Some("f.csv"),
                error: None,
            },
        )
        .unwrap();
        h.finish_run(run, "ok", None).unwrap();
        drop(h);

        let h = RunHistory::open(&path).unwrap();
        let last = h.last_attempt("API").unwrap().unwrap();
        assert_eq!(
            (last.attempt, last.outcome.as_str(), last.rows),
            (2, "saved", Some(2))
        );
        assert_eq!(h.attempts_of_run(run).unwrap().len(), 2);
        assert_eq!(h.recent_runs("export", 5).unwrap()[0].outcome, "ok");
        assert!(h.last_attempt("UI").unwrap().is_none());
    }
}
