//! The Releases tab's part of `update`: the service groups and their releases (ordered once
//! per change, not per frame), selection, the details text, and the approve / reject / roll
//! back / deploy / cancel dialogs. The actions themselves run in the server or as detached
//! `opsdeck release` processes (effects).

pub(crate) mod dialogs;
pub(crate) mod view;

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent};
use tui_input::Input;

use super::Ctx;
use crate::release::engine::ServiceLive;
use crate::release::{AuditKind, Release, Status};
use crate::tui::keymap::Action;
use crate::tui::msg::{Cmd, Level, ReleaseDetail};
use crate::tui::popups::Overlay;
use crate::tui::popups::input::{self, Typed};
use crate::tui::popups::picker::{self, Picked};
use crate::tui::request::Req;
use crate::tui::tab::Tab;
use crate::tui::view::wrap;

/// Why `c` does nothing in local mode.
pub use crate::client::LOCAL_CANCEL;

/// The sections of a service's releases, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    Awaiting,
    InProgress,
    Deployed,
    Failed,
    History,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::Awaiting => "Awaiting approval",
            Section::InProgress => "In progress",
            Section::Deployed => "Deployed",
            Section::Failed => "Failed",
            Section::History => "History",
        }
    }
}

/// Which section a status belongs to.
pub fn section_of(s: Status) -> Section {
    match s {
        Status::ManualTesting => Section::Awaiting,
        Status::Initiated
        | Status::Building
        | Status::ManualTestPassed
        | Status::Deploying
        | Status::Rollback => Section::InProgress,
        Status::Deployed => Section::Deployed,
        Status::StagingFailed
        | Status::ManualTestFailed
        | Status::ProductionFailed
        | Status::RollbackFailed => Section::Failed,
        Status::RollbackDone => Section::History,
    }
}

/// How a piece of text is meant to look; the view maps it to the theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Title,
    Ok,
    Warn,
    Bad,
    Dim,
}

/// Deploy log lines kept for the details pane.
pub const LOG_LINES: usize = 200;

/// A status's symbol and tone.
pub fn status_look(s: Status) -> (&'static str, Tone) {
    match s {
        Status::ManualTesting => ("◆", Tone::Warn),
        Status::Initiated | Status::Building | Status::ManualTestPassed => ("…", Tone::Dim),
        Status::Deploying | Status::Rollback => ("⟳", Tone::Warn),
        Status::Deployed => ("✔", Tone::Ok),
        Status::RollbackDone => ("↶", Tone::Ok),
        Status::StagingFailed
        | Status::ManualTestFailed
        | Status::ProductionFailed
        | Status::RollbackFailed => ("✖", Tone::Bad),
    }
}

/// One service and its releases, as the tab lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub service: String,
    /// Its rows in `ReleaseOrder::rows`.
    pub rows: Range<usize>,
}

/// The tab's list, computed when the release list, the filter or the services change
/// (never per frame or per key): groups in service order, each with its releases in section
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseOrder {
    /// Releases that pass the filter in display order: their section and index into
    /// `self.list`. `self.sel` indexes this.
    pub rows: Vec<(Section, usize)>,
    pub groups: Vec<Group>,
    /// The service names the order was made for (the engine's, then the configured ones).
    pub services: Vec<String>,
}

/// The engine's message about a stuck or failing update.
pub fn update_message(s: &ServiceLive) -> Option<String> {
    (s.error.is_none() && !s.healthy() && !s.update_message.is_empty()).then(|| {
        format!(
            "update {}: {}",
            s.update_state,
            crate::sanitize::clean_max(&s.update_message, 300)
        )
    })
}

/// The full image a release deploys: `<repository>:<tag>`.
pub fn release_image(r: &Release) -> String {
    format!(
        "{}:{}",
        r.image.as_deref().unwrap_or(&r.service_name),
        r.release_tag
    )
}

/// Whether the typed text confirms a rollback: the release's service name or its Swarm
/// service's name.
pub fn confirms(typed: &str, service: &str, swarm: Option<&str>) -> bool {
    let typed = typed.trim();
    typed == service || swarm == Some(typed)
}

/// Why `r` cannot be rolled back (only deployed or production_failed releases can), for
/// the `r` key and `:rollback` alike.
fn not_rollbackable(r: &Release) -> Option<String> {
    (!matches!(r.status, Status::Deployed | Status::ProductionFailed)).then(|| {
        format!(
            "release {} is {}; only deployed or production_failed releases can be rolled back",
            r.id, r.status
        )
    })
}

/// One line of text to draw, already cut to the width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextLine {
    pub tone: Tone,
    pub text: String,
}

fn push_wrapped(out: &mut Vec<TextLine>, tone: Tone, text: &str, width: usize, indent: usize) {
    out.extend(
        wrap(text, width, indent)
            .into_iter()
            .map(|text| TextLine { tone, text }),
    );
}

fn failed_status(s: &str) -> bool {
    matches!(
        s,
        "staging_failed" | "manual_test_failed" | "production_failed" | "rollback_failed"
    )
}

