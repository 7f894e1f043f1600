//! Where opsdeck keeps its own files.

use std::path::PathBuf;

/// The data directory: `OPSDECK_DATA_DIR`, else `~/.local/share/opsdeck` on Linux.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OPSDECK_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    directories::ProjectDirs::from("", "", "opsdeck")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".opsdeck"))
}

/// The daily-rolling log files.
pub fn log_dir() -> PathBuf {
    data_dir().join("logs")
}

/// File name of the export run history database inside the data dir.
pub const HISTORY_DB: &str = "history.db";
