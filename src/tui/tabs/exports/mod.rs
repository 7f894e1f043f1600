//! The Exports tab: the configured groups with their status and trend, the files of the
//! export directory.

pub(crate) mod view;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::Ctx;
use crate::export::{DirListing, ExportEvent, Stage};
use crate::tui::keymap::Action;
use crate::tui::msg::{Cmd, Level, SavedExport};
use crate::tui::popups::{DiffView, Overlay, Preview};
use crate::tui::request::Req;
use crate::tui::tab::Tab;

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

/// Which Exports pane has the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Groups,
    Files,
}

/// The tab's state: the groups (left pane) and the files of the export directory (right
/// pane), each with its selection.
#[derive(Debug, Clone)]
pub struct ExportsState {
    pub export_dir: PathBuf,
    pub groups: Vec<GroupRow>,
    pub group_sel: usize,
    pub files: Vec<FileRow>,
    /// Indexes the files that pass the filter.
    pub file_sel: usize,
    pub pane: Pane,
    pub total_bytes: u64,
    pub rows_by_file: HashMap<PathBuf, u64>,
    /// When an export was asked for here that no export event has reported yet: quitting
    /// asks meanwhile (a quit right after `E` cancelled the export unasked).
    pub requested: Option<DateTime<Utc>>,
}

impl ExportsState {
    pub fn new(groups: Vec<String>, export_dir: PathBuf) -> Self {
        ExportsState {
            export_dir,
            groups: groups
                .into_iter()
                .map(|name| GroupRow {
                    name,
                    status: GroupStatus::Idle,
                    trend: vec![],
                })
                .collect(),
            group_sel: 0,
            requested: None,
            files: vec![],
            file_sel: 0,
            pane: Pane::Groups,
            total_bytes: 0,
            rows_by_file: HashMap::new(),
        }
    }

    /// True while a group exports or waits to retry.
    pub fn exporting(&self) -> bool {
        self.requested.is_some()
            || self.groups.iter().any(|g| {
                matches!(
                    g.status,
                    GroupStatus::Running { .. } | GroupStatus::Retrying { .. }
                )
            })
    }

