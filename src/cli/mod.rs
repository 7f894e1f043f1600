//! The command line: argument definitions and the headless commands (`export`, `run`,
//! `check`, `release`).

mod checks;
pub mod logs;
pub mod notify;
pub mod release;
pub mod server;
pub mod services;
pub mod storage;
pub mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, process_env};
use crate::events::{Event, EventRx};
use crate::export::{ExportEvent, Stage, Trigger};
use crate::logging::{self, LogTarget};
use crate::schedule::ScheduleEvent;
use crate::services::{ServiceSet, Services};
use crate::testops::{TestOpsClient, TestOpsSettings};

/// opsdeck: TestOps exports, Swarm releases and logs in one terminal dashboard.
#[derive(Debug, Parser)]
#[command(name = "opsdeck", version, about)]
pub struct Cli {
    /// Config file (default: ~/.config/opsdeck/config.toml).
    #[arg(long, global = true, env = "OPSDECK_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The server's socket to use (default: `server.socket`, else /run/opsdeck/opsdeck.sock
    /// when it exists, else $XDG_RUNTIME_DIR/opsdeck.sock). Clients use the server when one
    /// answers there and work in-process when none does; with this flag one must answer.
    #[arg(long, global = true, env = "OPSDECK_SERVER", value_name = "PATH")]
    pub server: Option<PathBuf>,
    /// Work in-process even when a server answers (one person, one machine).
    #[arg(long, global = true)]
    pub local: bool,
    /// The dashboard only watches: every action (approve, roll back, export, delete,
    /// schedule changes) is hidden and refused. Also `ui.readonly = true`.
    #[arg(long, global = true)]
    pub readonly: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The dashboard (also what `opsdeck` alone opens).
    Tui,
    /// The dashboard against a built-in simulated TestOps: no config, network or Docker needed.
    Demo,
    /// Export now, headless: all configured groups, or those named. Prints each saved path.
    Export {
        /// A configured group name; repeat for several.
        #[arg(long = "group", value_name = "NAME")]
        groups: Vec<String>,
    },
    /// The server: scheduler, retention, watcher, release desk and the API on a Unix socket,
    /// until SIGTERM/SIGINT. Dashboards and the CLI become its clients.
    Run,
    /// Exit 0 when the server answers `/v1/health` (for HEALTHCHECK and monitors).
    Health,
    /// Your identity and roles as the server sees them.
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and reach each configured backend; one line per check.
    Check,
    /// The dashboard on the Logs tab, following these sources (configured names or file
    /// paths; globs follow the newest match), the way `lnav FILE` does.
    Logs {
        #[arg(value_name = "SOURCE|PATH")]
        sources: Vec<String>,
        #[command(flatten)]
        print: logs::PrintArgs,
    },
    /// The release ledger: create, status, list, show, approve, reject, rollback.
    Release {
        #[command(subcommand)]
        cmd: release::ReleaseCmd,
    },
    /// What the engine runs for each configured service: image, replicas, update state,
    /// tasks with their errors, and drift from the ledger.
    Services {
        #[arg(long)]
        json: bool,
    },
    /// API tokens for the TCP listener (CI over the network): create, list, revoke. Through
    /// the running server; deployers only.
    Token {
        #[command(subcommand)]
        cmd: token::TokenCmd,
    },
    /// Notifications: the delivery log, a test message.
    Notify {
        #[command(subcommand)]
        cmd: notify::NotifyCmd,
    },
    /// Where state lives: `storage migrate` copies the SQLite state into PostgreSQL.
    Storage {
        #[command(subcommand)]
        cmd: storage::StorageCmd,
    },
}

/// Exit code for bad input or configuration (nothing was done).
pub const EXIT_USAGE: u8 = 2;