/// The Releases tab's state: the release list and its order, the selection, the details
/// of the selected release and the engine's live state of each service.
#[derive(Debug, Clone, Default)]
pub struct ReleasesState {
    pub list: Vec<Release>,
    /// The list in display order, ordered when the releases, the filter or the services
    /// change (`reorder`); `sel` indexes its rows.
    pub order: ReleaseOrder,
    pub sel: usize,
    /// The details pane's scroll: (release id, first line).
    pub scroll: (i64, usize),
    /// The configured release services, in config order (the tab's groups).
    pub service_names: Vec<String>,
    /// The engine is watched (swarm deployer with services): a service without live state
    /// is still being read, not a command-deployer service.
    pub engine_watch: bool,
    pub detail: Option<ReleaseDetail>,
    pub error: Option<String>,
    /// The engine's live state of each configured service (Swarm deployer).
    pub services: std::sync::Arc<Vec<ServiceLive>>,
    /// Deploys and rollbacks the server runs or has queued (empty in local mode).
    pub work: Vec<crate::server::hub::WorkInfo>,
}

impl ReleasesState {
    /// The server's deploy or rollback of release `id`, running or queued.
    pub fn work_of(&self, id: i64) -> Option<&crate::server::hub::WorkInfo> {
        self.work.iter().find(|w| w.id == id)
    }

    /// The service names whose order the groups follow: the engine's (the server's config),
    /// then this config's.
    fn service_order(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.services
            .iter()
            .map(|s| &s.service)
            .chain(self.service_names.iter())
            .filter(|n| seen.insert(n.as_str()))
            .cloned()
            .collect()
    }

