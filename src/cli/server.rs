//! `opsdeck run` (the server), `opsdeck health`, `opsdeck whoami`, and how every client
//! command finds the server.

use std::process::ExitCode;
use std::sync::Arc;

use super::{Cli, EXIT_USAGE, load_logged};
use crate::client::Remote;
use crate::config::Config;
use crate::events::Event;
use crate::logging::LogTarget;
use crate::schedule::ScheduleEvent;
use crate::server::hub::{Hub, WireBody};
use crate::server::{ServerState, socket};
use crate::services::{ServiceSet, Services};

/// Exit code for "not allowed".
pub const EXIT_FORBIDDEN: u8 = 4;

/// The server for a client command: `None` means local mode. With `--server` (or
/// `OPSDECK_SERVER`) one must answer; otherwise the configured or default socket is tried.
pub async fn remote_for(cli: &Cli, cfg: Option<&Config>) -> Result<Option<Remote>, ExitCode> {
    if cli.local {
        return Ok(None);
    }
    let configured = cfg.and_then(|c| c.server_socket.as_deref());
    let path = crate::client::socket_for(cli.server.as_deref(), configured);
    match Remote::connect(&path).await {
        Some(r) => Ok(Some(r)),
        None if cli.server.is_some() => {
            eprintln!(
                "error: no server answers on {} (start one with `opsdeck run`, or drop --server for local mode)",
                path.display()
            );
            Err(ExitCode::FAILURE)
        }
        None => Ok(None),
    }
}