pub(crate) fn load(cli: &Cli) -> Result<Config, ExitCode> {
    Config::load(cli.config.as_deref(), &process_env).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// Loads the configuration and starts logging to `<data dir>/logs` (and stderr for `target`
/// StderrAndFile); config warnings are logged. Keep the guard alive for the command's life.
pub(crate) fn load_logged(
    cli: &Cli,
    target: LogTarget,
) -> Result<(Config, logging::LogGuard), ExitCode> {
    let cfg = load(cli)?;
    let guard = logging::init(
        &cfg.logging.level,
        &crate::paths::log_dir(),
        cfg.logging.keep_days,
        target,
    );
    warn_all(&cfg);
    Ok((cfg, guard))
}

fn warn_all(cfg: &Config) {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
}

/// `opsdeck export`.
pub async fn export(cli: &Cli, groups: &[String]) -> ExitCode {
    let shutdown = crate::shutdown::signal();
    let (cfg, _log) = match load_logged(cli, LogTarget::StderrAndFile) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let selected = match cfg.select_groups(groups) {
        Ok(g) if g.is_empty() => {
            eprintln!(
                "error: no groups configured: add [[testops.groups]] entries (name, id) to the config"
            );
            return ExitCode::from(EXIT_USAGE);
        }
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match server::remote_for(cli, Some(&cfg)).await {
        Ok(Some(remote)) => {
            let names: Vec<String> = selected.iter().map(|g| g.name.clone()).collect();
            let outcome = tokio::select! {
                o = remote.export_wait(&names) => o,
                () = shutdown => {
                    eprintln!("interrupted: the export goes on in the server");
                    return ExitCode::from(130);
                }
            };
            return match outcome {
                Ok(o) => report_outcome(&o),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Ok(None) => {}
        Err(code) => return code,
    }
    let (tx, rx) = crate::events::channel();
    let services = match Services::start(
        &cfg,
        &crate::paths::data_dir(),
        tx,
        ServiceSet {
            scheduler: false,
            watcher: false,
            health: false,
            exports_optional: false,
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let notifier = server::local_notifier(&cfg, &crate::paths::data_dir());
    let drain = tokio::spawn(log_events(rx));
    let runner = services.runner.clone();
    let outcome = tokio::select! {
        o = runner.export(selected, Trigger::Manual) => Some(o),
        () = shutdown => None,
    };
    services.shutdown().await;
    drain.abort();
    if let (Some(n), Some(o)) = (&notifier, &outcome) {
        for (group, _) in &o.saved {
            n.export_result(group, Ok(()));
        }
        for (group, err) in &o.failed {
            n.export_result(group, Err(err.clone()));
        }
        n.flush(std::time::Duration::from_secs(10)).await;
    }
    let Some(outcome) = outcome else {
        eprintln!("error: interrupted; no partial file was kept");
        return ExitCode::from(130);
    };
    report_outcome(&outcome)
}

/// Prints each saved path and each failure; exit 0 only when every group was saved.
fn report_outcome(outcome: &crate::export::RunOutcome) -> ExitCode {
    for (_, path) in &outcome.saved {
        println!("{}", path.display());
    }
    for (group, err) in &outcome.failed {
        eprintln!("error: group {group}: {}", crate::sanitize::clean(err));
    }
    for group in &outcome.skipped {
        eprintln!("error: group {group}: an export of it is already running in this process");
    }
    if outcome.all_saved() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `opsdeck check`.
pub async fn check(cli: &Cli) -> ExitCode {
    let cfg = match Config::load(cli.config.as_deref(), &process_env) {
        Ok(c) => c,
        Err(e) => {
            println!(
                "FAIL config: {}",
                crate::sanitize::clean_max(&e.to_string(), 1000)
            );
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    let mut line = |ok: bool, what: &str, detail: String| {
        failed |= !ok;
        let detail = crate::sanitize::clean_max(&detail, 1000);
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
    };
    let source = cfg
        .path
        .as_ref()
        .map_or("no file, environment and defaults".into(), |p| {
            p.display().to_string()
        });
    line(
        true,
        "config",
        format!("{source}; {} group(s)", cfg.testops.groups.len()),
    );
    for w in &cfg.warnings {
        println!("warn config: {w}");
    }
    match &cfg.access {
        None => println!(
            "warn access: no [access] table: a server with this config lets every local user approve, deploy and export"
        ),
        Some(a) => line(
            true,
            "access",
            format!(
                "viewers {}, ci {}, approvers {}, deployers {}, self_approval {}",
                list_or(&a.viewers, "every local user"),
                list_or(&a.ci, "nobody"),
                list_or(&a.approvers, "nobody"),
                list_or(&a.deployers, "nobody"),
                a.self_approval
            ),
        ),
    }
    let socket = crate::client::socket_for(cli.server.as_deref(), cfg.server_socket.as_deref());
    let remote = crate::client::Remote::connect(&socket).await;
    match &remote {
        Some(_) => line(true, "server", format!("answers on {}", socket.display())),
        None => println!(
            "info server: none answers on {}: clients work in-process (local mode)",
            socket.display()
        ),
    }
    check_notify(&cfg, remote.as_ref(), &mut line).await;
    line(
        true,
        "export.schedule",
        format!(
            "`{}`: {}",
            cfg.export.schedule.expr(),
            cfg.export.schedule.describe()
        ),
    );
    let store = crate::export::ExportStore::of(&cfg.export);
    match store.ensure_writable() {
        Ok(()) => line(
            true,
            "export.dir",
            format!(
                "{} is writable; exports are 0640{}",
                cfg.export.dir.display(),
                cfg.export
                    .group
                    .as_ref()
                    .map(|g| format!(" with group {}", g.name))
                    .unwrap_or_default()
            ),
        ),
        Err(e) => line(
            false,
            "export.dir",
            format!("{}: {e}", cfg.export.dir.display()),
        ),
    }
    if cfg.testops.groups.is_empty() {
        line(
            false,
            "testops.groups",
            "no groups configured: add [[testops.groups]] entries".into(),
        );
    }
    match TestOpsSettings::from_config(&cfg) {
        Err(e) => line(false, "testops", e.to_string()),
        Ok(settings) => {
            let url = crate::sanitize::url(&settings.base_url);
            match TestOpsClient::new(settings) {
                Err(e) => line(false, "testops", e.to_string()),
                Ok(client) => match client.exchange().await {
                    Ok(exp) => line(
                        true,
                        "testops",
                        format!(
                            "{url}: token exchange succeeded{}",
                            exp.map(|d| format!(
                                ", access token valid for {}",
                                humantime::format_duration(d)
                            ))
                            .unwrap_or_default()
                        ),
                    ),
                    Err(e) => line(false, "testops", format!("{url}: {e}")),
                },
            }
        }
    }
    checks::run(&cfg, &crate::paths::data_dir(), &mut line).await;
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One line per `[[notify]]` sink: ok, or FAIL when it keeps failing (the server's view when
/// one answers, else this machine's outbox).
async fn check_notify(
    cfg: &Config,
    remote: Option<&crate::client::Remote>,
    line: &mut impl FnMut(bool, &str, String),
) {
    if cfg.notify.is_empty() {
        return;
    }
    let failing: Vec<crate::notify::SinkHealth> = match remote {
        Some(r) => r
            .http
            .get_json::<serde_json::Value>("/v1/notify/log?limit=1")
            .await
            .ok()
            .and_then(|v| serde_json::from_value(v["failing"].clone()).ok())
            .unwrap_or_default(),
        None => {
            let path = crate::notify::deliver::outbox_path(&server::notify_dir(
                cfg,
                &crate::paths::data_dir(),
            ));
            let outbox = match &cfg.storage {
                Some(pg) => Some(crate::notify::Outbox::open_pg(pg)),
                None => path.exists().then(|| crate::notify::Outbox::open(&path)),
            };
            if let Some(outbox) = outbox {
                outbox
                    .and_then(|o| o.failing(crate::notify::deliver::FAILING_AFTER))
                    .map(|v| {
                        v.into_iter()
                            .map(|(sink, attempts, error)| crate::notify::SinkHealth {
                                sink,
                                attempts,
                                error,
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                vec![]
            }
        }
    };
    for s in &cfg.notify {
        let what = format!("notify {}", s.name);
        match failing.iter().find(|f| f.sink == s.name) {
            Some(f) => line(
                false,
                &what,
                format!("keeps failing ({} attempt(s)): {}", f.attempts, f.error),
            ),
            None => line(
                true,
                &what,
                format!(
                    "{}, events {}, services {}",
                    s.target.kind(),
                    s.events.as_ref().map_or("all".to_string(), |e| e
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")),
                    s.services.as_ref().map_or("all".to_string(), |e| e
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "))
                ),
            ),
        }
    }
}

fn list_or(v: &[String], empty: &str) -> String {
    if v.is_empty() {
        empty.to_string()
    } else {
        format!("[{}]", v.join(", "))
    }
}

/// Logs service events for headless front ends.
async fn log_events(mut rx: EventRx) {
    while let Some(ev) = rx.recv().await {
        log_event(&ev);
    }
}

/// Logs one service event.
pub(crate) fn log_event(ev: &Event) {
    {
        match ev {
            Event::Export(ExportEvent::Progress {
                group,
                stage,
                attempt,
                max_attempts,
                ..
            }) => match stage {
                Stage::Preparing { poll } if *poll > 1 => {
                    tracing::debug!(%group, "attempt {attempt}/{max_attempts}: export not ready, poll {poll}")
                }
                Stage::Downloading { bytes, .. } => {
                    tracing::debug!(%group, "downloading: {bytes} bytes")
                }
                _ => {}
            },
            Event::Schedule(ScheduleEvent::Next { job, at: Some(at) }) => {
                tracing::info!(%job, "next run at {at}")
            }
            _ => {}
        }
    }
}

/// `opsdeck` / `opsdeck tui`.
pub async fn tui(cli: &Cli) -> ExitCode {
    tui_on(cli, &[]).await
}

/// The dashboard, opening on the Logs tab with `logs` when any are given.
pub async fn tui_on(cli: &Cli, logs: &[String]) -> ExitCode {
    let (mut cfg, _log) = match load_logged(cli, LogTarget::FileOnly) {
        Ok(c) => c,
        Err(code) => return code,
    };
    cfg.ui.readonly |= cli.readonly;
    let data_dir = crate::paths::data_dir();
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    let remote = match server::remote_for(cli, Some(&cfg)).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    match crate::tui::run_on(cfg, &data_dir, false, logs, remote).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `opsdeck demo`; `--readonly` applies as to the dashboard.
pub async fn demo(cli: &Cli) -> ExitCode {
    let mut demo = match crate::demo::start().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot start the demo: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let _log = logging::init(
        "info",
        &demo.data_dir().join("logs"),
        1,
        LogTarget::FileOnly,
    );
    demo.config.ui.readonly |= cli.readonly;
    tracing::info!(dir = %demo.root.path().display(), "demo started");
    let result = crate::tui::run(demo.config.clone(), &demo.data_dir(), true).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