    /// Orders `self.list`: one pass to find each service's current deploy, one pass to
    /// place every release, one sort. Groups follow `service_order`, then other services by
    /// name; in a group, awaiting approval oldest first, the rest newest first; an older
    /// deployed release of a service that has shipped since is history.
    pub fn compute(&self, filter: Option<&str>) -> ReleaseOrder {
        let f = filter.map(|s| s.to_lowercase()).unwrap_or_default();
        let services = self.service_order();
        // The current deploy of each service: its newest deployed release.
        let mut current: HashMap<&str, (Option<DateTime<Utc>>, i64)> = HashMap::new();
        for r in self.list.iter().filter(|r| r.status == Status::Deployed) {
            let key = (r.completed_at, r.id);
            current
                .entry(r.service_name.as_str())
                .and_modify(|c| *c = (*c).max(key))
                .or_insert(key);
        }
        let mut group_of: HashMap<&str, usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        let mut names: Vec<&str> = services.iter().map(String::as_str).collect();
        // Services only the ledger knows, by name after the configured ones.
        let mut others: Vec<&str> = self
            .list
            .iter()
            .map(|r| r.service_name.as_str())
            .filter(|n| !group_of.contains_key(n))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        others.sort_unstable();
        for n in others {
            group_of.insert(n, names.len());
            names.push(n);
        }
        let mut keyed: Vec<(usize, Section, i64, usize)> = self
            .list
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                f.is_empty()
                    || r.service_name.to_lowercase().contains(&f)
                    || r.release_tag.to_lowercase().contains(&f)
                    || r.status.as_str().contains(&f)
            })
            .map(|(i, r)| {
                let superseded = r.status == Status::Deployed
                    && current
                        .get(r.service_name.as_str())
                        .is_some_and(|c| c.1 != r.id);
                let section = if superseded {
                    Section::History
                } else {
                    section_of(r.status)
                };
                let order = if section == Section::Awaiting {
                    r.id
                } else {
                    -r.id
                };
                (group_of[r.service_name.as_str()], section, order, i)
            })
            .collect();
        keyed.sort_unstable();
        let mut rows = Vec::with_capacity(keyed.len());
        let mut groups = Vec::new();
        let mut k = 0;
        for (g, name) in names.iter().enumerate() {
            let start = rows.len();
            while k < keyed.len() && keyed[k].0 == g {
                rows.push((keyed[k].1, keyed[k].3));
                k += 1;
            }
            // A filter hides the services it leaves empty.
            if rows.len() > start || f.is_empty() {
                groups.push(Group {
                    service: name.to_string(),
                    rows: start..rows.len(),
                });
            }
        }
        ReleaseOrder {
            rows,
            groups,
            services,
        }
    }

    /// Orders the list again, keeping the selection on release `keep` when it is still listed.
    fn reorder_keeping(&mut self, keep: Option<i64>, filter: Option<&str>) {
        self.order = self.compute(filter);
        let rows = &self.order.rows;
        self.sel = keep
            .and_then(|id| rows.iter().position(|&(_, i)| self.list[i].id == id))
            .unwrap_or(self.sel)
            .min(rows.len().saturating_sub(1));
    }

    /// Orders the list again (the filter or the services changed), keeping the selection.
    pub fn reorder(&mut self, filter: Option<&str>) {
        let keep = self.selected().map(|r| r.id);
        self.reorder_keeping(keep, filter);
    }

    /// New live states: the order changes only when the set of services does.
    pub fn apply_services(
        &mut self,
        services: std::sync::Arc<Vec<ServiceLive>>,
        filter: Option<&str>,
    ) -> bool {
        if services == self.services {
            return false;
        }
        self.services = services;
        if self.service_order() != self.order.services {
            self.reorder(filter);
        }
        true
    }

    /// j/k and pages: moves the selection.
    pub fn move_sel(&mut self, delta: i64) {
        let len = self.ordered().len();
        super::step(&mut self.sel, len, delta);
    }

    /// A click at (x, y): selects the release under it (a service's header or notes: its
    /// first release); false when it hit none.
    pub fn click(&mut self, size: (u16, u16), x: u16, y: u16) -> bool {
        use crate::tui::layout;
        let list = layout::releases(size, self.list_lines()).list;
        let Some(line) = layout::line_at(list, x, y) else {
            return false;
        };
        let shown = layout::table_rows(list);
        let line = self.list_offset(shown) + line;
        match self.row_at_line(line) {
            Some(r) => {
                self.sel = r;
                true
            }
            None => false,
        }
    }

    /// The rows in display order (cached).
    pub fn ordered(&self) -> &[(Section, usize)] {
        &self.order.rows
    }

    /// The selected release.
    pub fn selected(&self) -> Option<&Release> {
        self.ordered().get(self.sel).map(|&(_, i)| &self.list[i])
    }

    /// What a group shows above its releases: its live state, and how many lines (drift,
    /// a stuck update's message) come between its header and its releases.
    pub fn group_extra(&self, g: &Group) -> (Option<&ServiceLive>, usize) {
        let s = self.live(&g.service);
        let extra = s.map_or(0, |s| {
            usize::from(s.drift.is_some()) + usize::from(update_message(s).is_some())
        });
        (s, extra)
    }

    /// The lines the list has in all: every group's header, extras and releases.
    /// The first list line shown in `shown` lines so that the selected row is visible.
    pub fn list_offset(&self, shown: usize) -> usize {
        let sel = self.sel;
        // The selected row's line among all lines (groups' headers and extras included).
        let mut line = 0;
        let mut selected_line = 0;
        for g in &self.order.groups {
            let (_, extra) = self.group_extra(g);
            if g.rows.contains(&sel) {
                selected_line = line + 1 + extra + (sel - g.rows.start);
            }
            line += 1 + extra + g.rows.len();
        }
        crate::tui::layout::scroll_offset(selected_line, shown)
    }

    /// The row at list line `line` (a service's header or notes: its first release).
    pub fn row_at_line(&self, line: usize) -> Option<usize> {
        let mut at = 0;
        for g in &self.order.groups {
            let head = 1 + self.group_extra(g).1;
            if line < at + head {
                return (!g.rows.is_empty()).then_some(g.rows.start);
            }
            if line < at + head + g.rows.len() {
                return Some(g.rows.start + line - at - head);
            }
            at += head + g.rows.len();
        }
        None
    }

    pub fn list_lines(&self) -> usize {
        self.order
            .groups
            .iter()
            .map(|g| 1 + self.group_extra(g).1 + g.rows.len())
            .sum::<usize>()
            .max(1)
    }

    /// The engine's live state of a service.
    pub fn live(&self, service: &str) -> Option<&ServiceLive> {
        self.services.iter().find(|s| s.service == service)
    }

    fn current(&self, service: &str) -> Option<&Release> {
        self.list
            .iter()
            .filter(|r| r.service_name == service && r.status == Status::Deployed)
            .max_by_key(|r| (r.completed_at, r.id))
    }

    /// What the engine runs for `service`, for the dialogs: its image, or why it is not known.
    /// The second value says whether it is trouble (no answer, nothing running).
    pub fn engine_runs(&self, service: &str) -> (String, Tone) {
        match self.live(service) {
            Some(s) => match &s.error {
                Some(e) => (
                    format!("unknown: {}", crate::sanitize::clean_max(e, 200)),
                    Tone::Bad,
                ),
                None if s.image.is_empty() => ("nothing (no image in its spec)".into(), Tone::Bad),
                None => (
                    format!(
                        "{}  {} {}/{} {}",
                        crate::sanitize::clean_max(&s.image, 200),
                        s.status_word(),
                        s.running,
                        s.desired,
                        if s.healthy() { "✔" } else { "✖" }
                    ),
                    if s.healthy() { Tone::Ok } else { Tone::Bad },
                ),
            },
            None if self.engine_watch => ("unknown: reading the engine…".into(), Tone::Dim),
            // The command deployer has no engine to ask: the ledger's word, said as such.
            None => (
                match self.current(service) {
                    Some(r) => format!("{} (the ledger's; no live state)", release_image(r)),
                    None => "(none; no live state)".into(),
                },
                Tone::Dim,
            ),
        }
    }

    /// A new release list from the ledger watcher (or the server).
    pub fn apply_list(
        &mut self,
        list: Vec<Release>,
        recall: &mut Option<i64>,
        ctx: &mut Ctx,
        cmds: &mut Vec<Cmd>,
    ) {
        let keep = self.selected().map(|r| r.id);
        let known: HashSet<i64> = self.list.iter().map(|r| r.id).collect();
        let first_load = self.list.is_empty();
        self.close_stale_dialog(&list, ctx);
        self.list = list;
        self.error = None;
        if !first_load {
            let fresh: Vec<String> = self
                .list
                .iter()
                .filter(|r| !known.contains(&r.id))
                .map(|r| {
                    format!(
                        "new release: {} {} ({})",
                        r.service_name, r.release_tag, r.status
                    )
                })
                .collect();
            for text in fresh {
                ctx.toast(Level::Info, text);
            }
        }
        self.reorder_keeping(keep, ctx.filters.get(&Tab::Releases).map(String::as_str));
        if first_load && let Some(id) = recall.take() {
            self.select_id(id, ctx);
        }
        // The selected release may have moved on: refresh its details (after the load in
        // flight, which may have read the ledger before this change).
        if let Some(id) = self.selected_of(ctx).map(|r| r.id) {
            if ctx.requests.in_flight_for(Req::Release, id) {
                ctx.requests.again(Req::Release);
            } else {
                self.load_selected(ctx, cmds, false);
            }
        }
    }

    /// A confirm dialog whose release changed meanwhile (someone else approved, rejected or rolled
    /// it back) closes with what happened, instead of acting on a stale view.
    fn close_stale_dialog(&mut self, list: &[Release], ctx: &mut Ctx) {
        let id = match &*ctx.overlay {
            Some(
                Overlay::Approve { id, .. }
                | Overlay::Reject { id, .. }
                | Overlay::RollbackPick { id, .. }
                | Overlay::RollbackConfirm { id, .. }
                | Overlay::Deploy { id, .. }
                | Overlay::CancelDeploy { id, .. },
            ) => *id,
            _ => return,
        };
        let before = self.list.iter().find(|r| r.id == id).map(|r| r.status);
        let now = list.iter().find(|r| r.id == id);
        if let (Some(before), Some(r)) = (before, now)
            && before != r.status
        {
            *ctx.overlay = None;
            ctx.toast(
                Level::Error,
                format!(
                    "release {id} ({} {}) changed meanwhile: now {}; nothing was done",
                    r.service_name, r.release_tag, r.status
                ),
            );
        }
    }

    fn selected_of(&self, ctx: &Ctx) -> Option<&Release> {
        if ctx.tab == Tab::Releases || matches!(*ctx.overlay, Some(Overlay::ReleaseInfo { .. })) {
            self.selected()
        } else {
            None
        }
    }

    /// Asks for the selected release's details, unless a load of them is in flight already (a
    /// reload each second of a deploy would otherwise pile up behind a slow ledger).
    fn load_selected(&self, ctx: &mut Ctx, cmds: &mut Vec<Cmd>, moved_only: bool) {
        let Some(r) = self.selected() else { return };
        if ctx.requests.in_flight_for(Req::Release, r.id)
            || (moved_only && self.detail.as_ref().is_some_and(|d| d.id == r.id))
        {
            return;
        }
        let (id, service, tag) = (r.id, r.service_name.clone(), r.release_tag.clone());
        cmds.retain(|c| !matches!(c, Cmd::LoadRelease { .. }));
        let generation = ctx.requests.start_for(Req::Release, Some(id));
        cmds.push(Cmd::LoadRelease {
            id,
            service,
            tag,
            generation,
        });
    }

    /// Asks for the selected release's details when the selection moved to another one.
    pub fn follow_selection(&self, ctx: &mut Ctx, cmds: &mut Vec<Cmd>) {
        self.load_selected(ctx, cmds, true);
    }

    /// The group holding display row `sel`.
    fn group_at(&self, sel: usize) -> Option<usize> {
        self.order.groups.iter().position(|g| g.rows.contains(&sel))
    }

    /// `]` / `[`: the first release of the next service, or of this one (then the previous one).
    fn jump_service(&mut self, forward: bool) {
        let groups = &self.order.groups;
        let Some(g) = self.group_at(self.sel) else {
            return;
        };
        let target = if forward {
            groups[g + 1..].iter().find(|g| !g.rows.is_empty())
        } else if self.sel > groups[g].rows.start {
            Some(&groups[g])
        } else {
            groups[..g].iter().rev().find(|g| !g.rows.is_empty())
        };
        if let Some(t) = target {
            self.sel = t.rows.start;
        }
    }

    /// What `r` can be rolled back to: its loaded details' targets, or while they load
    /// (`:rollback ID` right after selecting it) the ledger's deployed tags of the service,
    /// which the list already has. The picker and the `:rollback` completion both use it.
    pub fn rollback_targets(&self, r: &Release) -> Vec<crate::release::targets::RollbackTarget> {
        match &self.detail {
            Some(d) if d.id == r.id => d.targets.clone(),
            _ => self.ledger_targets(r),
        }
    }

    /// The other tags of `r`'s service that releases deployed, newest first.
    fn ledger_targets(&self, r: &Release) -> Vec<crate::release::targets::RollbackTarget> {
        let mut seen = HashSet::new();
        let mut out: Vec<(DateTime<Utc>, String)> = self
            .list
            .iter()
            .filter(|o| {
                o.service_name == r.service_name
                    && o.release_tag != r.release_tag
                    && matches!(o.status, Status::Deployed | Status::RollbackDone)
            })
            .map(|o| {
                (
                    o.completed_at.unwrap_or(o.created_at),
                    o.release_tag.clone(),
                )
            })
            .collect();
        out.sort_by_key(|o| std::cmp::Reverse(o.0));
        out.into_iter()
            .filter(|(_, t)| seen.insert(t.clone()))
            .map(|(at, tag)| crate::release::targets::RollbackTarget {
                tag,
                origin: crate::release::targets::TargetOrigin::Ledger,
                last_ran: Some(at),
                running: false,
            })
            .collect()
    }

    /// Selects release `id` (clearing a filter that hides it); false when it is not listed.
    pub fn select_id(&mut self, id: i64, ctx: &mut Ctx) -> bool {
        let find = |rs: &ReleasesState| {
            rs.order
                .rows
                .iter()
                .position(|&(_, i)| rs.list.get(i).is_some_and(|r| r.id == id))
        };
        let row = find(self).or_else(|| {
            ctx.filters.remove(&Tab::Releases)?;
            self.reorder(None);
            find(self)
        });
        match row {
            Some(row) => {
                self.sel = row;
                true
            }
            None => false,
        }
    }

    /// The services the list shows, in its order (for messages).
    pub fn service_names(&self) -> Vec<String> {
        self.order
            .groups
            .iter()
            .map(|g| g.service.clone())
            .collect()
    }

    /// Selects the first release of `service` (its release name or its Swarm name).
    pub fn select_service(&mut self, service: &str) -> bool {
        let name = self
            .live_by_any_name(service)
            .unwrap_or(service)
            .to_string();
        let row = self
            .order
            .groups
            .iter()
            .find(|g| g.service == name && !g.rows.is_empty())
            .map(|g| g.rows.start);
        match row {
            Some(row) => {
                self.sel = row;
                true
            }
            None => false,
        }
    }

    fn live_by_any_name(&self, name: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|s| s.service == name || s.swarm_service == name)
            .map(|s| s.service.as_str())
    }

    /// `:rollback ID TAG`: straight to the typed confirmation of rolling the selected release
    /// back to `to` (the server still checks that the tag ran, as for `--to`).
    pub fn rollback_to(&self, to: &str, ctx: &mut Ctx) {
        let Some(r) = self.selected().cloned() else {
            return;
        };
        if let Some(why) = self.rollback_to_refusal(&r, to) {
            ctx.toast(Level::Error, why);
            return;
        }
        *ctx.overlay = Some(self.rollback_confirm(r.id, r.service_name.clone(), to.to_string()));
    }

    /// The typed confirmation of a rollback; the engine's name of the service (`prod_api`)
    /// confirms too.
    fn rollback_confirm(&self, id: i64, service: String, to: String) -> Overlay {
        let swarm = self
            .live(&service)
            .map(|s| s.swarm_service.clone())
            .filter(|n| !n.is_empty() && *n != service);
        Overlay::RollbackConfirm {
            id,
            service,
            swarm,
            to,
            input: Input::default(),
            wrong: false,
        }
    }

    /// `J` / `K`: scrolls the details pane of the selected release.
    fn scroll_details(&mut self, delta: i64, ctx: &Ctx) {
        let Some(r) = self.selected() else {
            return;
        };
        let area = crate::tui::layout::releases(ctx.size, self.list_lines()).detail;
        let lines = self
            .detail_lines(r, area.width.saturating_sub(2) as usize, ctx.local)
            .len();
        let max = lines.saturating_sub(area.height.saturating_sub(2) as usize);
        let id = r.id;
        let now = if self.scroll.0 == id {
            self.scroll.1
        } else {
            0
        };
        let to = (now as i64).saturating_add(delta).clamp(0, max as i64) as usize;
        self.scroll = (id, to);
    }

    /// The details pane's first line for the selected release.
    pub fn detail_scroll(&self, id: i64) -> usize {
        if self.scroll.0 == id {
            self.scroll.1
        } else {
            0
        }
    }

    /// `a`, `x`, `r`, `d`, `c`, `Enter`, `[`, `]`, `J`, `K` on the Releases tab.
    /// Why `action` cannot start on `r` (its status, or nothing to roll back to); the key
    /// and the `:` command line both ask here first.
    pub fn refusal(&self, action: Action, r: &Release) -> Option<String> {
        match action {
            Action::Approve | Action::Reject if r.status != Status::ManualTesting => Some(format!(
                "release {} is {}; only releases awaiting approval (manual_testing) can be approved or rejected",
                r.id, r.status
            )),
            Action::Rollback => not_rollbackable(r).or_else(|| {
                self.rollback_targets(r).is_empty().then(|| {
                    format!(
                        "no earlier deployed tag of {} to roll back to",
                        r.service_name
                    )
                })
            }),
            Action::Deploy if r.status != Status::ManualTestPassed => Some(format!(
                "release {} is {}; only approved releases (manual_test_passed) can be deployed",
                r.id, r.status
            )),
            Action::CancelDeploy
                if !matches!(r.status, Status::ManualTestPassed | Status::Deploying) =>
            {
                Some(format!(
                    "release {} is {}; only a queued (manual_test_passed) or deploying release can be cancelled",
                    r.id, r.status
                ))
            }
            _ => None,
        }
    }

    /// Why `:rollback ID TAG` cannot roll the selected release back to `to`: the release's
    /// status, a malformed tag, or a tag that is not among its rollback targets (those the
    /// `r` picker lists; the engine's own once the details have loaded).
    pub fn rollback_to_refusal(&self, r: &Release, to: &str) -> Option<String> {
        if let Some(why) = not_rollbackable(r) {
            return Some(why);
        }
        if !crate::release::valid_tag(to) {
            return Some(format!("`{to}` is not a valid tag"));
        }
        let targets = self.rollback_targets(r);
        if targets.iter().any(|t| t.tag == to) {
            return None;
        }
        let known: Vec<&str> = targets.iter().take(6).map(|t| t.tag.as_str()).collect();
        Some(if known.is_empty() {
            format!("no earlier tag of {} to roll back to", r.service_name)
        } else {
            format!(
                "`{to}` never ran on {}: Tab offers {}",
                r.service_name,
                known.join(", ")
            )
        })
    }

    pub fn action(&mut self, action: Action, ctx: &mut Ctx) {
        match action {
            Action::NextService => return self.jump_service(true),
            Action::PrevService => return self.jump_service(false),
            Action::ScrollDown => return self.scroll_details(3, ctx),
            Action::ScrollUp => return self.scroll_details(-3, ctx),
            _ => {}
        }
        let Some(r) = self.selected().cloned() else {
            ctx.toast(Level::Info, "no release selected");
            return;
        };
        if let Some(why) = self.refusal(action, &r) {
            ctx.toast(Level::Error, why);
            return;
        }
        match action {
            Action::Approve => {
                *ctx.overlay = Some(Overlay::Approve {
                    id: r.id,
                    service: r.service_name.clone(),
                    to: release_image(&r),
                });
            }
            Action::Reject => {
                *ctx.overlay = Some(Overlay::Reject {
                    empty: false,
                    id: r.id,
                    input: Input::default(),
                })
            }
            Action::Rollback => {
                *ctx.overlay = Some(Overlay::RollbackPick {
                    id: r.id,
                    service: r.service_name.clone(),
                    targets: self.rollback_targets(&r),
                    sel: 0,
                });
            }
            Action::Deploy => {
                *ctx.overlay = Some(Overlay::Deploy {
                    id: r.id,
                    service: r.service_name.clone(),
                    to: release_image(&r),
                });
            }
            Action::CancelDeploy => {
                *ctx.overlay = Some(Overlay::CancelDeploy {
                    id: r.id,
                    service: r.service_name.clone(),
                    tag: r.release_tag.clone(),
                    deploying: r.status == Status::Deploying,
                });
            }
            Action::Open => *ctx.overlay = Some(Overlay::ReleaseInfo { id: r.id, top: 0 }),
            _ => {}
        }
    }

    /// Keys inside the release dialogs. Cancel is the default everywhere: Esc, n, or anything
    /// that is not the confirming key.
    pub fn overlay_key(
        &self,
        o: Overlay,
        k: KeyEvent,
        ctx: &mut Ctx,
        cmds: &mut Vec<Cmd>,
    ) -> Option<Overlay> {
        let release = |id: i64| self.list.iter().find(|r| r.id == id).cloned();
        let yes = k.code == KeyCode::Char('y');
        let no = matches!(k.code, KeyCode::Esc | KeyCode::Char('n') | KeyCode::Enter);
        match o {
            Overlay::Approve { id, service, to } => {
                if yes {
                    if let Some(r) = release(id) {
                        cmds.push(Cmd::Approve {
                            id,
                            service: r.service_name,
                            tag: r.release_tag,
                        });
                        ctx.toast(
                            Level::Info,
                            format!("approving release {id}: deploying {service} {to}…"),
                        );
                    }
                    return None;
                }
                (!no).then_some(Overlay::Approve { id, service, to })
            }
            Overlay::Deploy { id, service, to } => {
                if yes {
                    if let Some(r) = release(id) {
                        cmds.push(Cmd::Deploy {
                            id,
                            service: r.service_name,
                            tag: r.release_tag,
                        });
                        ctx.toast(
                            Level::Info,
                            format!("release {id}: deploying {service} {to}…"),
                        );
                    }
                    return None;
                }
                (!no).then_some(Overlay::Deploy { id, service, to })
            }
            Overlay::CancelDeploy {
                id,
                service,
                tag,
                deploying,
            } => {
                if yes {
                    cmds.push(Cmd::CancelDeploy { id });
                    ctx.toast(
                        Level::Info,
                        format!("release {id}: cancelling the deploy of {service} {tag}…"),
                    );
                    return None;
                }
                (!no).then_some(Overlay::CancelDeploy {
                    id,
                    service,
                    tag,
                    deploying,
                })
            }
            Overlay::Reject { id, mut input, .. } => match input::key(&mut input, k) {
                Typed::Cancel => None,
                Typed::Submit(reason) if !reason.is_empty() => {
                    cmds.push(Cmd::Reject { id, reason });
                    None
                }
                // Enter on nothing says what is missing instead of doing nothing.
                Typed::Submit(_) => Some(Overlay::Reject {
                    id,
                    input,
                    empty: true,
                }),
                Typed::Edited => Some(Overlay::Reject {
                    id,
                    input,
                    empty: false,
                }),
            },
            Overlay::RollbackPick {
                id,
                service,
                targets,
                sel,
            } => {
                let page = crate::tui::layout::frame(ctx.size)
                    .1
                    .height
                    .saturating_sub(6) as usize;
                match picker::key(sel, targets.len(), page, k) {
                    Picked::Cancel => None,
                    Picked::Chosen(i) => {
                        let to = targets.get(i).map(|t| t.tag.clone()).unwrap_or_default();
                        Some(self.rollback_confirm(id, service, to))
                    }
                    Picked::At(sel) => Some(Overlay::RollbackPick {
                        id,
                        service,
                        targets,
                        sel,
                    }),
                }
            }
            Overlay::RollbackConfirm {
                id,
                service,
                swarm,
                to,
                mut input,
                wrong: _,
            } => match input::key(&mut input, k) {
                Typed::Cancel => None,
                Typed::Submit(typed) if confirms(&typed, &service, swarm.as_deref()) => {
                    if let Some(r) = release(id) {
                        cmds.push(Cmd::Rollback {
                            id,
                            to: to.clone(),
                            service: r.service_name,
                            tag: r.release_tag,
                        });
                        ctx.toast(Level::Info, format!("rolling {service} back to {to}…"));
                    }
                    None
                }
                Typed::Submit(_) => Some(Overlay::RollbackConfirm {
                    id,
                    service,
                    swarm,
                    to,
                    input,
                    wrong: true,
                }),
                Typed::Edited => Some(Overlay::RollbackConfirm {
                    id,
                    service,
                    swarm,
                    to,
                    input,
                    wrong: false,
                }),
            },
            Overlay::ReleaseInfo { id, top } => {
                let area = crate::tui::layout::frame(ctx.size).1;
                let width = area.width.saturating_sub(2) as usize;
                let page = area.height.saturating_sub(2) as usize;
                let max = self
                    .info_lines(id, width, ctx.local)
                    .len()
                    .saturating_sub(page);
                let top = match k.code {
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter => return None,
                    // The help, and back here when it closes.
                    KeyCode::Char('?') => {
                        return Some(Overlay::Help {
                            scope: crate::tui::tab::Scope::Tab(Tab::Releases),
                            top: 0,
                            back: Some(Box::new(Overlay::ReleaseInfo { id, top })),
                        });
                    }
                    KeyCode::Char('j') | KeyCode::Down => top + 1,
                    KeyCode::Char('k') | KeyCode::Up => top.saturating_sub(1),
                    KeyCode::PageDown | KeyCode::Char(' ') => top + page.max(1),
                    KeyCode::PageUp => top.saturating_sub(page.max(1)),
                    KeyCode::Char('g') | KeyCode::Home => 0,
                    KeyCode::Char('G') | KeyCode::End => max,
                    _ => top,
                };
                Some(Overlay::ReleaseInfo {
                    id,
                    top: top.min(max),
                })
            }
            other => Some(other),
        }
    }

    /// True while the Releases tab shows a release that is deploying or rolling back.
    pub fn watching_deploy(&self, tab: Tab) -> bool {
        tab == Tab::Releases
            && self
                .selected()
                .is_some_and(|r| matches!(r.status, Status::Deploying | Status::Rollback))
    }

    /// Reloads the selected release's details (deploy log, audit) on each tick of a deploy,
    /// unless the last reload has not answered yet.
    pub fn refresh_selected(&self, ctx: &mut Ctx, cmds: &mut Vec<Cmd>) {
        self.load_selected(ctx, cmds, false);
    }

    /// A release's details arrived: load them again if the ledger changed meanwhile.
    pub fn detail_arrived(&self, ctx: &mut Ctx, cmds: &mut Vec<Cmd>) {
        if ctx.requests.take_again(Req::Release) {
            self.load_selected(ctx, cmds, false);
        }
    }

    /// What the details pane shows of a release, wrapped at `width`: what it deploys, what the
    /// engine runs, its failed task, and its whole audit trail newest first, every note in full
    /// (failure reasons, refusals, automatic rollbacks, changes made outside opsdeck).
    pub fn detail_lines(
        &self,
        r: &Release,
        width: usize,
        local: chrono::FixedOffset,
    ) -> Vec<TextLine> {
        let clean = |t: &str| crate::sanitize::clean_max(t, 4000);
        let mut out = Vec::new();
        let (sym, _) = status_look(r.status);
        push_wrapped(
            &mut out,
            Tone::Title,
            &format!(
                "{} {}  {sym} {}",
                clean(&r.service_name),
                clean(&r.release_tag),
                r.status
            ),
            width,
            2,
        );
        push_wrapped(
            &mut out,
            Tone::Plain,
            &format!("deploys  {}", clean(&release_image(r))),
            width,
            9,
        );
        let (engine, tone) = self.engine_runs(&r.service_name);
        push_wrapped(&mut out, tone, &format!("engine   {engine}"), width, 9);
        if let Some(t) = self
            .live(&r.service_name)
            .and_then(|s| s.failure_of(&r.release_tag))
        {
            push_wrapped(&mut out, Tone::Bad, &clean(&t.reason()), width, 2);
        }
        if let Some(w) = self.work_of(r.id).filter(|w| w.queued) {
            let verb = if w.rollback { "rollback" } else { "deploy" };
            push_wrapped(
                &mut out,
                Tone::Warn,
                &format!(
                    "queued: this {verb} waits behind {}; it starts when that one ends · c cancels it",
                    clean(
                        w.behind
                            .as_deref()
                            .unwrap_or("another deploy of this service")
                    )
                ),
                width,
                2,
            );
        }
        if let Some(to) = &r.rollback_to_tag {
            push_wrapped(
                &mut out,
                Tone::Plain,
                &format!("rollback → {}", clean(to)),
                width,
                2,
            );
        }
        let Some(d) = self.detail.as_ref().filter(|d| d.id == r.id) else {
            out.push(TextLine {
                tone: Tone::Dim,
                text: "loading the audit trail…".into(),
            });
            return out;
        };
        out.push(TextLine {
            tone: Tone::Title,
            text: "audit, newest first".into(),
        });
        for a in d.audit.iter().rev() {
            let kind = a.kind();
            let what = match kind {
                AuditKind::Transition => format!("{} → {}", a.from.as_deref().unwrap_or("-"), a.to),
                AuditKind::Refusal => "refused".into(),
                AuditKind::ExternalChange => "changed outside opsdeck".into(),
                AuditKind::AutomaticRollback => "automatic rollback".into(),
                AuditKind::NotDeployed => "not deployed".into(),
            };
            let mut who = clean(&a.actor);
            if let Some(s) = &a.sudo_user {
                who.push_str(&format!(" (sudo {})", clean(s)));
            }
            if let Some(s) = &a.ssh_client {
                who.push_str(&format!(" from {} (unverified)", clean(s)));
            }
            let tone = match kind {
                AuditKind::Refusal => Tone::Bad,
                AuditKind::ExternalChange
                | AuditKind::AutomaticRollback
                | AuditKind::NotDeployed => Tone::Warn,
                AuditKind::Transition if failed_status(&a.to) => Tone::Bad,
                AuditKind::Transition => Tone::Plain,
            };
            push_wrapped(
                &mut out,
                tone,
                &format!(
                    "{} {what} by {who}",
                    a.at.with_timezone(&local).format("%m-%d %H:%M")
                ),
                width,
                2,
            );
            // The note in full; the kinds that change no status start it with their name,
            // which the line above says already.
            let note = a.note.as_deref().unwrap_or_default();
            let note = note
                .strip_prefix(kind.as_str())
                .and_then(|n| n.strip_prefix(':'))
                .filter(|_| kind != AuditKind::Transition)
                .unwrap_or(note)
                .trim();
            if !note.is_empty() {
                let tone = if tone == Tone::Plain { Tone::Dim } else { tone };
                push_wrapped(&mut out, tone, &format!("  {}", clean(note)), width, 2);
            }
        }
        out
    }

    /// The whole details view (`Enter`): the release's CI fields, the details, and the deploy
    /// log, wrapped at `width`.
    pub fn info_lines(&self, id: i64, width: usize, local: chrono::FixedOffset) -> Vec<TextLine> {
        let clean = |t: &str| crate::sanitize::clean_max(t, 4000);
        let mut out = Vec::new();
        let Some(r) = self.list.iter().find(|r| r.id == id) else {
            out.push(TextLine {
                tone: Tone::Dim,
                text: format!("release {id} is not in the list"),
            });
            return out;
        };
        out.extend(self.detail_lines(r, width, local).into_iter().take(1));
        let opt = |v: &Option<String>| v.as_deref().map(clean).unwrap_or_else(|| "-".into());
        push_wrapped(
            &mut out,
            Tone::Plain,
            &format!(
                "initiated by {} · GitHub {} {} · ref {}",
                opt(&r.initiated_by),
                opt(&r.github_run_id),
                opt(&r.github_action_link),
                opt(&r.github_ref)
            ),
            width,
            2,
        );
        out.extend(self.detail_lines(r, width, local).into_iter().skip(1));
        out.push(TextLine {
            tone: Tone::Plain,
            text: String::new(),
        });
        out.push(TextLine {
            tone: Tone::Title,
            text: "deploy log".into(),
        });
        match self.detail.as_ref().filter(|d| d.id == id) {
            Some(d) if d.log.is_empty() => out.push(TextLine {
                tone: Tone::Dim,
                text: "  none: this release has not been deployed from here".into(),
            }),
            Some(d) => {
                for l in &d.log {
                    // The deploy log is a script's output: escapes and secrets stop here too.
                    push_wrapped(&mut out, Tone::Plain, &clean(l), width, 2);
                }
            }
            None => out.push(TextLine {
                tone: Tone::Dim,
                text: "  loading…".into(),
            }),
        }
        out
    }
}
