//! The dashboard's state and `update`, the only place it changes. `update` is a plain
//! function: tests feed it messages and check the state and the commands it returns.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Offset, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::keymap::{Action, action_for};
use super::layout;
use super::msg::{Cmd, HistoryView, Level, Msg};
use super::request::Req;
use super::tab::{Scope, Tab};
use super::tabs::ctx;
use crate::events::Event;
use crate::export::ExportEvent;
use crate::schedule::{CronSchedule, ScheduleEvent};

pub use super::tabs::exports::{FileRow, GroupRow, GroupStatus, Pane};
pub use super::tabs::schedules::{JobRow, LockState};
pub use super::toast::Toast;

pub use super::popups::{CronEdit, DiffView, Overlay, Preview};

/// Everything the dashboard shows.
#[derive(Debug, Clone)]
pub struct App {
    pub tab: Tab,
    pub now: DateTime<Utc>,
    /// The user's UTC offset, for "local time" columns (read once at start).
    pub local: chrono::FixedOffset,
    pub demo: bool,
    pub color: bool,
    pub size: (u16, u16),
    pub exports: super::tabs::exports::ExportsState,
    pub filters: HashMap<Tab, String>,
    pub filter_input: Option<Input>,
    /// The `:` command line while it is open.
    pub command: Option<super::command::CommandLine>,
    /// Commands run this session, oldest first (Up recalls them).
    pub command_history: Vec<String>,
    /// `--readonly` or `ui.readonly`: every action is hidden and refused.
    pub readonly: bool,
    /// The colours of `ui.theme`.
    pub palette: super::theme::Palette,
    /// The release and log source to select when they arrive (remembered from last run).
    pub recall: super::memory::Memory,
    /// Connected to a server (its queue can cancel deploys); false in local mode.
    pub remote: bool,
    pub logs: super::tabs::logs::LogsState,
    pub schedules: super::tabs::schedules::SchedulesState,
    /// The scheduler lock as this process sees it (the status bar and the Schedules tab).
    pub lock: LockState,
    pub releases: super::tabs::releases::ReleasesState,
    /// The first ledger row that fails verification: shown red in the status bar.
    pub ledger_tampered: Option<String>,
    pub testops: Option<Result<(), String>>,
    pub disk_free: Option<u64>,
    /// Connected to a server: its sessions (`None` in local mode).
    pub sessions: Option<Vec<crate::server::hub::SessionInfo>>,
    /// Connected to a server: the actions it refuses us, with its sentence (empty in local
    /// mode, where the desk checks `releases.approvers` itself).
    pub refusals: std::collections::BTreeMap<String, String>,
    /// Whether this user may approve: in local mode from `releases.approvers` (read once at
    /// start); with a server, true, and the server's refusals decide.
    pub may_approve: bool,
    /// `ui.notify`: a bell and a desktop notification when the waiting count goes up.
    pub ui_notify: bool,
    /// Releases in manual_testing this user may approve ("waiting on you").
    pub waiting: usize,
    /// Notification sinks that keep failing (the server's, or this process's).
    pub notify_failing: Vec<crate::notify::SinkHealth>,
    pub toasts: Vec<Toast>,
    pub overlay: Option<Overlay>,
    pub quit: bool,
    /// The asynchronous requests in flight (preview, diff, search, details, history).
    pub requests: super::request::Requests,
}

/// Why exports are off in a dashboard without TestOps settings.
pub const NO_TESTOPS: &str = "TestOps is not set up: set testops.base_url and the token in the \
     config (opsdeck check says what is missing)";

/// Why an action is refused in read-only mode.
pub const READONLY: &str =
    "read-only: started with --readonly (or ui.readonly = true); nothing can be changed from here";

impl App {
    /// Why the server would refuse what `action` asks (`None`: allowed, or not the server's
    /// to decide).
    pub fn refused(&self, action: super::keymap::Action) -> Option<&str> {
        if self.hidden(action) {
            return Some(READONLY);
        }
        if self.testops_off()
            && matches!(
                action,
                super::keymap::Action::Export | super::keymap::Action::ExportAll
            )
        {
            return Some(NO_TESTOPS);
        }
        if action == super::keymap::Action::CancelDeploy && !self.remote {
            return Some(super::tabs::releases::LOCAL_CANCEL);
        }
        super::keymap::server_action(action)
            .and_then(|name| self.refusals.get(name))
            .map(String::as_str)
    }

