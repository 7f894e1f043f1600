//! The Exports tab: the configured groups with their status and trend, the files of the
//! export directory.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::export::Stage;

/// What a group is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupStatus {
    Idle,
    Running {
        attempt: u32,
        max: u32,
        stage: Stage,
    },
    Retrying {
        attempt: u32,
        max: u32,
        at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
        at: DateTime<Utc>,
    },
    Saved {
        at: DateTime<Utc>,
    },
}

/// One configured group on the Exports tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub name: String,
    pub status: GroupStatus,
    /// Row counts of its last exports, oldest first (the sparkline).
    pub trend: Vec<u64>,
}

/// One file of the export directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub path: PathBuf,
    pub group: String,
    pub taken_at: DateTime<Utc>,
    pub size: u64,
}
