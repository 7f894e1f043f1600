//! The Releases tab's part of `update`: sections, selection, and the approve / reject /
//! roll back dialogs. The actions themselves run as `opsdeck release` processes (effects).

use crossterm::event::{KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::app::{App, Cmd, Level, Overlay, Tab};
use super::keymap::Action;
use crate::release::{Release, Status};

/// The sections of the Releases tab, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Releases that pass the filter, in section order (awaiting approval oldest first, the
/// rest newest first), as indexes into `app.releases`.
pub fn ordered(app: &App) -> Vec<(Section, usize)> {
    let f = app
        .filters
        .get(&Tab::Releases)
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    let mut rows: Vec<(Section, usize)> = app
        .releases
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            f.is_empty()
                || r.service_name.to_lowercase().contains(&f)
                || r.release_tag.to_lowercase().contains(&f)
                || r.status.as_str().contains(&f)
        })
        .map(|(i, r)| {
            // An older deployed release of a service that has shipped since is history.
            let superseded =
                r.status == Status::Deployed && current_id(app, &r.service_name) != Some(r.id);
            (
                if superseded {
                    Section::History
                } else {
                    section_of(r.status)
                },
                i,
            )
        })
        .collect();
    let order = |s: Section| s as u8;
    rows.sort_by(|a, b| {
        let (ra, rb) = (&app.releases[a.1], &app.releases[b.1]);
        order(a.0).cmp(&order(b.0)).then_with(|| {
            if a.0 == Section::Awaiting {
                ra.id.cmp(&rb.id)
            } else {
                rb.id.cmp(&ra.id)
            }
        })
    });
    rows
}

/// The selected release.
pub fn selected(app: &App) -> Option<&Release> {
    ordered(app)
        .get(app.release_sel)
        .map(|&(_, i)| &app.releases[i])
}

fn current<'a>(app: &'a App, service: &str) -> Option<&'a Release> {
    app.releases
        .iter()
        .filter(|r| r.service_name == service && r.status == Status::Deployed)
        .max_by_key(|r| (r.completed_at, r.id))
}

fn current_id(app: &App, service: &str) -> Option<i64> {
    current(app, service).map(|r| r.id)
}

/// The full image a release deploys: `<repository>:<tag>`.
pub fn release_image(r: &Release) -> String {
    format!(
        "{}:{}",
        r.image.as_deref().unwrap_or(&r.service_name),
        r.release_tag
    )
}

/// The tag a service runs now, as the ledger knows it.
pub fn current_tag(app: &App, service: &str) -> Option<String> {
    current(app, service).map(|r| r.release_tag.clone())
}

/// A new release list from the ledger watcher.
pub fn apply_list(app: &mut App, list: Vec<Release>, cmds: &mut Vec<Cmd>) {
    let selected = selected(app).map(|r| r.id);
    let fresh: Vec<i64> = list
        .iter()
        .filter(|r| !app.releases.iter().any(|o| o.id == r.id))
        .map(|r| r.id)
        .collect();
    let first_load = app.releases.is_empty();
    close_stale_dialog(app, &list);
    app.releases = list;
    app.releases_error = None;
    if !first_load {
        for id in fresh {
            if let Some(r) = app.releases.iter().find(|r| r.id == id) {
                let text = format!(
                    "new release: {} {} ({})",
                    r.service_name, r.release_tag, r.status
                );
                app.toast(Level::Info, text);
            }
        }
    }
    let rows = ordered(app);
    app.release_sel = selected
        .and_then(|id| rows.iter().position(|&(_, i)| app.releases[i].id == id))
        .unwrap_or(app.release_sel)
        .min(rows.len().saturating_sub(1));
    // The selected release may have moved on: refresh its details.
    if let Some(r) = selected_of(app) {
        cmds.push(load(r));
    }
}

