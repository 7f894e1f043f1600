//! When each job last fired, kept in the export directory beside the leader lock so that every
//! process that can become leader (a daemon, a dashboard, another user) sees the same record.
//! Only the leader writes it, atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Name of the state file inside the export directory.
pub const STATE_FILE: &str = ".opsdeck-scheduler.json";

/// The last scheduled instant each job fired for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerState {
    pub last_fired: BTreeMap<String, DateTime<Utc>>,
}

impl SchedulerState {
    fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Reads the state; a missing or unreadable file is an empty state (logged).
    pub fn load(dir: &Path) -> SchedulerState {
        match std::fs::read(Self::path(dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable {}: {e}", Self::path(dir).display());
                SchedulerState::default()
            }),
            Err(_) => SchedulerState::default(),
        }
    }

    /// Writes the state atomically (temporary file, fsync, rename, directory fsync).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".opsdeck-state-")
            .tempfile_in(dir)?;
        tmp.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        tmp.as_file().sync_all()?;
        tmp.persist(Self::path(dir)).map_err(|e| e.error)?;
        crate::export::sync_dir(dir)
    }
}
