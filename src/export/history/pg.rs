//! The run history in PostgreSQL (`storage.url`): SQLite's tables and columns, times as the
//! same RFC 3339 text, so every server sharing the database sees the runs of all of them.
//! Each call borrows a pooled connection (`storage::pg`).

use chrono::{DateTime, Utc};
use postgres::Row;

use super::{
    AttemptEnd, AttemptRecord, Attempts, HistoryError, HistoryStore, Result, RunRecord, SavedFile,
    time_opt,
};
use crate::storage::pg::{Migration, PgConfig, migrate_once};

/// The history's schema, step by step (`opsdeck_migrations`, component `history`).
pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        sql: "CREATE TABLE runs (
                id BIGSERIAL PRIMARY KEY, job TEXT NOT NULL, trigger TEXT NOT NULL,
                scheduled_for TEXT, started_at TEXT NOT NULL, finished_at TEXT,
                outcome TEXT NOT NULL, detail TEXT,
                host TEXT, pid BIGINT);
              CREATE TABLE attempts (
                id BIGSERIAL PRIMARY KEY, run_id BIGINT NOT NULL REFERENCES runs(id),
                group_name TEXT NOT NULL, attempt INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
                started_at TEXT NOT NULL, finished_at TEXT, outcome TEXT NOT NULL,
                bytes BIGINT, rows BIGINT, file TEXT, error TEXT);
              CREATE INDEX attempts_group ON attempts(group_name, id);
              CREATE INDEX runs_job ON runs(job, id);"
            .into(),
    }]
}

/// The history in a PostgreSQL database.
pub struct PgHistory {
    cfg: PgConfig,
}

fn host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

impl PgHistory {
    /// Brings the schema up to date (once per database and process).
    pub fn open(cfg: &PgConfig) -> Result<PgHistory> {
        migrate_once(cfg, "history", &migrations()).map_err(HistoryError::Postgres)?;
        Ok(PgHistory { cfg: cfg.clone() })
    }

    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> std::result::Result<T, postgres::Error> + Send,
    ) -> Result<T> {
        let c = self.cfg.connect().map_err(HistoryError::Postgres)?;
        Ok(c.with(f)?)
    }
}

