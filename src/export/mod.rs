//! Exports: the job (retries, atomic save, CSV check), the store (naming, listing, retention),
//! the run history, the runner service and the directory watcher.

pub mod csv_check;
pub mod diff;
mod history;
mod job;
pub mod limits;
pub mod preview;
pub mod recovery;
mod runner;
pub mod share;
mod sink;
mod store;
mod watcher;

pub use history::{AttemptEnd, AttemptRecord, HistorySnapshot, RunHistory, RunRecord, SavedFile};
pub use job::{ExportEvent, ExportJob, Stage, Trigger};
pub use limits::DownloadLimits;
pub use runner::{ExportRunner, ExportRunnerHandle, RunOutcome};
pub use share::ExportGroup;
pub use sink::{CsvSink, SinkError};
pub use store::{ExportFile, ExportName, ExportStore, TEMP_PREFIX, sync_dir};
pub use watcher::{DirListing, ExportDirWatcher};