    /// Read-only hides this action from hints and help (and `refused` refuses it).
    pub fn hidden(&self, action: super::keymap::Action) -> bool {
        self.readonly && super::keymap::acts(action)
    }

    /// A dashboard over these groups and jobs.
    pub fn new(
        groups: Vec<String>,
        jobs: Vec<JobRow>,
        export_dir: PathBuf,
        now: DateTime<Utc>,
    ) -> App {
        App {
            tab: Tab::Exports,
            now,
            local: chrono::Utc.fix(),
            demo: false,
            color: true,
            size: (80, 24),
            exports: super::tabs::exports::ExportsState::new(groups, export_dir),
            filters: HashMap::new(),
            filter_input: None,
            command: None,
            command_history: Vec::new(),
            readonly: false,
            palette: Default::default(),
            recall: Default::default(),
            releases: Default::default(),
            remote: false,
            logs: Default::default(),
            schedules: super::tabs::schedules::SchedulesState::new(jobs),
            lock: LockState::Unknown,
            ledger_tampered: None,
            testops: None,
            disk_free: None,
            sessions: None,
            refusals: Default::default(),
            may_approve: true,
            ui_notify: false,
            waiting: 0,
            notify_failing: vec![],
            toasts: vec![],
            overlay: None,
            quit: false,
            requests: Default::default(),
        }
    }

    /// This process has no TestOps settings (local mode), so it runs no scheduler: not a
    /// failure, nothing to check or export.
    pub fn testops_off(&self) -> bool {
        self.lock == LockState::Off
    }

    /// How many releases wait for this user's verdict: in manual_testing, and approving is
    /// not refused (by the server's whoami, or `releases.approvers` in local mode).
    pub fn waiting_on_me(&self) -> usize {
        if !self.may_approve || self.refusals.contains_key("approve") {
            return 0;
        }
        self.releases
            .list
            .iter()
            .filter(|r| r.status == crate::release::Status::ManualTesting)
            .count()
    }

    /// True while an export runs or waits to retry.
    pub fn exporting(&self) -> bool {
        self.exports.exporting()
    }

    /// True while something on screen moves by itself (gauge, countdown, toast, a deploy
    /// whose progress the Releases tab shows).
    pub fn animating(&self) -> bool {
        self.exporting() || !self.toasts.is_empty() || self.releases.watching_deploy(self.tab)
    }

    /// The filter of the current tab.
    pub fn filter(&self) -> &str {
        self.filters.get(&self.tab).map_or("", String::as_str)
    }

    /// Indexes of the files that pass the filter.
    pub fn visible_files(&self) -> Vec<usize> {
        self.exports.visible_files(&self.filters)
    }

    /// Indexes of the jobs that pass the filter.
    pub fn visible_jobs(&self) -> Vec<usize> {
        self.schedules.visible(&self.filters)
    }

    /// The selected file, if any.
    pub fn selected_file(&self) -> Option<&FileRow> {
        self.exports.selected_file(&self.filters)
    }

    pub(crate) fn toast(&mut self, level: Level, text: impl Into<String>) {
        super::toast::push(&mut self.toasts, self.now, level, text);
    }

    fn scope(&self) -> Scope {
        match &self.overlay {
            Some(Overlay::Preview(_)) => Scope::Preview,
            _ => Scope::Tab(self.tab),
        }
    }

    /// The previous export of the selected file's group, for `D`.
    pub fn previous_of(&self, file: &FileRow) -> Option<&FileRow> {
        self.exports.previous_of(file)
    }
}