/// `opsdeck run`: the server.
pub async fn run(cli: &Cli) -> ExitCode {
    let shutdown = crate::shutdown::signal();
    // The server's files (ledger, history, locks, scheduler state, deploy logs, its log) are
    // its own: 0600 in a 0700 state dir. The umask is process-wide, so it is set before the
    // log or anything else creates a file.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let data_dir = crate::paths::data_dir();
    if let Err(e) = crate::private::claim_dir(&data_dir) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let (cfg, _log) = match load_logged(cli, LogTarget::StderrAndFile) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let sock_path = crate::paths::socket_path(cfg.server_socket.as_deref());
    let (listener, guard) = match socket::bind(&sock_path) {
        Ok(b) => b,
        Err(e @ socket::BindError::AlreadyRunning { .. }) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tokens =
        match crate::server::tokens::TokenStore::open_for(cfg.storage.as_deref(), &data_dir) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let tcp = match &cfg.listen {
        None => None,
        Some(l) => match crate::server::tcp::bind(l).await {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    let (tx, mut rx) = crate::events::channel();
    // With PostgreSQL, several servers may share the database: one leads (an advisory lock on
    // a connection of its own) and runs the scheduler, retention and reconciliation.
    let election_stop = tokio_util::sync::CancellationToken::new();
    let leadership = cfg.storage.as_ref().map(|pg| {
        crate::storage::leader::spawn(
            pg.clone(),
            crate::storage::leader::Timing::default(),
            election_stop.clone(),
        )
    });
    let services = match Services::start_led(
        &cfg,
        &data_dir,
        tx.clone(),
        ServiceSet {
            scheduler: true,
            watcher: true,
            health: true,
            exports_optional: true,
        },
        leadership.clone(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let hub = Arc::new(Hub::new());
    let metrics = Arc::new(Default::default());
    // With PostgreSQL every server queues into the shared outbox; the leader delivers.
    let notifier = open_notifier(&cfg, &data_dir, leadership.clone());
    if let Some(n) = &notifier {
        let hub = hub.clone();
        n.on_health(Arc::new(move |failing| {
            hub.publish(None, WireBody::Notify { failing });
        }));
        n.start();
    }
    let mut parts = crate::server::state_parts(
        cfg.clone(),
        &services,
        data_dir.clone(),
        hub.clone(),
        metrics,
        notifier.clone(),
    );
    parts.leadership = leadership.clone();
    let state = match ServerState::new(parts) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: cannot open the ledger: {e}");
            return ExitCode::FAILURE;
        }
    };
    state.watch_services();
    state.publish_work();
    // The ledger is verified now and on every change; a failure goes to every dashboard.
    let verifier = crate::release::watcher::spawn_verifier(
        state.ledger_at.clone(),
        tx.clone(),
        state.shutdown.clone(),
    );
    // The paused jobs live in the state dir, which clients cannot read: they get them here.
    let paused = state.paused.lock().map(|p| p.iter().cloned().collect());
    hub.publish(
        None,
        WireBody::Paused {
            jobs: paused.unwrap_or_default(),
        },
    );
    if state.access.is_open() {
        tracing::warn!(
            "no [access] table in the server's config: every local user has every role (approve, deploy, export); add one, see `opsdeck check`"
        );
    }
    // Service events: to every client, to the metrics, to the log.
    let pump_state = state.clone();
    let pump = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match &ev {
                Event::Export(e) => {
                    pump_state.metrics.export(e);
                    if let Some(n) = &pump_state.notifier {
                        n.export(e);
                    }
                }
                Event::LedgerTampered(row) => {
                    // The verifier reports each finding once, so this notifies once.
                    if let Some(n) = &pump_state.notifier {
                        let mut ev = crate::notify::NotifyEvent::new(
                            crate::notify::EventKind::LedgerTampered,
                        );
                        ev.reason = Some(format!("ledger tampered at {row}"));
                        n.enqueue(&ev);
                    }
                }
                Event::Schedule(ScheduleEvent::Leader) => {
                    *pump_state.leader.lock().unwrap_or_else(|p| p.into_inner()) = "leader".into();
                }
                Event::Schedule(ScheduleEvent::Follower { holder }) => {
                    *pump_state.leader.lock().unwrap_or_else(|p| p.into_inner()) =
                        format!("follower ({holder} leads)");
                }
                _ => {}
            }
            super::log_event(&ev);
            if let Some(body) = WireBody::from_event(&ev) {
                pump_state.hub.publish(None, body);
            }
        }
    });
    match (&leadership, &cfg.storage) {
        (Some(rx), Some(pg)) => {
            // Changes made through the other servers reach this one's streams.
            crate::server::relay::spawn(state.clone(), pg.clone());
            reconcile_when_leading(state.clone(), rx.clone());
        }
        _ => state.reconcile_in_background(),
    }
    tracing::info!(
        socket = %guard.path.display(),
        dir = %cfg.export.dir.display(),
        schedule = cfg.export.schedule.expr(),
        "opsdeck server started (pid {}): {}",
        std::process::id(),
        cfg.export.schedule.describe()
    );
    let stop = state.shutdown.clone();
    let serve_stop = stop.clone();
    if let Some(b) = tcp {
        tracing::info!(
            tls = cfg.listen.as_ref().is_some_and(|l| l.tls.is_some()),
            "TCP listener on {} (bearer tokens)",
            b.addr
        );
        tokio::spawn(crate::server::tcp::serve(
            state.clone(),
            tokens.clone(),
            b,
            stop.clone(),
        ));
    }
    let server = tokio::spawn(crate::server::serve(
        state.clone(),
        tokens,
        listener,
        async move {
            serve_stop.cancelled().await;
        },
    ));
    shutdown.await;
    tracing::info!("shutting down: closing streams, cancelling running exports");
    stop.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    services.shutdown().await;
    // The election's connection closes now, so another server takes over at once.
    election_stop.cancel();
    let _ = verifier.await;
    pump.abort();
    if let Some(n) = &notifier {
        n.shutdown(std::time::Duration::from_secs(3)).await;
    }
    drop(guard);
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Reconciles releases left in progress each time this server becomes the leader: after a
/// leader dies, its deploys in flight are settled once, by the next leader. Deploys other
/// live servers are running hold their work lock and are left alone.
fn reconcile_when_leading(
    state: Arc<ServerState>,
    mut rx: tokio::sync::watch::Receiver<crate::storage::leader::Role>,
) {
    tokio::spawn(async move {
        let mut leading = false;
        loop {
            let now = rx.borrow_and_update().is_leader();
            if now && !leading {
                state.reconcile_in_background();
            }
            leading = now;
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    });
}

/// The outbox for the configured sinks: in PostgreSQL with `storage.url` (delivered by the
/// server that `leadership` says leads; without it, only queued), else beside the ledger
/// (`notify.db`). `None` (logged) when it cannot be opened: the server runs on without
/// notifications.
pub(crate) fn open_notifier(
    cfg: &Config,
    data_dir: &std::path::Path,
    leadership: Option<tokio::sync::watch::Receiver<crate::storage::leader::Role>>,
) -> Option<Arc<crate::notify::Notifier>> {
    let opened = match &cfg.storage {
        Some(pg) => crate::notify::Notifier::open_shared(pg, cfg.notify.clone(), leadership),
        None => crate::notify::Notifier::open(
            &crate::notify::deliver::outbox_path(&notify_dir(cfg, data_dir)),
            cfg.notify.clone(),
        ),
    };
    match opened {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::error!("notifications are off: {e}");
            None
        }
    }
}

/// A local-mode notifier (no server): `None` without `[[notify]]` sinks.
pub(crate) fn local_notifier(
    cfg: &Config,
    data_dir: &std::path::Path,
) -> Option<Arc<crate::notify::Notifier>> {
    if cfg.notify.is_empty() {
        return None;
    }
    open_notifier(cfg, data_dir, None)
}

/// The directory of the ledger, where `notify.db` lives.
pub(crate) fn notify_dir(cfg: &Config, data_dir: &std::path::Path) -> std::path::PathBuf {
    cfg.releases
        .ledger
        .as_ref()
        .and_then(|l| l.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| data_dir.to_path_buf())
}

/// `opsdeck health`.
pub async fn health(cli: &Cli) -> ExitCode {
    let cfg = Config::load(cli.config.as_deref(), &crate::config::process_env).ok();
    let path = crate::client::socket_for(
        cli.server.as_deref(),
        cfg.as_ref().and_then(|c| c.server_socket.as_deref()),
    );
    let http = crate::client::UnixHttp::new(path.clone());
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        http.get_json::<serde_json::Value>("/v1/health"),
    )
    .await
    {
        Ok(Ok(v)) => {
            let role = match (v["leader"].as_bool(), v["leader_holder"].as_str()) {
                (Some(true), _) => "the leader".to_string(),
                (Some(false), Some(h)) => format!("a follower; the leader is {h}"),
                _ => "a follower; no leader known yet".to_string(),
            };
            println!(
                "ok: opsdeck {} on {} (pid {}, up {} s, scheduler {}, {} session(s)); this server is {}",
                v["version"].as_str().unwrap_or("?"),
                path.display(),
                v["pid"],
                v["uptime_seconds"],
                v["scheduler"].as_str().unwrap_or("?"),
                v["sessions"],
                crate::sanitize::clean(&role)
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "error: the server on {} did not answer within 5 s",
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// `opsdeck whoami`.
pub async fn whoami(cli: &Cli, json: bool) -> ExitCode {
    let cfg = Config::load(cli.config.as_deref(), &crate::config::process_env).ok();
    let remote = match remote_for(cli, cfg.as_ref()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            let me = crate::release::Actor::current();
            eprintln!(
                "no server answers: local mode, acting as {} with the rights of this Unix user",
                me.user
            );
            return ExitCode::FAILURE;
        }
        Err(code) => return code,
    };
    match remote.whoami().await {
        Ok(v) if json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(v) => {
            let list = |k: &str| {
                v[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "none".into())
            };
            println!(
                "user     {} (uid {})",
                v["user"].as_str().unwrap_or("?"),
                v["uid"]
            );
            println!("groups   {}", list("groups"));
            println!("roles    {}", list("roles"));
            if v["access_configured"] == false {
                println!(
                    "note     the server has no [access] table: every local user has every role"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
