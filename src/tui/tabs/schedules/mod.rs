//! The Schedules tab: every job with its cron, next runs and last runs, the scheduler lock;
//! `r` runs a job now, `p` pauses it, `c` edits its cron (in a dialog).

pub(crate) mod view;

use std::collections::HashMap;

use tui_input::Input;

use super::Ctx;
use crate::export::RunRecord;
use crate::schedule::{CronSchedule, JobKind};
use crate::tui::keymap::Action;
use crate::tui::msg::Cmd;
use crate::tui::popups::cron::check_cron;
use crate::tui::popups::{CronEdit, Overlay};
use crate::tui::tab::Tab;

/// One scheduled job on the Schedules tab.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub name: String,
    pub kind: JobKind,
    pub schedule: CronSchedule,
    pub paused: bool,
    /// Newest first.
    pub runs: Vec<RunRecord>,
}

/// Scheduler lock as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Unknown,
    Leader,
    Follower(String),
    /// No scheduler runs in this process: TestOps is not set up, so there is nothing to
    /// export (`opsdeck logs FILE` with no config).
    Off,
}

/// The tab's state.
#[derive(Debug, Clone)]
pub struct SchedulesState {
    pub jobs: Vec<JobRow>,
    /// Indexes the jobs that pass the filter.
    pub sel: usize,
    /// The attempts of each run (by run id), from the run history.
    pub run_attempts: HashMap<i64, u32>,
}

impl SchedulesState {
    pub fn new(jobs: Vec<JobRow>) -> Self {
        SchedulesState {
            jobs,
            sel: 0,
            run_attempts: HashMap::new(),
        }
    }

    /// Indexes of the jobs that pass the filter.
    pub fn visible(&self, filters: &HashMap<Tab, String>) -> Vec<usize> {
        let f = filters
            .get(&Tab::Schedules)
            .map(|s| s.to_lowercase())
            .unwrap_or_default();
        (0..self.jobs.len())
            .filter(|&i| f.is_empty() || self.jobs[i].name.to_lowercase().contains(&f))
            .collect()
    }

    /// The selected job, if any.
    pub fn selected(&self, filters: &HashMap<Tab, String>) -> Option<&JobRow> {
        self.visible(filters).get(self.sel).map(|&i| &self.jobs[i])
    }

    /// j/k and pages: moves the selection.
    pub fn move_sel(&mut self, delta: i64, filters: &HashMap<Tab, String>) {
        let len = self.visible(filters).len();
        super::step(&mut self.sel, len, delta);
    }

    /// A click at (x, y): selects the job under it; false when it hit no row.
    pub fn click(
        &mut self,
        size: (u16, u16),
        x: u16,
        y: u16,
        filters: &HashMap<Tab, String>,
    ) -> bool {
        let jobs = crate::tui::layout::schedules(size, self.jobs.len()).0;
        match crate::tui::layout::table_row_at(jobs, self.sel, x, y) {
            Some(i) => {
                self.sel = i.min(self.visible(filters).len().saturating_sub(1));
                true
            }
            None => false,
        }
    }

    /// The paused jobs are `paused`, the others run.
    pub fn set_paused(&mut self, paused: impl Fn(&str) -> bool) {
        for j in &mut self.jobs {
            j.paused = paused(&j.name);
        }
    }

    /// Each job's last runs and each run's attempts, from the run history.
    pub fn apply_runs(
        &mut self,
        runs: &HashMap<String, Vec<RunRecord>>,
        attempts: HashMap<i64, u32>,
    ) {
        for job in &mut self.jobs {
            if let Some(r) = runs.get(&job.name) {
                job.runs = r.clone();
            }
        }
        self.run_attempts = attempts;
    }

    /// `r`, `p`, `c` on the Schedules tab; `groups` are the export groups a run of the
    /// export job exports.
    pub fn update(&self, action: Action, ctx: &mut Ctx, groups: Vec<String>) -> Vec<Cmd> {
        let mut cmds = vec![];
        let Some(j) = self.selected(ctx.filters) else {
            return cmds;
        };
        match action {
            Action::RunNow => cmds.push(match j.kind {
                JobKind::Export => Cmd::Export(groups),
                JobKind::Cleanup => Cmd::RunCleanup,
            }),
            Action::Pause => cmds.push(Cmd::SetPaused {
                job: j.name.clone(),
                paused: !j.paused,
            }),
            Action::EditCron => {
                let input = Input::new(j.schedule.expr().to_string());
                let check = check_cron(&j.schedule, input.value(), ctx.now);
                *ctx.overlay = Some(Overlay::EditCron(CronEdit {
                    job: j.name.clone(),
                    input,
                    check,
                    paused: j.paused,
                }));
            }
            _ => {}
        }
        cmds
    }
}