/// Applies a message. Returns the effects to run; `app.quit` asks the loop to stop.
/// The boolean says whether anything visible changed (the loop redraws only then).
pub fn update(app: &mut App, msg: Msg) -> (Vec<Cmd>, bool) {
    let mut cmds = Vec::new();
    let changed = match msg {
        Msg::Key(k) => {
            on_key(app, k, &mut cmds);
            true
        }
        Msg::Mouse(m) => {
            let changed = on_mouse(app, m);
            if changed && app.tab == Tab::Releases {
                app.releases.follow_selection(&mut ctx!(app), &mut cmds);
            }
            changed
        }
        Msg::Resize(w, h) => {
            app.size = (w, h);
            true
        }
        Msg::Tick(now) => {
            let minute_changed = now.timestamp() / 60 != app.now.timestamp() / 60;
            app.now = now;
            // An export asked for that nothing reported within 15 s is not running.
            if app
                .exports
                .requested
                .is_some_and(|t| now - t > chrono::Duration::seconds(15))
            {
                app.exports.requested = None;
            }
            let before = app.toasts.len();
            app.toasts.retain(|t| t.until > now);
            if app.releases.watching_deploy(app.tab) {
                app.releases.refresh_selected(&mut ctx!(app), &mut cmds);
            }
            minute_changed || before != app.toasts.len() || app.exporting()
        }
        Msg::Service(ev) => on_service(app, ev, &mut cmds),
        Msg::Log(ev) => {
            // Only the Logs tab shows log lines (and the sources' line counts).
            let on_tab = app.tab == Tab::Logs;
            app.logs.on_event(ev, &mut app.recall.log_source) && on_tab
        }
        Msg::History {
            generation,
            history,
        } => {
            let current = app.requests.reply(Req::History, generation, true);
            if current {
                apply_history(app, history);
            }
            current
        }
        Msg::Preview { generation, batch } => match &mut app.overlay {
            Some(Overlay::Preview(p))
                if p.generation == generation
                    && app.requests.reply(Req::Preview, generation, batch.done) =>
            {
                if let Some(h) = batch.header {
                    p.header = h;
                }
                let start = p.rows.len();
                p.rows.extend(batch.rows);
                p.done = batch.done;
                p.error = batch.error;
                if !p.search.is_empty() {
                    let needle = p.search.to_lowercase();
                    let hits = (start..p.rows.len())
                        .filter(|&i| super::popups::preview::row_matches(&p.rows[i], &needle));
                    p.matches.extend(hits);
                }
                true
            }
            _ => false,
        },
        Msg::Diff { generation, result } => match &mut app.overlay {
            Some(Overlay::Diff(d)) if app.requests.reply(Req::Diff, generation, true) => {
                d.result = Some(result);
                true
            }
            _ => false,
        },
        Msg::Search {
            generation,
            done,
            total,
            matches,
            finished,
            hits,
        } => {
            app.requests.reply(Req::Search, generation, finished);
            app.logs
                .on_search(generation, done, total, matches, finished, hits)
        }
        Msg::MatchContext { generation, result } => {
            app.requests.reply(Req::Context, generation, true) && app.logs.on_context(result)
        }
        Msg::ReleaseDetail { generation, detail } => {
            let current = app.requests.reply(Req::Release, generation, true);
            if current {
                app.releases.detail = Some(detail);
                app.releases.detail_arrived(&mut ctx!(app), &mut cmds);
            }
            current
        }
        Msg::Paused(set) => {
            app.schedules.set_paused(|name| set.contains(name));
            true
        }
        Msg::CronSaved { job, schedule } => {
            let expr = schedule.expr().to_string();
            if let Some(j) = app.schedules.jobs.iter_mut().find(|j| j.name == job) {
                j.schedule = schedule;
            }
            app.toast(Level::Info, format!("{job}: schedule saved as `{expr}`"));
            true
        }
        Msg::Done(Ok(text)) => {
            app.toast(Level::Info, text);
            true
        }
        Msg::Done(Err(text)) => {
            // A refused export (unknown group, no TestOps) never starts.
            app.exports.requested = None;
            app.toast(Level::Error, text);
            true
        }
        Msg::Signal => {
            app.quit = true;
            true
        }
    };
    cancel_closed(app, &mut cmds);
    // Without TestOps nothing exports: say so rather than "export started" and nothing.
    if app.testops_off() && cmds.iter().any(|c| matches!(c, Cmd::Export(_))) {
        cmds.retain(|c| !matches!(c, Cmd::Export(_)));
        app.toast(Level::Error, NO_TESTOPS);
    }
    if cmds.iter().any(|c| matches!(c, Cmd::Export(_))) {
        app.exports.requested = Some(app.now);
    }
    let waiting = app.waiting_on_me();
    let changed = changed || waiting != app.waiting;
    if waiting > app.waiting && app.ui_notify && !app.readonly {
        cmds.push(Cmd::Alert(alert_text(app, waiting)));
    }
    app.waiting = waiting;
    (cmds, changed)
}

