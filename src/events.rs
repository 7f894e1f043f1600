//! The one event channel every service reports through. Front ends (CLI, daemon, TUI) drain it.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::export::{DirListing, ExportEvent};
use crate::schedule::ScheduleEvent;

/// Something a service wants its front end to know.
#[derive(Debug, Clone)]
pub enum Event {
    Export(ExportEvent),
    Schedule(ScheduleEvent),
    /// The export directory changed (watcher, debounced); a fresh listing.
    ExportDir(DirListing),
    /// Retention deleted these files.
    RetentionDeleted {
        files: Vec<PathBuf>,
        at: DateTime<Utc>,
    },
    /// A job that is not an export (the cleanup) finished; its run is in the history.
    JobFinished {
        job: String,
    },
    /// TestOps reachability: `Ok` after a successful token exchange, else the reason.
    TestOpsHealth(Result<(), String>),
    /// Free bytes on the export directory's file system.
    DiskFree(u64),
    /// The release ledger changed: every release, newest first.
    Releases(Vec<crate::release::Release>),
    /// The ledger cannot be opened.
    ReleasesUnavailable(String),
    /// `Ledger::verify` failed: the first row that does not match ("audit row 7").
    LedgerTampered(String),
    /// Something a person should see once: another session's change ("alice approved api
    /// v1.5.0"), a corrupt run history replaced.
    Notice(String),
    /// Connected to a server: the sessions it has (empty in local mode, never sent there).
    Sessions(Vec<crate::server::hub::SessionInfo>),
    /// Connected to a server: who the server says we are, and each action it would refuse
    /// (by its `snake_case` name) with the refusal's sentence.
    Whoami {
        user: String,
        refusals: std::collections::BTreeMap<String, String>,
    },
    /// The jobs now paused (changed by anyone).
    Paused(std::collections::BTreeSet<String>),
    /// The notification sinks that keep failing now (empty: all deliver).
    NotifyFailing(Vec<crate::notify::SinkHealth>),
    /// The live state of every configured service, from the engine (Swarm deployer).
    Services(std::sync::Arc<Vec<crate::release::engine::ServiceLive>>),
    /// Connected to a server: the deploys and rollbacks it runs or has queued, all of them.
    Work(Vec<crate::server::hub::WorkInfo>),
    /// A line of a running deploy or rollback (from the server).
    DeployProgress {
        id: i64,
        line: String,
    },
    /// A job's cron expression changed (saved by anyone).
    CronChanged {
        job: String,
        expr: String,
    },
}

/// Sending half of the event channel.
pub type EventTx = tokio::sync::mpsc::Sender<Event>;
/// Receiving half of the event channel.
pub type EventRx = tokio::sync::mpsc::Receiver<Event>;

/// A new event channel; bounded so a stalled front end slows progress reports, not memory.
pub fn channel() -> (EventTx, EventRx) {
    tokio::sync::mpsc::channel(1024)
}