fn u64_opt(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn i64_opt(v: Option<u64>) -> Option<i64> {
    v.and_then(|v| i64::try_from(v).ok())
}

fn attempt(r: &Row) -> AttemptRecord {
    AttemptRecord {
        id: r.get(0),
        run_id: r.get(1),
        group: r.get(2),
        attempt: r.get::<_, i32>(3).max(0) as u32,
        max_attempts: r.get::<_, i32>(4).max(0) as u32,
        started_at: time_opt(Some(r.get(5))).unwrap_or_default(),
        finished_at: time_opt(r.get(6)),
        outcome: r.get(7),
        bytes: u64_opt(r.get(8)),
        rows: u64_opt(r.get(9)),
        file: r.get(10),
        error: r.get(11),
    }
}

const ATTEMPTS: &str = "SELECT id, run_id, group_name, attempt, max_attempts, started_at,
    finished_at, outcome, bytes, rows, file, error FROM attempts";

impl HistoryStore for PgHistory {
    /// Only runs of this host can be judged (by pid); another host's are left as they are.
    fn close_dead_runs(&self) -> Result<usize> {
        let host = host();
        self.with(move |c| {
            let rows = c.query(
                "SELECT id, pid FROM runs WHERE outcome = 'running' AND host = $1",
                &[&host],
            )?;
            let dead: Vec<i64> = rows
                .iter()
                .filter(|r| {
                    let pid: Option<i64> = r.get(1);
                    pid.is_none_or(|p| {
                        !crate::export::recovery::pid_alive(p.try_into().unwrap_or(0))
                    })
                })
                .map(|r| r.get(0))
                .collect();
            let now = Utc::now().to_rfc3339();
            for id in &dead {
                let mut tx = c.transaction()?;
                tx.execute(
                    "UPDATE runs SET outcome = 'interrupted', finished_at = $2,
                     detail = 'the process running it ended without finishing it'
                     WHERE id = $1 AND outcome = 'running'",
                    &[id, &now],
                )?;
                tx.execute(
                    "UPDATE attempts SET outcome = 'interrupted', finished_at = $2
                     WHERE run_id = $1 AND outcome = 'running'",
                    &[id, &now],
                )?;
                tx.commit()?;
            }
            Ok(dead.len())
        })
    }

    fn start_run(
        &self,
        job: &str,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<i64> {
        let (host, pid) = (host(), i64::from(std::process::id()));
        self.with(move |c| {
            c.query_one(
                "INSERT INTO runs (job, trigger, scheduled_for, started_at, outcome, host, pid)
                 VALUES ($1, $2, $3, $4, 'running', $5, $6) RETURNING id",
                &[
                    &job,
                    &trigger,
                    &scheduled_for.map(|t| t.to_rfc3339()),
                    &Utc::now().to_rfc3339(),
                    &host,
                    &pid,
                ],
            )
            .map(|r| r.get(0))
        })
    }

    fn record_past_run(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        took: chrono::Duration,
        saved: &[(&str, u64, u64, &str)],
    ) -> Result<i64> {
        let started = scheduled_for.to_rfc3339();
        let finished = (scheduled_for + took).to_rfc3339();
        self.with(move |c| {
            let mut tx = c.transaction()?;
            let run: i64 = tx
                .query_one(
                    "INSERT INTO runs (job, trigger, scheduled_for, started_at, finished_at, outcome)
                     VALUES ($1, 'scheduled', $2, $2, $3, 'ok') RETURNING id",
                    &[&job, &started, &finished],
                )?
                .get(0);
            for (group, rows, bytes, file) in saved {
                tx.execute(
                    "INSERT INTO attempts (run_id, group_name, attempt, max_attempts, started_at,
                                           finished_at, outcome, bytes, rows, file)
                     VALUES ($1, $2, 1, 3, $3, $4, 'saved', $5, $6, $7)",
                    &[
                        &run,
                        group,
                        &started,
                        &finished,
                        &i64_opt(Some(*bytes)),
                        &i64_opt(Some(*rows)),
                        file,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(run)
        })
    }

    fn finish_run(&self, id: i64, outcome: &str, detail: Option<&str>) -> Result<()> {
        let detail = detail.map(crate::sanitize::clean);
        self.with(move |c| {
            c.execute(
                "UPDATE runs SET finished_at = $2, outcome = $3, detail = $4 WHERE id = $1",
                &[&id, &Utc::now().to_rfc3339(), &outcome, &detail],
            )
            .map(drop)
        })
    }

    fn start_attempt(&self, run_id: i64, group: &str, attempt: u32, max: u32) -> Result<i64> {
        let (attempt, max) = (attempt as i32, max as i32);
        self.with(move |c| {
            c.query_one(
                "INSERT INTO attempts (run_id, group_name, attempt, max_attempts, started_at, outcome)
                 VALUES ($1, $2, $3, $4, $5, 'running') RETURNING id",
                &[&run_id, &group, &attempt, &max, &Utc::now().to_rfc3339()],
            )
            .map(|r| r.get(0))
        })
    }

    fn finish_attempt(&self, id: i64, end: &AttemptEnd<'_>) -> Result<()> {
        let error = end.error.map(crate::sanitize::clean);
        let (bytes, rows) = (i64_opt(end.bytes), i64_opt(end.rows));
        self.with(move |c| {
            c.execute(
                "UPDATE attempts SET finished_at = $2, outcome = $3, bytes = $4, rows = $5,
                 file = $6, error = $7 WHERE id = $1",
                &[
                    &id,
                    &Utc::now().to_rfc3339(),
                    &end.outcome,
                    &bytes,
                    &rows,
                    &end.file,
                    &error,
                ],
            )
            .map(drop)
        })
    }

    fn recent_runs(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let limit = limit as i64;
        self.with(move |c| {
            let rows = c.query(
                "SELECT id, job, trigger, scheduled_for, started_at, finished_at, outcome, detail
                 FROM runs WHERE job = $1 ORDER BY id DESC LIMIT $2",
                &[&job, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| RunRecord {
                    id: r.get(0),
                    job: r.get(1),
                    trigger: r.get(2),
                    scheduled_for: time_opt(r.get(3)),
                    started_at: time_opt(Some(r.get(4))).unwrap_or_default(),
                    finished_at: time_opt(r.get(5)),
                    outcome: r.get(6),
                    detail: r.get(7),
                })
                .collect())
        })
    }

    fn attempts(&self, which: Attempts<'_>) -> Result<Vec<AttemptRecord>> {
        self.with(move |c| {
            let rows = match which {
                Attempts::OfRun(run) => c.query(
                    &format!("{ATTEMPTS} WHERE run_id = $1 ORDER BY id"),
                    &[&run],
                )?,
                Attempts::LastOf(group) => c.query(
                    &format!("{ATTEMPTS} WHERE group_name = $1 ORDER BY id DESC LIMIT 1"),
                    &[&group],
                )?,
                Attempts::LastSavedOf(group) => c.query(
                    &format!(
                        "{ATTEMPTS} WHERE group_name = $1 AND outcome = 'saved'
                         ORDER BY id DESC LIMIT 1"
                    ),
                    &[&group],
                )?,
            };
            Ok(rows.iter().map(attempt).collect())
        })
    }

    fn saved_exports(&self, limit: usize) -> Result<Vec<SavedFile>> {
        let limit = limit as i64;
        self.with(move |c| {
            let rows = c.query(
                "SELECT group_name, file, rows, COALESCE(finished_at, started_at) FROM attempts
                 WHERE outcome = 'saved' AND file IS NOT NULL ORDER BY id DESC LIMIT $1",
                &[&limit],
            )?;
            Ok(rows
                .iter()
                .rev()
                .map(|r| SavedFile {
                    group: r.get(0),
                    file: r.get(1),
                    rows: u64_opt(r.get(2)).unwrap_or(0),
                    at: time_opt(Some(r.get(3))).unwrap_or_default(),
                })
                .collect())
        })
    }

    fn attempt_count(&self, run_id: i64) -> Result<u32> {
        self.with(move |c| {
            c.query_one(
                "SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE run_id = $1",
                &[&run_id],
            )
            .map(|r| r.get::<_, i32>(0).max(0) as u32)
        })
    }

    fn runs_for_instant(&self, job: &str, at: DateTime<Utc>) -> Result<u64> {
        let at = at.to_rfc3339();
        self.with(move |c| {
            c.query_one(
                "SELECT COUNT(*) FROM runs WHERE job = $1 AND scheduled_for = $2",
                &[&job, &at],
            )
            .map(|r| r.get::<_, i64>(0).max(0) as u64)
        })
    }
}