/// Cancels the work of each request whose view is no longer open (whichever way it was
/// closed), so a closed preview stops reading and a cleared search stops searching.
fn cancel_closed(app: &mut App, cmds: &mut Vec<Cmd>) {
    for kind in [Req::Preview, Req::Diff, Req::Search, Req::Context] {
        let Some(generation) = app.requests.current(kind) else {
            continue;
        };
        let open = match kind {
            Req::Preview => {
                matches!(&app.overlay, Some(Overlay::Preview(p)) if p.generation == generation)
            }
            Req::Diff => matches!(&app.overlay, Some(Overlay::Diff(d)) if d.result.is_none()),
            Req::Search => app
                .logs
                .file_search
                .as_ref()
                .is_some_and(|f| f.generation == generation && !f.finished),
            Req::Context => matches!(
                app.logs.match_view,
                Some(super::tabs::logs::MatchView::Context { ctx: None, .. })
            ),
            Req::Release | Req::History => true,
        };
        if !open {
            app.requests.forget(kind);
            cmds.push(Cmd::Cancel(kind));
        }
    }
}

/// Starts reading the run history.
pub fn load_history(app: &mut App) -> Cmd {
    Cmd::LoadHistory {
        generation: app.requests.start(Req::History),
    }
}

/// Orders the Releases tab's list again for its current filter, keeping the selection.
pub(crate) fn reorder_releases(app: &mut App) {
    let filter = app.filters.get(&Tab::Releases).map(String::as_str);
    app.releases.reorder(filter);
}

/// The desktop notification's text: the newest waiting release.
fn alert_text(app: &App, waiting: usize) -> String {
    let newest = app
        .releases
        .list
        .iter()
        .filter(|r| r.status == crate::release::Status::ManualTesting)
        .max_by_key(|r| r.id);
    let what = newest
        .map(|r| {
            format!(
                "{} {} waits for your approval",
                r.service_name, r.release_tag
            )
        })
        .unwrap_or_else(|| "a release waits for your approval".into());
    let text = if waiting > 1 {
        format!("{what} ({waiting} waiting)")
    } else {
        what
    };
    crate::sanitize::clean_max(&text, 200)
}

fn apply_history(app: &mut App, h: HistoryView) {
    app.schedules.apply_runs(&h.runs, h.attempts);
    app.exports.apply_history(h.saved);
}

