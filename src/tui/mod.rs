//! The terminal dashboard: one front end over the services. Knows nothing of HTTP or SQL; it
//! sends commands through handles and draws what the services report.

pub mod app;
pub mod command;
pub mod effects;
pub mod event_loop;
mod fixture;
pub mod keymap;
pub mod layout;
pub mod memory;
pub mod msg;
pub mod popups;
pub mod request;
#[cfg(test)]
mod svg;
pub mod tab;
pub mod tabs;
mod terminal;
#[cfg(test)]
mod tests;
pub mod theme;
pub mod toast;
pub mod view;

use std::path::Path;

use anyhow::Context;
use chrono::Utc;

use crate::config::Config;
use crate::services::{ServiceSet, Services};
use app::{App, JobRow};
use effects::{Effects, Suspend};

/// Builds the initial state from a configuration.
pub fn initial_app(cfg: &Config, paused: &std::collections::BTreeSet<String>) -> App {
    let jobs = crate::services::jobs(cfg)
        .into_iter()
        .map(|j| JobRow {
            paused: paused.contains(&j.name),
            name: j.name,
            kind: j.kind,
            schedule: j.schedule,
            runs: vec![],
        })
        .collect();
    let groups = cfg.testops.groups.iter().map(|g| g.name.clone()).collect();
    let mut app = App::new(groups, jobs, cfg.export.dir.clone(), Utc::now());
    app.color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    app.local = *chrono::Local::now().offset();
    app.logs.max_lines = cfg.logs.max_lines.unwrap_or(tabs::logs::MAX_LINES).max(100);
    app.ui_notify = cfg.ui.notify;
    app.readonly = cfg.ui.readonly;
    app.palette = theme::named(&cfg.ui.theme).unwrap_or_default();
    app.releases.service_names = cfg
        .releases
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    app.releases.engine_watch = cfg.releases.deployer == crate::config::DeployerKind::Swarm
        && !cfg.releases.services.is_empty();
    // The configured services show (with their live state) before any release does.
    app::reorder_releases(&mut app);
    app
}

/// Runs the dashboard until the user quits or a signal arrives; then cancels exports
/// (no partial file is kept), restores the terminal and flushes the log.
/// The log sources the Logs tab always has, then the configured ones, then `extra`.
pub fn log_sources(cfg: &Config, data_dir: &Path, extra: &[String]) -> Vec<crate::logs::LogSource> {
    use crate::logs::{LogSource, SourceKind};
    let mut v = vec![
        LogSource::file(
            "opsdeck",
            data_dir.join("logs/opsdeck.*.log").display().to_string(),
        ),
        LogSource::file(
            "deploys",
            data_dir.join("deployments/*/*.log").display().to_string(),
        ),
    ];
    for s in cfg.logs.sources.iter().flatten() {
        match (&s.path, &s.service) {
            (Some(p), _) => v.push(LogSource::file(s.name.clone(), p.clone())),
            (None, Some(svc)) => v.push(LogSource {
                name: s.name.clone(),
                kind: SourceKind::Service(svc.clone()),
            }),
            (None, None) => tracing::warn!("log source {} has neither path nor service", s.name),
        }
    }
    let paths: Vec<&String> = extra
        .iter()
        .filter(|e| !v.iter().any(|s| &s.name == *e))
        .collect();
    let mut taken: Vec<String> = v.iter().map(|s| s.name.clone()).collect();
    v.extend(path_sources(paths, &mut taken));
    v
}

/// Sources for paths named on the command line, each called by its file name (`app.log`),
/// or by its whole path where that name is taken (two `app.log`s, a configured source).
pub fn path_sources<'a>(
    paths: impl IntoIterator<Item = &'a String>,
    taken: &mut Vec<String>,
) -> Vec<crate::logs::LogSource> {
    let paths: Vec<&String> = paths.into_iter().collect();
    let short = |p: &str| {
        Path::new(p)
            .file_name()
            .map_or(p.to_string(), |n| n.to_string_lossy().into_owned())
    };
    paths
        .iter()
        .map(|p| {
            let name = short(p);
            let shared = paths.iter().filter(|q| short(q) == name).count() > 1;
            let name = if shared || taken.contains(&name) {
                p.to_string()
            } else {
                name
            };
            taken.push(name.clone());
            crate::logs::LogSource::file(name, p.to_string())
        })
        .collect()
}

/// Sends each new live state of the services as `Event::Services` (the first one too),
/// until `cancel` or the dashboard's channel closes.
pub fn forward_services(
    mut rx: tokio::sync::watch::Receiver<std::sync::Arc<Vec<crate::release::engine::ServiceLive>>>,
    tx: crate::events::EventTx,
    cancel: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = rx.borrow_and_update().clone();
            tokio::select! {
                sent = tx.send(crate::events::Event::Services(now)) => if sent.is_err() { return },
                () = cancel.cancelled() => return,
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = cancel.cancelled() => return,
            }
        }
    })
}

