//! When each job last fired, kept in the state dir beside the leader lock so that every process
//! that can become leader there sees the same record, and nobody else can edit or redirect it.
//! Only the leader writes it, atomically.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Name of the state file inside the state dir.
pub const STATE_FILE: &str = "scheduler.json";

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
        match read_private(&Self::path(dir)) {
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

/// Reads a file of the state dir, never through a symlink.
pub(super) fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    crate::private::options()
        .read(true)
        .open(path)?
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}