fn on_service(app: &mut App, ev: Event, cmds: &mut Vec<Cmd>) -> bool {
    match ev {
        Event::Export(ExportEvent::RunFinished { .. }) => cmds.push(load_history(app)),
        Event::Export(e) => {
            if matches!(e, ExportEvent::Saved { .. }) {
                // A saved export proves TestOps answers, whatever the last probe said.
                app.testops = Some(Ok(()));
            }
            app.exports.on_event(e, &mut ctx!(app));
        }
        Event::ExportDir(listing) => app.exports.apply_listing(listing, &app.filters),
        Event::Schedule(s) => match s {
            ScheduleEvent::Leader => app.lock = LockState::Leader,
            ScheduleEvent::Follower { holder } => app.lock = LockState::Follower(holder),
            ScheduleEvent::Fired { job, catch_up, .. } => {
                let what = if catch_up {
                    "catching up a missed run"
                } else {
                    "scheduled run started"
                };
                app.toast(Level::Info, format!("{job}: {what}"));
            }
            ScheduleEvent::MissedTooOld { job, scheduled_for } => app.toast(
                Level::Error,
                format!(
                    "{job}: run missed at {} was not caught up",
                    scheduled_for.format("%Y-%m-%d %H:%M UTC")
                ),
            ),
            // Next runs are computed from the schedule and the clock by the view.
            ScheduleEvent::Next { .. } => return false,
        },
        Event::RetentionDeleted { files, .. } => {
            app.toast(
                Level::Info,
                format!(
                    "retention deleted {}",
                    super::view::format::count(files.len() as u64, "old export", "old exports")
                ),
            );
        }
        Event::JobFinished { .. } => cmds.push(load_history(app)),
        Event::Releases(list) => {
            app.releases
                .apply_list(list, &mut app.recall.release, &mut ctx!(app), cmds)
        }
        Event::ReleasesUnavailable(e) => app.releases.error = Some(e),
        Event::LedgerTampered(row) => app.ledger_tampered = Some(row),
        Event::Services(s) => {
            let filter = app.filters.get(&Tab::Releases).map(String::as_str);
            return app.releases.apply_services(s, filter);
        }
        Event::TestOpsHealth(h) => {
            app.testops = Some(h.map_err(|e| crate::sanitize::clean_max(&e, 200)))
        }
        Event::DiskFree(b) => app.disk_free = Some(b),
        Event::Notice(text) => app.toast(Level::Info, text),
        Event::Sessions(list) => app.sessions = Some(list),
        Event::Work(work) => app.releases.work = work,
        Event::DeployProgress { id, line } => {
            // The details pane shows the deploy log as it grows.
            match app.releases.detail.as_mut() {
                Some(d) if d.id == id => {
                    d.log.push(line);
                    let extra = d.log.len().saturating_sub(super::tabs::releases::LOG_LINES);
                    d.log.drain(..extra);
                }
                _ => return false,
            }
        }
        Event::Whoami { refusals, .. } => app.refusals = refusals,
        Event::NotifyFailing(list) => {
            if list == app.notify_failing {
                return false;
            }
            app.notify_failing = list;
        }
        Event::Paused(set) => app.schedules.set_paused(|name| set.contains(name)),
        Event::CronChanged { job, expr } => {
            if let Some(j) = app.schedules.jobs.iter_mut().find(|j| j.name == job)
                && let Ok(s) = CronSchedule::parse(&expr, Some(j.schedule.timezone()))
            {
                j.schedule = s;
            }
        }
    }
    true
}

fn on_key(app: &mut App, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    if k.kind == crossterm::event::KeyEventKind::Release {
        return;
    }
    if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
        app.quit = true;
        return;
    }
    if app.filter_input.is_some() {
        return filter_key(app, k);
    }
    if app.command.is_some() {
        return command_key(app, k, cmds);
    }
    if app.tab == Tab::Logs && app.logs.search_input.is_some() && app.overlay.is_none() {
        cmds.extend(app.logs.search_key(k, &mut ctx!(app)));
        return;
    }
    match app.overlay.take() {
        None => {}
        Some(o) => return overlay_key(app, o, k, cmds),
    }
    let Some(action) = action_for(app.scope(), &k) else {
        return;
    };
    if app.tab == Tab::Logs && app.overlay.is_none() && is_logs_action(action) {
        cmds.extend(app.logs.update(action, &mut ctx!(app)));
        return;
    }
    // Greyed keys answer with the server's reason instead of a dialog it would refuse.
    if let Some(reason) = app.refused(action) {
        let reason = crate::sanitize::clean_max(reason, 200);
        app.toast(Level::Error, reason);
        return;
    }
    let page = layout::page_rows(app.size);
    match action {
        Action::Quit => {
            if app.exporting() {
                app.overlay = Some(Overlay::ConfirmQuit);
            } else {
                app.quit = true;
            }
        }
        Action::ForceQuit => app.quit = true,
        Action::NextTab => app.tab = Tab::ALL[(app.tab.index() + 1) % 4],
        Action::PrevTab => app.tab = Tab::ALL[(app.tab.index() + 3) % 4],
        Action::GoTab(i) => app.tab = Tab::ALL[i.min(3)],
        Action::Down => move_sel(app, 1),
        Action::Up => move_sel(app, -1),
        Action::PageDown => move_sel(app, page as i64),
        Action::PageUp => move_sel(app, -(page as i64)),
        Action::Top => move_sel(app, i64::MIN / 2),
        Action::Bottom => move_sel(app, i64::MAX / 2),
        Action::Left
        | Action::Right
        | Action::Export
        | Action::ExportAll
        | Action::Diff
        | Action::Delete
        | Action::Pager
        | Action::Copy => cmds.extend(app.exports.update(action, &mut ctx!(app))),
        // A new filter starts empty (k9s); Esc clears it, Enter keeps it.
        Action::Filter => {
            app.filter_input = Some(Input::default());
            app.filters.remove(&app.tab);
            if app.tab == Tab::Releases {
                reorder_releases(app);
            }
        }
        Action::Command => app.command = Some(Default::default()),
        Action::Help => {
            app.overlay = Some(Overlay::Help {
                scope: app.scope(),
                top: 0,
                back: None,
            })
        }
        Action::Close => {
            if app.tab == Tab::Logs {
                app.logs.clear_search();
            }
            app.filters.remove(&app.tab);
            if app.tab == Tab::Releases {
                reorder_releases(app);
            }
        }
        Action::Open if app.tab == Tab::Releases => app.releases.action(action, &mut ctx!(app)),
        Action::Open => cmds.extend(app.exports.update(action, &mut ctx!(app))),
        Action::RunNow | Action::Pause | Action::EditCron => {
            let groups = app.exports.groups.iter().map(|g| g.name.clone()).collect();
            cmds.extend(app.schedules.update(action, &mut ctx!(app), groups));
        }
        Action::Approve
        | Action::Reject
        | Action::Rollback
        | Action::Deploy
        | Action::CancelDeploy
        | Action::NextService
        | Action::PrevService
        | Action::ScrollDown
        | Action::ScrollUp => app.releases.action(action, &mut ctx!(app)),
        Action::Search
        | Action::NextMatch
        | Action::PrevMatch
        | Action::OnlyMatching
        | Action::LevelCycle
        | Action::NextError
        | Action::PrevError
        | Action::Wrap
        | Action::Save
        | Action::Follow
        | Action::Merge
        | Action::Timestamps
        | Action::Fold
        | Action::Pretty
        | Action::Format
        | Action::MatchList => {}
    }
    if app.tab == Tab::Releases {
        app.releases.follow_selection(&mut ctx!(app), cmds);
    }
}