    /// Indexes of the files that pass the filter.
    pub fn visible_files(&self, filters: &HashMap<Tab, String>) -> Vec<usize> {
        let f = filters
            .get(&Tab::Exports)
            .map(|s| s.to_lowercase())
            .unwrap_or_default();
        (0..self.files.len())
            .filter(|&i| {
                f.is_empty() || {
                    let file = &self.files[i];
                    file.group.to_lowercase().contains(&f)
                        || file
                            .path
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().to_lowercase().contains(&f))
                }
            })
            .collect()
    }

    /// The selected file, if any.
    pub fn selected_file(&self, filters: &HashMap<Tab, String>) -> Option<&FileRow> {
        self.visible_files(filters)
            .get(self.file_sel)
            .map(|&i| &self.files[i])
    }

    /// The previous export of the selected file's group, for `D`.
    pub fn previous_of(&self, file: &FileRow) -> Option<&FileRow> {
        self.files
            .iter()
            .filter(|f| f.group == file.group && f.taken_at < file.taken_at)
            .max_by_key(|f| f.taken_at)
    }

    /// j/k and pages: moves the selection of the focused pane.
    pub fn move_sel(&mut self, delta: i64, filters: &HashMap<Tab, String>) {
        match self.pane {
            Pane::Groups => super::step(&mut self.group_sel, self.groups.len(), delta),
            Pane::Files => {
                let len = self.visible_files(filters).len();
                super::step(&mut self.file_sel, len, delta)
            }
        }
    }

    /// A click at (x, y): selects the group or file under it (and its pane); false when
    /// it hit no row.
    pub fn click(
        &mut self,
        size: (u16, u16),
        x: u16,
        y: u16,
        filters: &HashMap<Tab, String>,
    ) -> bool {
        let (groups, files) = crate::tui::layout::exports(size, self.groups.len());
        if let Some(i) = crate::tui::layout::table_row_at(groups, self.group_sel, x, y) {
            self.pane = Pane::Groups;
            self.group_sel = i.min(self.groups.len().saturating_sub(1));
        } else if let Some(i) = crate::tui::layout::table_row_at(files, self.file_sel, x, y) {
            self.pane = Pane::Files;
            self.file_sel = i.min(self.visible_files(filters).len().saturating_sub(1));
        } else {
            return false;
        }
        true
    }

    fn group_mut(&mut self, name: &str) -> Option<&mut GroupRow> {
        self.groups.iter_mut().find(|g| g.name == name)
    }

    /// The export job's report (a finished run reloads the history, which `App` asks).
    pub fn on_event(&mut self, e: ExportEvent, ctx: &mut Ctx) {
        // The export asked for has been heard of (or another one runs): the groups' states
        // say the rest.
        self.requested = None;
        match e {
            ExportEvent::Progress {
                group,
                attempt,
                max_attempts,
                stage,
                ..
            } => {
                if let Some(g) = self.group_mut(&group) {
                    g.status = GroupStatus::Running {
                        attempt,
                        max: max_attempts,
                        stage,
                    };
                }
            }
            ExportEvent::RetryScheduled {
                group,
                attempt,
                max_attempts,
                at,
                error,
                ..
            } => {
                if let Some(g) = self.group_mut(&group) {
                    g.status = GroupStatus::Retrying {
                        attempt,
                        max: max_attempts,
                        at,
                        error,
                    };
                }
            }
            ExportEvent::Saved {
                group, path, rows, ..
            } => {
                let at = ctx.now;
                if let Some(g) = self.group_mut(&group) {
                    g.status = GroupStatus::Saved { at };
                    g.trend.push(rows);
                    if g.trend.len() > 30 {
                        g.trend.remove(0);
                    }
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.rows_by_file.insert(path, rows);
                ctx.toast(
                    Level::Info,
                    format!("{group}: saved {name} ({rows} test cases)"),
                );
            }
            ExportEvent::Failed { group, error, .. } => {
                let at = ctx.now;
                if let Some(g) = self.group_mut(&group) {
                    g.status = GroupStatus::Failed {
                        error: error.clone(),
                        at,
                    };
                }
                ctx.toast(Level::Error, format!("{group}: export failed: {error}"));
            }
            ExportEvent::Skipped { group, reason } => {
                ctx.toast(Level::Info, format!("{group}: {reason}"))
            }
            ExportEvent::RunFinished { .. } => {}
        }
    }

    /// A new listing of the export directory.
    pub fn apply_listing(&mut self, listing: DirListing, filters: &HashMap<Tab, String>) {
        let selected = self.selected_file(filters).map(|f| f.path.clone());
        self.files = listing
            .files
            .into_iter()
            .map(|f| FileRow {
                path: f.path,
                group: f.name.group,
                taken_at: f.name.taken_at,
                size: f.size,
            })
            .collect();
        self.total_bytes = listing.total_bytes;
        // Keep the selection on the same file when others come and go.
        let visible = self.visible_files(filters);
        self.file_sel = selected
            .and_then(|p| visible.iter().position(|&i| self.files[i].path == p))
            .unwrap_or(self.file_sel)
            .min(visible.len().saturating_sub(1));
    }

    /// The saved exports of the run history: each group's trend and last save, the rows
    /// of each file.
    pub fn apply_history(&mut self, saved: Vec<SavedExport>) {
        for g in &mut self.groups {
            let mine: Vec<&SavedExport> = saved.iter().filter(|s| s.group == g.name).collect();
            g.trend = mine.iter().rev().take(30).rev().map(|s| s.rows).collect();
            if g.status == GroupStatus::Idle
                && let Some(last) = mine.last()
            {
                g.status = GroupStatus::Saved { at: last.at };
            }
        }
        self.rows_by_file = saved.into_iter().map(|s| (s.file, s.rows)).collect();
    }

    /// The tab's keys: the panes, export, open (preview), diff, delete, pager, copy.
    pub fn update(&mut self, action: Action, ctx: &mut Ctx) -> Vec<Cmd> {
        let mut cmds = vec![];
        match action {
            Action::Left => self.pane = Pane::Groups,
            Action::Right => self.pane = Pane::Files,
            Action::Export => {
                if let Some(g) = self.groups.get(self.group_sel) {
                    cmds.push(Cmd::Export(vec![g.name.clone()]));
                }
            }
            Action::ExportAll => cmds.push(Cmd::Export(
                self.groups.iter().map(|g| g.name.clone()).collect(),
            )),
            Action::Open => {
                if let Some(f) = self.selected_file(ctx.filters) {
                    let path = f.path.clone();
                    let generation = ctx.requests.start(Req::Preview);
                    *ctx.overlay = Some(Overlay::Preview(Box::new(Preview {
                        path: path.clone(),
                        generation,
                        ..Default::default()
                    })));
                    cmds.push(Cmd::Preview { path, generation });
                } else {
                    ctx.toast(Level::Info, "no file selected");
                }
            }
            Action::Diff => match self.selected_file(ctx.filters) {
                None => ctx.toast(Level::Info, "select a file (l) to compare"),
                Some(f) => match self.previous_of(f) {
                    None => ctx.toast(
                        Level::Info,
                        format!("no earlier export of {} to compare with", f.group),
                    ),
                    Some(prev) => {
                        let (old, new) = (prev.path.clone(), f.path.clone());
                        let generation = ctx.requests.start(Req::Diff);
                        *ctx.overlay = Some(Overlay::Diff(Box::new(DiffView {
                            old: old.clone(),
                            new: new.clone(),
                            result: None,
                            top: 0,
                        })));
                        cmds.push(Cmd::Diff {
                            old,
                            new,
                            generation,
                        });
                    }
                },
            },
            Action::Delete => {
                if let Some(f) = self.selected_file(ctx.filters) {
                    *ctx.overlay = Some(Overlay::ConfirmDelete(f.path.clone()));
                }
            }
            Action::Pager => {
                if let Some(f) = self.selected_file(ctx.filters) {
                    cmds.push(Cmd::Pager(f.path.clone()));
                }
            }
            Action::Copy => {
                if let Some(f) = self.selected_file(ctx.filters) {
                    let path = f.path.display().to_string();
                    cmds.push(Cmd::Copy(path.clone()));
                    ctx.toast(Level::Info, format!("copied {path}"));
                }
            }
            _ => {}
        }
        cmds
    }
}
