//! The dashboard's messages (`Msg`: what `update` is fed) and commands (`Cmd`: what it asks
//! the effects to do), with the data they carry. Apart from `app`, so the tabs, the effects
//! and the loop can name them without importing the state.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyEvent, MouseEvent};

use crate::events::Event;
use crate::export::RunRecord;
use crate::export::diff::CsvDiff;
use crate::export::preview::PreviewBatch;
use crate::release::AuditEntry;
use crate::schedule::CronSchedule;

/// A saved export as the run history knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedExport {
    pub group: String,
    pub file: PathBuf,
    pub rows: u64,
    pub at: DateTime<Utc>,
}

/// What the run history holds for the dashboard.
#[derive(Debug, Clone, Default)]
pub struct HistoryView {
    pub runs: HashMap<String, Vec<RunRecord>>,
    /// Attempts made by each export run (by run id).
    pub attempts: HashMap<i64, u32>,
    /// Oldest first.
    pub saved: Vec<SavedExport>,
}

/// How a toast reads: information or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// What the details pane and the details view show of one release.
#[derive(Debug, Clone, Default)]
pub struct ReleaseDetail {
    pub id: i64,
    pub audit: Vec<AuditEntry>,
    /// The last lines of its deploy and rollback logs.
    pub log: Vec<String>,
    /// What it could be rolled back to, with when each last ran (ledger tags first).
    pub targets: Vec<crate::release::targets::RollbackTarget>,
}

/// A message to `update`. Moved once from its channel into `update`, so the size difference
/// between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Tick(DateTime<Utc>),
    Service(Event),
    /// A log source or its new lines (from the log channel, apart from `Service`).
    Log(crate::logs::LogEvent),
    History {
        generation: u64,
        history: HistoryView,
    },
    Preview {
        generation: u64,
        batch: PreviewBatch,
    },
    Diff {
        generation: u64,
        result: Result<CsvDiff, String>,
    },
    Paused(BTreeSet<String>),
    ReleaseDetail {
        generation: u64,
        detail: ReleaseDetail,
    },
    /// A whole-file log search progressed or ended.
    Search {
        generation: u64,
        done: u64,
        total: u64,
        matches: u64,
        finished: bool,
        /// Matches found since the last report, for the match list.
        hits: Vec<crate::logs::search::Hit>,
    },
    /// Lines around an opened match, read from its file.
    MatchContext {
        generation: u64,
        result: Result<crate::logs::search::Context, String>,
    },
    CronSaved {
        job: String,
        schedule: CronSchedule,
    },
    /// An effect finished: a line for a toast.
    Done(Result<String, String>),
    /// SIGTERM / SIGHUP / SIGINT: leave now.
    Signal,
}

/// What `update` asks the outside world to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Export(Vec<String>),
    RunCleanup,
    SetPaused {
        job: String,
        paused: bool,
    },
    SaveCron {
        job: String,
        expr: String,
    },
    Delete(PathBuf),
    Preview {
        path: PathBuf,
        generation: u64,
    },
    Diff {
        old: PathBuf,
        new: PathBuf,
        generation: u64,
    },
    Pager(PathBuf),
    Copy(String),
    LoadHistory {
        generation: u64,
    },
    Approve {
        id: i64,
        service: String,
        tag: String,
    },
    Reject {
        id: i64,
        reason: String,
    },
    Rollback {
        id: i64,
        to: String,
        service: String,
        tag: String,
    },
    /// Deploys an approved release (again).
    Deploy {
        id: i64,
        service: String,
        tag: String,
    },
    /// Cancels a release's queued or running deploy (server only).
    CancelDeploy {
        id: i64,
    },
    LoadRelease {
        id: i64,
        service: String,
        tag: String,
        generation: u64,
    },
    /// Writes lines of a log source to a file and says where.
    SaveLog {
        name: String,
        lines: Vec<String>,
    },
    /// Searches a log source's whole file in the background.
    SearchFile {
        spec: String,
        pattern: String,
        generation: u64,
    },
    /// Stops the work of the request of this kind in flight (its view closed).
    Cancel(super::request::Req),
    /// Reads the lines around a byte offset of a log source's file.
    ReadContext {
        spec: String,
        offset: u64,
        generation: u64,
    },
    /// A terminal bell and a desktop notification (OSC 9 and OSC 777) with this text.
    Alert(String),
}