/// Actions the Logs tab handles itself (its scrolling works on lines, not a selection).
fn is_logs_action(a: Action) -> bool {
    matches!(
        a,
        Action::Down
            | Action::Up
            | Action::PageDown
            | Action::PageUp
            | Action::Top
            | Action::Bottom
            | Action::Left
            | Action::Right
            | Action::Search
            | Action::NextMatch
            | Action::PrevMatch
            | Action::OnlyMatching
            | Action::LevelCycle
            | Action::NextError
            | Action::PrevError
            | Action::Wrap
            | Action::Save
            | Action::Follow
            | Action::Merge
            | Action::Timestamps
            | Action::Fold
            | Action::Pretty
            | Action::Format
            | Action::MatchList
            | Action::Open
    )
}

/// Keys while the `:` command line is open: Enter runs, Tab completes, Up/Down recall,
/// Esc closes.
fn command_key(app: &mut App, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    let Some(mut line) = app.command.take() else {
        return;
    };
    match k.code {
        KeyCode::Esc => return,
        KeyCode::Enter => {
            let text = line.input.value().trim().to_string();
            match super::command::parse(app, &text) {
                Ok(c) => {
                    if app.command_history.last() != Some(&text) {
                        app.command_history.push(text);
                    }
                    // What it cannot do is said on the line, which stays open to fix it.
                    match run_command(app, c, cmds) {
                        Ok(()) => return,
                        Err(e) => line.error = Some(e),
                    }
                }
                Err(e) => line.error = Some(e),
            }
        }
        KeyCode::Tab => {
            let (text, candidates) = super::command::complete(app, line.input.value());
            line.input = Input::new(text);
            line.candidates = candidates;
            line.error = None;
        }
        KeyCode::Up | KeyCode::Down => {
            let n = app.command_history.len();
            if n > 0 {
                let at = match (line.recall, k.code) {
                    (None, KeyCode::Up) => Some(n - 1),
                    (Some(i), KeyCode::Up) => Some(i.saturating_sub(1)),
                    (Some(i), _) if i + 1 < n => Some(i + 1),
                    _ => None,
                };
                line.recall = at;
                line.input = Input::new(
                    at.map(|i| app.command_history[i].clone())
                        .unwrap_or_default(),
                );
            }
        }
        _ => {
            line.input.handle_event(&crossterm::event::Event::Key(k));
            line.candidates.clear();
            line.error = None;
        }
    }
    app.command = Some(line);
}

