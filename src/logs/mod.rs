//! Logs: log lines (levels, sanitising) and the tailer that follows files like `tail -F`.

pub mod format;
pub mod line;
pub mod multiline;
pub mod print;
pub mod search;
pub mod service;
pub mod tail;

pub use line::{Level, LogLine};
pub use service::{LogEvent, LogRx, LogSource, LogTailerHandle, LogTx, SourceKind};
pub use tail::{Tail, TailEvent};
