//! What covers a tab: the dialogs, the help, the preview and diff, and the data each one
//! holds. Plain values, so the tabs can open and read them without importing the state.
//! Each generic popup's keys are in its module (the release dialogs' are the Releases
//! tab's); `app::overlay_key` dispatches to them.

pub mod confirm;
pub mod cron;
pub mod diff;
pub mod help;
pub mod input;
pub mod picker;
pub mod preview;
pub(crate) mod view;

pub use confirm::Answer;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tui_input::Input;

use super::tab::Scope;
use crate::export::diff::CsvDiff;

/// The CSV preview.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    pub path: PathBuf,
    pub generation: u64,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub done: bool,
    pub error: Option<String>,
    pub top: usize,
    pub first_col: usize,
    pub search: String,
    pub search_input: Option<Input>,
    pub matches: Vec<usize>,
}

/// The diff of two exports.
#[derive(Debug, Clone)]
pub struct DiffView {
    pub old: PathBuf,
    pub new: PathBuf,
    pub result: Option<Result<CsvDiff, String>>,
    pub top: usize,
}

/// Editing a job's cron expression.
#[derive(Debug, Clone)]
pub struct CronEdit {
    pub job: String,
    pub input: Input,
    /// The next run, or why the expression is invalid.
    pub check: Result<DateTime<Utc>, String>,
    /// The job is paused: the next run is when it would run once resumed.
    pub paused: bool,
}

/// What covers the tab.
#[derive(Debug, Clone)]
pub enum Overlay {
    /// The keys of `scope`, scrolled to row `top`; closing it returns to `back`.
    Help {
        scope: Scope,
        top: usize,
        back: Option<Box<Overlay>>,
    },
    ConfirmQuit,
    ConfirmDelete(PathBuf),
    Preview(Box<Preview>),
    Diff(Box<DiffView>),
    EditCron(CronEdit),
    /// Approve a release: what the engine runs now (drawn from `app.services`) → `to`.
    Approve {
        id: i64,
        service: String,
        to: String,
    },
    /// Deploy an approved release (`opsdeck release deploy ID`).
    Deploy {
        id: i64,
        service: String,
        to: String,
    },
    /// Cancel a queued deploy, or stop a running one (the server rolls the service back).
    CancelDeploy {
        id: i64,
        service: String,
        tag: String,
        deploying: bool,
    },
    Reject {
        id: i64,
        input: Input,
        /// Enter was pressed with no reason: the dialog says one is needed.
        empty: bool,
    },
    RollbackPick {
        id: i64,
        service: String,
        targets: Vec<crate::release::targets::RollbackTarget>,
        sel: usize,
    },
    RollbackConfirm {
        id: i64,
        service: String,
        /// The Swarm service's name when the engine told us (`prod_api`): typing it works too.
        swarm: Option<String>,
        to: String,
        input: Input,
        /// Enter was pressed on a name that matches neither: the dialog says what it expects.
        wrong: bool,
    },
    /// The whole details of a release, scrolled to line `top`.
    ReleaseInfo {
        id: i64,
        top: usize,
    },
}