/// Carries out a parsed `:` command through the same checks and dialogs as the keys.
/// Runs a parsed command; `Err` says why it could not (checked before anything changes).
fn run_command(
    app: &mut App,
    c: super::command::Command,
    cmds: &mut Vec<Cmd>,
) -> Result<(), String> {
    use super::command::Command;
    let refused = |app: &App, action: Action| {
        app.refused(action)
            .map(|r| crate::sanitize::clean_max(r, 200))
    };
    match c {
        Command::Tab(t) => app.tab = t,
        Command::Releases(service) => {
            if let Some(s) = service
                && !app.releases.select_service(&s)
            {
                return Err(format!(
                    "no service {s}: {}",
                    app.releases.service_names().join(", ")
                ));
            }
            app.tab = Tab::Releases;
            app.releases.follow_selection(&mut ctx!(app), cmds);
        }
        Command::Logs(source) => {
            if let Some(s) = source
                && !app.logs.select_named(&s)
            {
                let names: Vec<&str> = app.logs.sources.iter().map(|s| s.name.as_str()).collect();
                return Err(format!("no log source {s}: {}", names.join(", ")));
            }
            app.tab = Tab::Logs;
        }
        Command::Filter(text) => {
            if text.is_empty() {
                app.filters.remove(&app.tab);
            } else {
                app.filters.insert(app.tab, text);
            }
            app.exports.file_sel = 0;
            app.schedules.sel = 0;
            app.releases.sel = 0;
            if app.tab == Tab::Releases {
                reorder_releases(app);
            }
        }
        Command::Export(groups) => match refused(app, Action::Export) {
            Some(reason) => return Err(reason),
            None => cmds.push(Cmd::Export(groups)),
        },
        Command::Release { action, id, tag } => {
            let Some(r) = app.releases.list.iter().find(|r| r.id == id).cloned() else {
                return Err(format!("no release {id}"));
            };
            if let Some(reason) = refused(app, action) {
                return Err(reason);
            }
            let why = match &tag {
                Some(to) => app.releases.rollback_to_refusal(&r, to),
                None => app.releases.refusal(action, &r),
            };
            if let Some(why) = why {
                return Err(why);
            }
            app.tab = Tab::Releases;
            app.releases.select_id(id, &mut ctx!(app));
            app.releases.follow_selection(&mut ctx!(app), cmds);
            match tag {
                Some(to) => app.releases.rollback_to(&to, &mut ctx!(app)),
                None => app.releases.action(action, &mut ctx!(app)),
            }
        }
        Command::Help => {
            app.overlay = Some(Overlay::Help {
                scope: app.scope(),
                top: 0,
                back: None,
            })
        }
        Command::Quit => {
            if app.exporting() {
                app.overlay = Some(Overlay::ConfirmQuit);
            } else {
                app.quit = true;
            }
        }
    }
    Ok(())
}

fn filter_key(app: &mut App, k: KeyEvent) {
    let Some(input) = app.filter_input.as_mut() else {
        return;
    };
    match k.code {
        KeyCode::Enter => {
            app.filter_input = None;
        }
        KeyCode::Esc => {
            app.filter_input = None;
            app.filters.remove(&app.tab);
        }
        _ => {
            input.handle_event(&crossterm::event::Event::Key(k));
            let value = input.value().to_string();
            app.filters.insert(app.tab, value);
            app.exports.file_sel = 0;
            app.schedules.sel = 0;
            app.releases.sel = 0;
        }
    }
    if app.tab == Tab::Releases {
        let typed = !matches!(k.code, KeyCode::Enter | KeyCode::Esc);
        reorder_releases(app);
        if typed {
            app.releases.sel = 0;
        }
    }
}