/// A confirm dialog whose release changed meanwhile (someone else approved, rejected or rolled
/// it back) closes with what happened, instead of acting on a stale view.
fn close_stale_dialog(app: &mut App, list: &[Release]) {
    let id = match &app.overlay {
        Some(
            Overlay::Approve { id, .. }
            | Overlay::Reject { id, .. }
            | Overlay::RollbackPick { id, .. }
            | Overlay::RollbackConfirm { id, .. },
        ) => *id,
        _ => return,
    };
    let before = app.releases.iter().find(|r| r.id == id).map(|r| r.status);
    let now = list.iter().find(|r| r.id == id);
    if let (Some(before), Some(r)) = (before, now)
        && before != r.status
    {
        app.overlay = None;
        app.toast(
            Level::Error,
            format!(
                "release {id} ({} {}) changed meanwhile: now {}; nothing was done",
                r.service_name, r.release_tag, r.status
            ),
        );
    }
}

fn selected_of(app: &App) -> Option<&Release> {
    if app.tab == Tab::Releases || matches!(app.overlay, Some(Overlay::ReleaseInfo(_))) {
        selected(app)
    } else {
        None
    }
}

fn load(r: &Release) -> Cmd {
    Cmd::LoadRelease {
        id: r.id,
        service: r.service_name.clone(),
        tag: r.release_tag.clone(),
    }
}

/// Asks for the selected release's details when the selection moved to another one.
pub fn follow_selection(app: &App, cmds: &mut Vec<Cmd>) {
    if let Some(r) = selected(app)
        && app.release_detail.as_ref().is_none_or(|d| d.id != r.id)
        && !cmds.iter().any(|c| matches!(c, Cmd::LoadRelease { .. }))
    {
        cmds.push(load(r));
    }
}

/// `a`, `x`, `r`, `Enter` on the Releases tab.
pub fn action(app: &mut App, action: Action) {
    let Some(r) = selected(app).cloned() else {
        app.toast(Level::Info, "no release selected");
        return;
    };
    match action {
        Action::Approve | Action::Reject if r.status != Status::ManualTesting => {
            app.toast(Level::Error, format!("release {} is {}; only releases awaiting approval (manual_testing) can be approved or rejected", r.id, r.status));
        }
        Action::Approve => {
            // What the engine runs, when the details know it; else what the ledger deployed.
            let running = app
                .release_detail
                .as_ref()
                .filter(|d| d.id == r.id)
                .and_then(|d| d.state.as_ref())
                .map(|s| s.image.clone())
                .filter(|i| !i.is_empty());
            let from = running.unwrap_or_else(|| {
                current(app, &r.service_name)
                    .map(release_image)
                    .unwrap_or_else(|| "(none)".into())
            });
            app.overlay = Some(Overlay::Approve {
                id: r.id,
                service: r.service_name.clone(),
                from,
                to: release_image(&r),
            });
        }
        Action::Reject => {
            app.overlay = Some(Overlay::Reject {
                id: r.id,
                input: Input::default(),
            })
        }
        Action::Rollback if !matches!(r.status, Status::Deployed | Status::ProductionFailed) => {
            app.toast(Level::Error, format!("release {} is {}; only deployed or production_failed releases can be rolled back", r.id, r.status));
        }
        Action::Rollback => {
            let targets = match &app.release_detail {
                Some(d) if d.id == r.id => d.targets.clone(),
                _ => vec![],
            };
            if targets.is_empty() {
                app.toast(
                    Level::Error,
                    format!(
                        "no earlier deployed tag of {} to roll back to",
                        r.service_name
                    ),
                );
            } else {
                app.overlay = Some(Overlay::RollbackPick {
                    id: r.id,
                    service: r.service_name.clone(),
                    targets,
                    sel: 0,
                });
            }
        }
        Action::Open => app.overlay = Some(Overlay::ReleaseInfo(r.id)),
        _ => {}
    }
}

