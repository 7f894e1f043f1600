//! `RunHistory`: every job run and export attempt, so a restarted process and the dashboard
//! know the last export of each group and the past runs of each job. In SQLite in the data
//! dir (`sqlite.rs`, the default) or in PostgreSQL (`pg.rs`, `storage.url`), where the runs
//! of every server sharing the database are one history; both behind `HistoryStore`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

mod pg;
mod sqlite;

pub use pg::PgHistory;
pub use sqlite::SqliteHistory;

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

/// A history call that failed.
pub use crate::storage::StoreError as HistoryError;

pub type Result<T> = std::result::Result<T, HistoryError>;

/// Which attempts `HistoryStore::attempts` returns.
#[derive(Debug, Clone, Copy)]
pub enum Attempts<'a> {
    /// Every attempt of a run, in order.
    OfRun(i64),
    /// A group's latest attempt.
    LastOf(&'a str),
    /// A group's latest saved attempt.
    LastSavedOf(&'a str),
}

/// What differs between the stores: SQL and connections. Times are RFC 3339 text in both.
pub trait HistoryStore: Send + Sync {
    /// Marks runs (and their attempts) left `running` by a process that no longer exists as
    /// `interrupted`; how many runs.
    fn close_dead_runs(&self) -> Result<usize>;
    fn start_run(
        &self,
        job: &str,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<i64>;
    fn record_past_run(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        took: chrono::Duration,
        saved: &[(&str, u64, u64, &str)],
    ) -> Result<i64>;
    fn finish_run(&self, id: i64, outcome: &str, detail: Option<&str>) -> Result<()>;
    fn start_attempt(&self, run_id: i64, group: &str, attempt: u32, max: u32) -> Result<i64>;
    fn finish_attempt(&self, id: i64, end: &AttemptEnd<'_>) -> Result<()>;
    fn recent_runs(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>>;
    fn attempts(&self, which: Attempts<'_>) -> Result<Vec<AttemptRecord>>;
    fn saved_exports(&self, limit: usize) -> Result<Vec<SavedFile>>;
    fn attempt_count(&self, run_id: i64) -> Result<u32>;
    fn runs_for_instant(&self, job: &str, at: DateTime<Utc>) -> Result<u64>;
}

/// The history. Cloning shares the store; calls block briefly (small writes).
#[derive(Clone)]
pub struct RunHistory {
    store: Arc<dyn HistoryStore>,
}

impl RunHistory {
    /// Opens (and creates or migrates) the SQLite history at `path`.
    pub fn open(path: &std::path::Path) -> rusqlite::Result<Self> {
        let h = SqliteHistory::open(path)?;
        Ok(Self::from_store(h))
    }

    /// Opens the history in a PostgreSQL database (migrated at first use by this process).
    pub fn open_pg(cfg: &crate::storage::PgConfig) -> Result<Self> {
        let h = PgHistory::open(cfg)?;
        h.close_dead_runs()?;
        Ok(Self::from_store(h))
    }

    /// A history over `store`.
    pub fn from_store(store: impl HistoryStore + 'static) -> Self {
        Self {
            store: Arc::new(store),
        }
    }

    /// See [`HistoryStore::close_dead_runs`].
    pub fn close_dead_runs(&self) -> Result<usize> {
        self.store.close_dead_runs()
    }

    /// Records the start of a job run; returns its id.
    pub fn start_run(
        &self,
        job: &str,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<i64> {
        self.store.start_run(job, trigger, scheduled_for)
    }

    /// Records a finished export run of the past in one go (imports and the demo).
    pub fn record_past_run(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        took: chrono::Duration,
        saved: &[(&str, u64, u64, &str)],
    ) -> Result<i64> {
        self.store.record_past_run(job, scheduled_for, took, saved)
    }

    /// Records how a job run ended.
    pub fn finish_run(&self, id: i64, outcome: &str, detail: Option<&str>) -> Result<()> {
        self.store.finish_run(id, outcome, detail)
    }

    /// Records the start of an export attempt; returns its id.
    pub fn start_attempt(&self, run_id: i64, group: &str, attempt: u32, max: u32) -> Result<i64> {
        self.store.start_attempt(run_id, group, attempt, max)
    }

    /// Records how an export attempt ended.
    pub fn finish_attempt(&self, id: i64, end: &AttemptEnd<'_>) -> Result<()> {
        self.store.finish_attempt(id, end)
    }

    /// The most recent runs of a job, newest first.
    pub fn recent_runs(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        self.store.recent_runs(job, limit)
    }

    /// Attempts of one run, in order.
    pub fn attempts_of_run(&self, run_id: i64) -> Result<Vec<AttemptRecord>> {
        self.store.attempts(Attempts::OfRun(run_id))
    }

    /// The latest attempt of a group, if any.
    pub fn last_attempt(&self, group: &str) -> Result<Option<AttemptRecord>> {
        Ok(self.store.attempts(Attempts::LastOf(group))?.pop())
    }

    /// The latest successful attempt of a group, if any.
    pub fn last_saved(&self, group: &str) -> Result<Option<AttemptRecord>> {
        Ok(self.store.attempts(Attempts::LastSavedOf(group))?.pop())
    }

    /// Saved exports, oldest first, the last `limit` of them.
    pub fn saved_exports(&self, limit: usize) -> Result<Vec<SavedFile>> {
        self.store.saved_exports(limit)
    }

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

    /// The number of attempts of a run.
    pub fn attempt_count(&self, run_id: i64) -> Result<u32> {
        self.store.attempt_count(run_id)
    }

    /// Number of runs of a job that were started for a given scheduled instant.
    pub fn runs_for_instant(&self, job: &str, at: DateTime<Utc>) -> Result<u64> {
        self.store.runs_for_instant(job, at)
    }
}

fn time_opt(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}