fn overlay_key(app: &mut App, overlay: Overlay, k: KeyEvent, cmds: &mut Vec<Cmd>) {
    use super::popups::{self, Answer};
    let keep = match overlay {
        Overlay::Help { scope, top, back } => {
            // The help scrolls through its rows wrapped to the popup's width.
            let rows = help_rows(app, scope);
            let width = popups::help::width(&rows, super::layout::frame(app.size).1.width);
            let lines = popups::help::lines(&rows, width).len();
            popups::help::key(scope, top, back, lines, app.size, k)
        }
        Overlay::ConfirmQuit => match popups::confirm::key(k) {
            Answer::Yes => {
                app.quit = true;
                None
            }
            Answer::No => None,
            Answer::Open => Some(Overlay::ConfirmQuit),
        },
        Overlay::ConfirmDelete(path) => match popups::confirm::key(k) {
            Answer::Yes => {
                cmds.push(Cmd::Delete(path));
                None
            }
            Answer::No => None,
            Answer::Open => Some(Overlay::ConfirmDelete(path)),
        },
        Overlay::Diff(d) => popups::diff::key(d, app.size, k),
        Overlay::EditCron(e) => {
            let job = app.schedules.jobs.iter().find(|j| j.name == e.job);
            let (keep, cmd) = popups::cron::key(e, job.map(|j| &j.schedule), app.now, k);
            cmds.extend(cmd);
            keep
        }
        Overlay::Preview(p) => popups::preview::key(p, app.size, k),
        o @ (Overlay::Approve { .. }
        | Overlay::Deploy { .. }
        | Overlay::CancelDeploy { .. }
        | Overlay::Reject { .. }
        | Overlay::RollbackPick { .. }
        | Overlay::RollbackConfirm { .. }
        | Overlay::ReleaseInfo { .. }) => app.releases.overlay_key(o, k, &mut ctx!(app), cmds),
    };
    app.overlay = keep;
}

/// The help's lines for `scope`: its keys (greyed with the server's reason when refused;
/// hidden in read-only mode), then the `:` commands: what the `?` popup draws and scrolls.
pub fn help_rows(app: &App, scope: Scope) -> Vec<crate::tui::popups::help::HelpRow> {
    use crate::tui::popups::help::HelpRow;
    let keys = super::keymap::help_for(scope)
        .into_iter()
        .filter(|b| !app.hidden(b.action))
        .map(|b| match app.refused(b.action) {
            Some(reason) => HelpRow {
                key: b.label.to_string(),
                text: crate::sanitize::clean_max(reason, 400),
                greyed: true,
            },
            None => HelpRow {
                key: b.label.to_string(),
                text: b.help.to_string(),
                greyed: false,
            },
        });
    let commands = super::command::COMMANDS
        .iter()
        .filter(|c| !(app.readonly && c.acts))
        .map(|c| HelpRow {
            key: format!(":{}", c.name),
            text: format!("{} {}", c.args, c.help).trim().to_string(),
            greyed: false,
        });
    let mouse = HelpRow {
        key: "mouse".into(),
        text: "click a tab, a row or a log source to select it; the wheel scrolls".into(),
        greyed: false,
    };
    keys.chain([
        mouse,
        HelpRow {
            key: "commands".into(),
            text: "type : and one of these (Tab completes)".into(),
            greyed: false,
        },
    ])
    .chain(commands)
    .collect()
}

fn move_sel(app: &mut App, delta: i64) {
    match app.tab {
        Tab::Exports => app.exports.move_sel(delta, &app.filters),
        Tab::Schedules => app.schedules.move_sel(delta, &app.filters),
        Tab::Releases => app.releases.move_sel(delta),
        Tab::Logs => {}
    }
}

fn on_mouse(app: &mut App, m: MouseEvent) -> bool {
    if app.overlay.is_some() {
        return false;
    }
    match m.kind {
        MouseEventKind::ScrollDown if app.tab == Tab::Logs => app.logs.scroll(3, app.size),
        MouseEventKind::ScrollUp if app.tab == Tab::Logs => app.logs.scroll(-3, app.size),
        MouseEventKind::ScrollDown => move_sel(app, 1),
        MouseEventKind::ScrollUp => move_sel(app, -1),
        MouseEventKind::Down(MouseButton::Left) => {
            if let Some(tab) = layout::tab_at(app.size, m.column, m.row) {
                app.tab = tab;
            } else {
                let (x, y) = (m.column, m.row);
                return match app.tab {
                    Tab::Exports => app.exports.click(app.size, x, y, &app.filters),
                    Tab::Schedules => app.schedules.click(app.size, x, y, &app.filters),
                    Tab::Releases => app.releases.click(app.size, x, y),
                    Tab::Logs => app.logs.click(app.size, x, y),
                };
            }
        }
        _ => return false,
    }
    true
}