/// Keys inside the release dialogs. Cancel is the default everywhere: Esc, n, or anything
/// that is not the confirming key.
pub fn overlay_key(app: &mut App, o: Overlay, k: KeyEvent, cmds: &mut Vec<Cmd>) -> Option<Overlay> {
    let release = |id: i64| app.releases.iter().find(|r| r.id == id).cloned();
    match o {
        Overlay::Approve {
            id,
            service,
            from,
            to,
        } => {
            if k.code == KeyCode::Char('y') {
                if let Some(r) = release(id) {
                    cmds.push(Cmd::Approve {
                        id,
                        service: r.service_name,
                        tag: r.release_tag,
                    });
                    app.toast(
                        Level::Info,
                        format!("approving release {id}: deploying {service} {to}…"),
                    );
                }
                return None;
            }
            if matches!(k.code, KeyCode::Esc | KeyCode::Char('n') | KeyCode::Enter) {
                return None;
            }
            Some(Overlay::Approve {
                id,
                service,
                from,
                to,
            })
        }
        Overlay::Reject { id, mut input } => match k.code {
            KeyCode::Esc => None,
            KeyCode::Enter if !input.value().trim().is_empty() => {
                cmds.push(Cmd::Reject {
                    id,
                    reason: input.value().trim().to_string(),
                });
                None
            }
            _ => {
                input.handle_event(&crossterm::event::Event::Key(k));
                Some(Overlay::Reject { id, input })
            }
        },
        Overlay::RollbackPick {
            id,
            service,
            targets,
            mut sel,
        } => match k.code {
            KeyCode::Esc | KeyCode::Char('q') => None,
            KeyCode::Char('j') | KeyCode::Down => {
                sel = (sel + 1).min(targets.len().saturating_sub(1));
                Some(Overlay::RollbackPick {
                    id,
                    service,
                    targets,
                    sel,
                })
            }
            KeyCode::Char('k') | KeyCode::Up => {
                sel = sel.saturating_sub(1);
                Some(Overlay::RollbackPick {
                    id,
                    service,
                    targets,
                    sel,
                })
            }
            KeyCode::Enter => {
                let to = targets.get(sel).cloned().unwrap_or_default();
                let swarm = app
                    .release_detail
                    .as_ref()
                    .filter(|d| d.id == id)
                    .and_then(|d| d.state.as_ref())
                    .map(|s| s.name.clone())
                    .filter(|n| !n.is_empty() && *n != service);
                Some(Overlay::RollbackConfirm {
                    id,
                    service,
                    swarm,
                    to,
                    input: Input::default(),
                    wrong: false,
                })
            }
            _ => Some(Overlay::RollbackPick {
                id,
                service,
                targets,
                sel,
            }),
        },
        Overlay::RollbackConfirm {
            id,
            service,
            swarm,
            to,
            mut input,
            wrong: _,
        } => match k.code {
            KeyCode::Esc => None,
            KeyCode::Enter if confirms(input.value(), &service, swarm.as_deref()) => {
                if let Some(r) = release(id) {
                    cmds.push(Cmd::Rollback {
                        id,
                        to: to.clone(),
                        service: r.service_name,
                        tag: r.release_tag,
                    });
                    app.toast(Level::Info, format!("rolling {service} back to {to}…"));
                }
                None
            }
            KeyCode::Enter => Some(Overlay::RollbackConfirm {
                id,
                service,
                swarm,
                to,
                input,
                wrong: true,
            }),
            _ => {
                input.handle_event(&crossterm::event::Event::Key(k));
                Some(Overlay::RollbackConfirm {
                    id,
                    service,
                    swarm,
                    to,
                    input,
                    wrong: false,
                })
            }
        },
        Overlay::ReleaseInfo(id) => match k.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter => None,
            _ => Some(Overlay::ReleaseInfo(id)),
        },
        other => Some(other),
    }
}

/// True while the Releases tab shows a release that is deploying or rolling back.
pub fn watching_deploy(app: &App) -> bool {
    app.tab == Tab::Releases
        && selected(app).is_some_and(|r| matches!(r.status, Status::Deploying | Status::Rollback))
}

/// Reloads the selected release's details (deploy log, live state) on each tick of a deploy.
pub fn refresh_selected(app: &App, cmds: &mut Vec<Cmd>) {
    if let Some(r) = selected(app) {
        cmds.push(load(r));
    }
}

/// Whether the typed text confirms a rollback: the release's service name or its Swarm
/// service's name.
pub fn confirms(typed: &str, service: &str, swarm: Option<&str>) -> bool {
    let typed = typed.trim();
    typed == service || swarm == Some(typed)
}
