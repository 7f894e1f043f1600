//! Logs: log lines (levels, sanitising) and the tailer that follows files like `tail -F`.

pub mod line;
pub mod tail;

pub use line::{Level, LogLine};
pub use tail::{Tail, TailEvent};