/// Passes the ledger watcher's events on, and asks the engine watch for a fresh read on
/// each change of the release list (drift is decided against the ledger), until `cancel`.
fn poke_on_ledger_change(
    mut rx: crate::events::EventRx,
    watch: crate::release::engine::ServicesWatch,
    tx: crate::events::EventTx,
    cancel: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => ev,
                    None => return,
                },
                () = cancel.cancelled() => return,
            };
            if matches!(ev, crate::events::Event::Releases(_)) {
                watch.poke();
            }
            tokio::select! {
                sent = tx.send(ev) => if sent.is_err() { return },
                () = cancel.cancelled() => return,
            }
        }
    })
}

pub async fn run(cfg: Config, data_dir: &Path, demo: bool) -> anyhow::Result<()> {
    run_on(cfg, data_dir, demo, &[], None).await
}

/// Like `run`, opening on the Logs tab with `logs` (source names or paths) selected when
/// any are given (`opsdeck logs ...`). With `server`, the dashboard is a client of it: it
/// starts no scheduler and opens no ledger, Docker connection or token.
pub async fn run_on(
    cfg: Config,
    data_dir: &Path,
    demo: bool,
    logs: &[String],
    server: Option<crate::client::Remote>,
) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::signal();
    let (tx, rx) = crate::events::channel();
    let (logs_tx, logs_rx) = crate::logs::service::channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    let mut services = None;
    let mut notifier: Option<std::sync::Arc<crate::notify::Notifier>> = None;
    let mut remote_logs: Vec<String> = Vec::new();
    // Local mode without TestOps settings runs no scheduler: nothing to check or export.
    let mut scheduler_off = false;
    // Passes the services' events on (local mode with notifications); ends when they stop.
    let mut forwarder = None;
    let backend = match server {
        Some(remote) => {
            tasks.push(crate::client::spawn_event_pump(
                remote.clone(),
                tx.clone(),
                cancel.clone(),
            ));
            remote_logs = crate::client::logs::names(&remote)
                .await
                .unwrap_or_default();
            tasks.push(crate::client::logs::spawn(
                remote.clone(),
                remote_logs.clone(),
                logs_tx.clone(),
                cancel.clone(),
            ));
            crate::client::Backend::Remote(remote)
        }
        None => {
            let set = ServiceSet {
                scheduler: true,
                watcher: true,
                health: true,
                exports_optional: true,
            };
            // Local mode notifies too: export outcomes are queued, and this dashboard
            // delivers from this machine's outbox unless another process already does.
            let svc_tx = match crate::cli::server::local_notifier(&cfg, data_dir) {
                None => tx.clone(),
                Some(n) => {
                    let t = tx.clone();
                    n.on_health(std::sync::Arc::new(move |failing| {
                        let _ = t.try_send(crate::events::Event::NotifyFailing(failing));
                    }));
                    n.start();
                    let (stx, mut srx) = crate::events::channel();
                    let (n2, fwd) = (n.clone(), tx.clone());
                    // Ends when the services drop their senders.
                    forwarder = Some(tokio::spawn(async move {
                        while let Some(ev) = srx.recv().await {
                            if let crate::events::Event::Export(e) = &ev {
                                n2.export(e);
                            }
                            if fwd.send(ev).await.is_err() {
                                break;
                            }
                        }
                    }));
                    notifier = Some(n);
                    stx
                }
            };
            let s = Services::start(&cfg, data_dir, svc_tx, set)?;
            scheduler_off = s.scheduler.is_none();
            let ledger_path = crate::storage::LedgerAt::of(&cfg, data_dir);
            // What the engine runs (the service lines, tasks and drift of the Releases tab),
            // read again whenever the ledger changes, as the server does.
            let open_path = ledger_path.clone();
            // Drift it records is notified like the server's (`drift_found`).
            let drift_notifier = notifier.clone();
            let watch = crate::release::engine::ServicesWatch::spawn(
                cfg.releases.clone(),
                std::sync::Arc::new(move || {
                    let mut l = crate::release::Ledger::open_at(&open_path).ok()?;
                    if let Some(n) = &drift_notifier {
                        n.observe(&mut l);
                    }
                    Some(l)
                }),
                std::sync::Arc::new(|_, _| {}),
            );
            tasks.push(forward_services(
                watch.subscribe(),
                tx.clone(),
                cancel.clone(),
            ));
            let (ledger_tx, ledger_rx) = crate::events::channel();
            tasks.push(crate::release::watcher::spawn(
                ledger_path.clone(),
                ledger_tx,
                cancel.clone(),
            ));
            tasks.push(poke_on_ledger_change(
                ledger_rx,
                watch,
                tx.clone(),
                cancel.clone(),
            ));
            tasks.push(crate::release::desk::reconcile_in_background(
                cfg.releases.clone(),
                ledger_path.clone(),
                data_dir.to_path_buf(),
                cancel.clone(),
            ));
            let mut local = crate::client::LocalBackend::new(
                &cfg,
                &s,
                tx.clone(),
                data_dir.to_path_buf(),
                ledger_path,
            );
            local.notifier = notifier.clone();
            let b = crate::client::Backend::Local(local);
            services = Some(s);
            b
        }
    };
    // A client tails only the files named on its command line; the server's sources (its
    // log, its deploy logs, the configured files and services) come from the server.
    let remote_mode = matches!(backend, crate::client::Backend::Remote(_));
    let local_paths: Vec<&String> = logs.iter().filter(|l| !remote_logs.contains(l)).collect();
    let local_sources = if remote_mode {
        let mut taken = remote_logs.clone();
        path_sources(local_paths.iter().copied(), &mut taken)
    } else {
        log_sources(&cfg, data_dir, logs)
    };
    let (log_tailer, log_task) =
        crate::logs::service::spawn(local_sources, logs_tx, cancel.clone());
    tasks.push(log_task);
    // A client learns the server's paused jobs from its event stream (sticky).
    let paused = if remote_mode {
        Default::default()
    } else {
        crate::schedule::load_paused(data_dir)
    };
    let mut app = initial_app(&cfg, &paused);
    app.demo = demo;
    // The demo starts fresh every time; a user's dashboard opens where it was left.
    let memory = if demo { None } else { memory::path() };
    if let Some(p) = &memory {
        memory::restore(&mut app, memory::load(p));
    }
    app.remote = remote_mode;
    if scheduler_off {
        app.lock = tabs::schedules::LockState::Off;
    }
    if !remote_mode {
        // "Waiting on you" in local mode: the desk's own approvers list decides.
        let me = crate::release::Actor::current();
        app.may_approve = crate::release::may_act(&cfg.releases.approvers, me.person());
    }
    if let Some(first) = logs.first() {
        // What the command line names wins over what was remembered.
        app.recall.log_source = None;
        app.tab = tab::Tab::Logs;
        app.logs.sel = if remote_mode {
            // Local paths are listed first, then the server's sources.
            match remote_logs.iter().position(|n| n == first) {
                Some(i) => local_paths.len() + i,
                None => local_paths.iter().position(|p| *p == first).unwrap_or(0),
            }
        } else {
            let base = log_sources(&cfg, data_dir, &[]);
            base.iter()
                .position(|s| &s.name == first)
                .unwrap_or(base.len())
        };
    }
    let (results_tx, results_rx) = tokio::sync::mpsc::channel(256);
    let mut effects = Effects::new(
        cfg,
        backend,
        results_tx,
        Box::new(std::io::stdout()),
        data_dir.to_path_buf(),
        Some(log_tailer.clone()),
    );
    effects.run(app::load_history(&mut app));

    let mut term = terminal::enter().context("cannot set up the terminal")?;
    let size = term.size().map(|s| (s.width, s.height)).unwrap_or((80, 24));
    app.size = size;
    let mut inputs = event_loop::Inputs {
        terminal: crossterm::event::EventStream::new(),
        events: rx,
        logs: logs_rx,
        results: results_rx,
    };
    let result = event_loop::run(
        &mut term,
        &mut app,
        &mut inputs,
        &mut effects,
        |t, inputs, s| match s {
            Suspend::Pager(path) => terminal::run_pager(t, inputs, &path),
        },
        shutdown,
    )
    .await;
    terminal::restore();
    // Nobody reads the channels any more: a task waiting for room in one now ends at once
    // instead of holding up the awaits below.
    drop(inputs);
    if let Some(p) = &memory
        && let Err(e) = memory::save(p, &memory::of(&app))
    {
        tracing::warn!(
            "cannot remember the dashboard's place in {}: {e}",
            p.display()
        );
    }
    match &result {
        Ok(stats) => tracing::info!(
            frames = stats.frames,
            messages = stats.messages,
            "dashboard closed"
        ),
        Err(e) => tracing::error!("dashboard failed: {e}"),
    }
    cancel.cancel();
    // The effects' tasks: requests cancelled, the rest given a moment to finish.
    if !effects.shutdown(std::time::Duration::from_secs(2)).await {
        tracing::warn!("dashboard tasks still running at exit");
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some(s) = services {
        s.shutdown().await;
    }
    if let Some(f) = forwarder {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), f).await;
    }
    if let Some(n) = notifier {
        n.shutdown(std::time::Duration::from_secs(2)).await;
    }
    result.map(drop).context("terminal error")
}
