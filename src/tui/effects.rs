//! `Effects`: carries out the commands `update` returns. Nothing here blocks the UI task:
//! service calls use non-blocking sends, file and database work (and starting a process)
//! runs on blocking threads, and results come back as messages. Every task goes into one
//! `TaskTracker`, which `shutdown` closes and awaits. A request's work (preview, diff,
//! search, context, release details, history) gets a `CancellationToken` per kind: a newer
//! request of the kind or `Cmd::Cancel` cancels it, and its reader stops.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::msg::{Cmd, HistoryView, Msg, SavedExport};
use super::request::Req;
use crate::client::Backend;
use crate::config::Config;
use crate::export::RunHistory;
use crate::schedule::CronSchedule;

/// What the loop must do itself because it owns the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspend {
    /// Leave the screen, run `$PAGER` on the file, come back.
    Pager(PathBuf),
}

/// The command executor.
pub struct Effects {
    pub cfg: Arc<Config>,
    /// Where actions go: services in this process, or the server.
    pub backend: Backend,
    pub results: mpsc::Sender<Msg>,
    /// Where OSC 52 copy sequences go (the terminal; a buffer in tests).
    pub clipboard: Box<dyn Write + Send>,
    pub job_names: Vec<String>,
    /// opsdeck's data dir (deploy logs, saved logs).
    pub data_dir: PathBuf,
    /// Adds log sources (the deploy log of a selected release).
    pub log_tailer: Option<crate::logs::LogTailerHandle>,
    /// Releases whose deploy log is already a source.
    pub followed_deploys: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    /// Every task this starts; `shutdown` awaits them.
    pub tracker: TaskTracker,
    /// Cancelled at shutdown; the parent of every request's token.
    root: CancellationToken,
    /// The token of the request of each kind in flight.
    tokens: std::collections::HashMap<Req, CancellationToken>,
}

/// Where `s` on the Logs tab saves: `<data dir>/saved/<source>-<UTC time>.log`.
pub fn saved_log_path(data_dir: &std::path::Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    data_dir.join("saved").join(format!(
        "{safe}-{}.log",
        chrono::Utc::now().format("%Y-%m-%d_%H-%M-%S")
    ))
}

impl Effects {
    /// An executor over running services. `clipboard` receives OSC 52 sequences (the
    /// terminal); `log_tailer` lets deploy logs become Logs sources.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Config,
        backend: Backend,
        results: mpsc::Sender<Msg>,
        clipboard: Box<dyn Write + Send>,
        data_dir: PathBuf,
        log_tailer: Option<crate::logs::LogTailerHandle>,
    ) -> Effects {
        Effects {
            job_names: crate::services::jobs(&cfg)
                .into_iter()
                .map(|j| j.name)
                .collect(),
            cfg: Arc::new(cfg),
            backend,
            results,
            clipboard,
            data_dir,
            log_tailer,
            followed_deploys: Default::default(),
            tracker: TaskTracker::new(),
            root: CancellationToken::new(),
            tokens: Default::default(),
        }
    }

    /// A token for a new request of `kind`; the one in flight is cancelled.
    fn token(&mut self, kind: Req) -> CancellationToken {
        let t = self.root.child_token();
        if let Some(old) = self.tokens.insert(kind, t.clone()) {
            old.cancel();
        }
        t
    }

    /// Cancels every request, stops taking tasks and waits for those running, at most
    /// `limit` (a blocking read cannot be interrupted; it ends at its next check). True when
    /// all ended.
    pub async fn shutdown(&self, limit: std::time::Duration) -> bool {
        self.root.cancel();
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_ok()
    }

    /// Tasks still running (tests).
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Starts one command; returns a suspension the loop has to perform itself.
    pub fn run(&mut self, cmd: Cmd) -> Option<Suspend> {
        match cmd {
            Cmd::Export(names) => {
                if let Err(e) = self.cfg.select_groups(&names) {
                    return self.reply(Msg::Done(Err(e)));
                }
                let b = self.backend.clone();
                self.call(async move { Msg::Done(b.export(names).await) });
            }
            Cmd::RunCleanup => {
                let b = self.backend.clone();
                self.call(async move { Msg::Done(b.run_job("cleanup".into()).await) });
            }
            Cmd::SetPaused { job, paused } => {
                let b = self.backend.clone();
                let results = self.results.clone();
                self.call(async move {
                    match b.set_paused(job.clone(), paused).await {
                        Ok(set) => {
                            let _ = results.send(Msg::Paused(set)).await;
                            Msg::Done(Ok(format!(
                                "{job} {}",
                                if paused { "paused" } else { "resumed" }
                            )))
                        }
                        Err(e) => Msg::Done(Err(e)),
                    }
                });
            }
            Cmd::SaveCron { job, expr } => self.save_cron(job, expr),
            Cmd::Delete(path) => {
                let results = self.results.clone();
                self.tracker.spawn_blocking(move || {
                    let msg = match std::fs::remove_file(&path) {
                        Ok(()) => {
                            tracing::info!(file = %path.display(), "deleted by the user");
                            Ok(format!("deleted {}", path.display()))
                        }
                        Err(e) => Err(format!("cannot delete {}: {e}", path.display())),
                    };
                    let _ = results.blocking_send(Msg::Done(msg));
                });
            }
            Cmd::Preview { path, generation } => {
                let results = self.results.clone();
                let cancel = self.token(Req::Preview);
                self.tracker.spawn_blocking(move || {
                    // Stops at the next batch once the preview is closed.
                    crate::export::preview::stream_preview(&path, 500_000, |batch| {
                        send_unless_cancelled(&results, Msg::Preview { generation, batch }, &cancel)
                    });
                });
            }
            Cmd::Diff {
                old,
                new,
                generation,
            } => {
                let results = self.results.clone();
                let cancel = self.token(Req::Diff);
                self.tracker.spawn_blocking(move || {
                    if cancel.is_cancelled() {
                        return;
                    }
                    let result = crate::export::diff::diff_files(&old, &new);
                    send_unless_cancelled(&results, Msg::Diff { generation, result }, &cancel);
                });
            }
            Cmd::Pager(path) => return Some(Suspend::Pager(path)),
            Cmd::Copy(text) => {
                // OSC 52 reaches the clipboard of the user's own terminal, through SSH.
                let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                let _ = write!(self.clipboard, "\x1b]52;c;{b64}\x07");
                let _ = self.clipboard.flush();
            }
            Cmd::Alert(text) => {
                let _ = self.clipboard.write_all(alert_sequence(&text).as_bytes());
                let _ = self.clipboard.flush();
            }
            Cmd::Approve { id, service, tag } => {
                if let Backend::Remote(_) = self.backend {
                    let b = self.backend.clone();
                    self.call(async move { Msg::Done(b.remote_work(id, "approve", None).await) });
                } else {
                    self.follow_deploy_log(id, &service, &tag, true);
                    self.detached(&["approve", &id.to_string()], &service, &tag, false);
                }
            }
            Cmd::Rollback {
                id,
                to,
                service,
                tag,
            } => {
                if let Backend::Remote(_) = self.backend {
                    let b = self.backend.clone();
                    self.call(
                        async move { Msg::Done(b.remote_work(id, "rollback", Some(to)).await) },
                    );
                } else {
                    self.detached(
                        &["rollback", &id.to_string(), "--to", &to],
                        &service,
                        &tag,
                        true,
                    );
                }
            }
            Cmd::Deploy { id, service, tag } => {
                if let Backend::Remote(_) = self.backend {
                    let b = self.backend.clone();
                    self.call(async move { Msg::Done(b.remote_work(id, "deploy", None).await) });
                } else {
                    self.follow_deploy_log(id, &service, &tag, true);
                    self.detached(&["deploy", &id.to_string()], &service, &tag, false);
                }
            }
            Cmd::CancelDeploy { id } => {
                let b = self.backend.clone();
                self.call(async move { Msg::Done(b.cancel(id).await) });
            }
            Cmd::Reject { id, reason } => {
                let b = self.backend.clone();
                self.call(async move { Msg::Done(b.reject(id, reason).await) });
            }
            Cmd::LoadRelease {
                id,
                service,
                tag,
                generation,
            } => {
                if let Backend::Local(_) = self.backend {
                    self.follow_deploy_log(id, &service, &tag, false);
                }
                let (b, data_dir) = (self.backend.clone(), self.data_dir.clone());
                let cancel = self.token(Req::Release);
                self.call_cancellable(cancel, async move {
                    let detail = load_release(b, &data_dir, id, &service, &tag).await;
                    Msg::ReleaseDetail { generation, detail }
                });
            }
            Cmd::Cancel(kind) => {
                if let Some(t) = self.tokens.remove(&kind) {
                    t.cancel();
                }
            }
            Cmd::SearchFile {
                spec,
                pattern,
                generation,
            } => {
                let cancel = self.token(Req::Search);
                // The searcher polls a flag; the token sets it.
                let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let set = flag.clone();
                let done = CancellationToken::new();
                let (watch, finished) = (cancel.clone(), done.clone());
                self.tracker.spawn(async move {
                    tokio::select! {
                        () = watch.cancelled() => set.store(true, std::sync::atomic::Ordering::Relaxed),
                        () = finished.cancelled() => {}
                    }
                });
                let results = self.results.clone();
                self.tracker.spawn_blocking(move || {
                    super::tabs::logs::search_task(&spec, &pattern, generation, &flag, &results);
                    done.cancel();
                });
            }
            Cmd::ReadContext {
                spec,
                offset,
                generation,
            } => {
                let results = self.results.clone();
                let cancel = self.token(Req::Context);
                self.tracker.spawn_blocking(move || {
                    let result = super::tabs::logs::context_task(&spec, offset);
                    let msg = Msg::MatchContext { generation, result };
                    send_unless_cancelled(&results, msg, &cancel);
                });
            }
            Cmd::SaveLog { name, lines } => {
                let path = saved_log_path(&self.data_dir, &name);
                let results = self.results.clone();
                self.tracker.spawn_blocking(move || {
                    let write = || -> std::io::Result<()> {
                        if let Some(dir) = path.parent() {
                            std::fs::create_dir_all(dir)?;
                        }
                        let mut text = lines.join("\n");
                        text.push('\n');
                        std::fs::write(&path, text)
                    };
                    let msg = match write() {
                        Ok(()) => Ok(format!("saved {} lines to {}", lines.len(), path.display())),
                        Err(e) => Err(format!("cannot save to {}: {e}", path.display())),
                    };
                    let _ = results.blocking_send(Msg::Done(msg));
                });
            }
            Cmd::LoadHistory { generation } => {
                let (b, jobs) = (self.backend.clone(), self.job_names.clone());
                let results = self.results.clone();
                let cancel = self.token(Req::History);
                self.tracker.spawn(async move {
                    let snap = tokio::select! {
                        () = cancel.cancelled() => return,
                        s = b.history(jobs) => s,
                    };
                    if let Ok(snap) = snap {
                        let history = history_view(snap);
                        let _ = results
                            .send(Msg::History {
                                generation,
                                history,
                            })
                            .await;
                    }
                });
            }
        }
        None
    }

    /// Makes a release's deploy log (prod and rollback: the newest) a Logs source, once: when
    /// opsdeck starts a deploy, or when a selected release has a log already.
    fn follow_deploy_log(&mut self, id: i64, service: &str, tag: &str, starting: bool) {
        let spec = self
            .data_dir
            .join("deployments")
            .join(service)
            .join(format!("{tag}-*.log"));
        let spec = spec.display().to_string();
        let Some(t) = self.log_tailer.clone() else {
            return;
        };
        let followed = self.followed_deploys.clone();
        let name = format!("deploy {service} {tag}");
        // Looking for the file is a directory read: not on the UI task.
        self.tracker.spawn_blocking(move || {
            let exists = starting || crate::logs::tail::resolve(&spec).is_some();
            if exists
                && followed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id)
            {
                t.add(crate::logs::LogSource::file(name, spec));
            }
        });
    }

    /// Runs `opsdeck release ARGS` in its own process group, so the deploy goes on when the
    /// dashboard quits or the SSH connection drops; its output goes to the deploy log.
    fn detached(&self, args: &[&str], service: &str, tag: &str, rollback: bool) {
        let log = crate::release::deploy::command::log_path(&self.data_dir, service, tag, rollback);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (config, data_dir) = (self.cfg.path.clone(), self.data_dir.clone());
        let results = self.results.clone();
        // Opening the log (fsync'd dirs) and fork/exec: on a blocking thread.
        self.tracker.spawn_blocking(move || {
            let started = start_detached(&log, &args, config.as_deref(), &data_dir, &results);
            if let Err(e) = started {
                let _ = results.blocking_send(Msg::Done(Err(format!(
                    "cannot start opsdeck release {}: {e}",
                    args.join(" ")
                ))));
            }
        });
    }

    fn reply(&self, msg: Msg) -> Option<Suspend> {
        let _ = self.results.try_send(msg);
        None
    }

    /// Runs `f` off the UI task and sends its message back.
    fn call(&self, f: impl std::future::Future<Output = Msg> + Send + 'static) {
        let results = self.results.clone();
        self.tracker.spawn(async move {
            let _ = results.send(f.await).await;
        });
    }

    /// Like `call`, but nothing is sent once `cancel` is cancelled (it stops waiting).
    fn call_cancellable(
        &self,
        cancel: CancellationToken,
        f: impl std::future::Future<Output = Msg> + Send + 'static,
    ) {
        let results = self.results.clone();
        self.tracker.spawn(async move {
            let msg = tokio::select! {
                () = cancel.cancelled() => return,
                m = f => m,
            };
            let _ = results.send(msg).await;
        });
    }

    fn save_cron(&mut self, job: String, expr: String) {
        let tz = self.cfg.export.schedule.timezone();
        let schedule = match CronSchedule::parse(&expr, Some(tz)) {
            Ok(s) => s,
            Err(e) => {
                let _ = self
                    .results
                    .try_send(Msg::Done(Err(format!("not saved: {e}"))));
                return;
            }
        };
        let env_wins = matches!(self.backend, Backend::Local(_))
            && job == "export"
            && crate::config::process_env("CRON_SCHEDULE").is_some();
        let (b, results) = (self.backend.clone(), self.results.clone());
        self.tracker.spawn(async move {
            match b.set_cron(job.clone(), schedule.clone()).await {
                Ok(()) => {
                    let _ = results.send(Msg::CronSaved { job, schedule }).await;
                    if env_wins {
                        let _ = results
                            .send(Msg::Done(Err(
                                "saved, but CRON_SCHEDULE in the environment overrides it at the next start".into(),
                            )))
                            .await;
                    }
                }
                Err(e) => {
                    let _ = results
                        .send(Msg::Done(Err(format!("not saved: {e}"))))
                        .await;
                }
            }
        });
    }
}

/// Sends `msg` from a blocking thread, waiting for room, unless `cancel` comes first (a
/// plain `blocking_send` would wait on a full channel past a cancellation, and past
/// shutdown). False when cancelled or the loop is gone.
fn send_unless_cancelled(
    results: &mpsc::Sender<Msg>,
    msg: Msg,
    cancel: &CancellationToken,
) -> bool {
    let mut msg = msg;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        match results.try_send(msg) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(m)) => {
                msg = m;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// Starts `opsdeck release ARGS` in its own process group, output to `log`. Blocking.
fn start_detached(
    log: &std::path::Path,
    args: &[String],
    config: Option<&std::path::Path>,
    data_dir: &std::path::Path,
    results: &mpsc::Sender<Msg>,
) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let out = crate::private::append(log)?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    if let Some(p) = config {
        cmd.arg("--config").arg(p);
    }
    cmd.arg("release")
        .args(args)
        .env("OPSDECK_DATA_DIR", data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0);
    let child = cmd.spawn()?;
    // Reap it when it ends (if we are still here); it outlives us otherwise, on purpose.
    let (log, what, results) = (
        log.to_path_buf(),
        format!("opsdeck release {}", args.join(" ")),
        results.clone(),
    );
    std::thread::spawn(move || report_exit(child, &log, &what, &results));
    Ok(())
}

/// Waits for a detached `opsdeck release` and, when it failed, says why in a toast: the
/// last line it wrote to its log (a refusal such as an unknown tag changes nothing in the
/// ledger, so nothing else would tell the dashboard). Blocking.
pub fn report_exit(
    mut child: std::process::Child,
    log: &std::path::Path,
    what: &str,
    results: &mpsc::Sender<Msg>,
) {
    let Ok(status) = child.wait() else {
        return;
    };
    if status.success() {
        return;
    }
    let why = last_line(log).unwrap_or_else(|| status.to_string());
    let _ = results.blocking_send(Msg::Done(Err(format!(
        "{what} failed: {} (its log: {})",
        why.trim_start_matches("error: "),
        log.display()
    ))));
}

/// The last non-empty line of a file, read from its end (a deploy log can be long).
fn last_line(path: &std::path::Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let (lines, _) = crate::logs::tail::read_last_lines(&mut f, len, 8);
    lines
        .iter()
        .rev()
        .map(|l| String::from_utf8_lossy(l).trim().to_string())
        .find(|l| !l.is_empty())
        .map(|l| crate::sanitize::clean_max(&l, 300))
}

/// Reads what the dashboard shows from the run history. Blocking.
pub fn load_history(history: &RunHistory, jobs: &[String]) -> Option<HistoryView> {
    history.snapshot(jobs, 10).ok().map(history_view)
}

/// The dashboard's form of a history snapshot (local or from the server).
pub fn history_view(s: crate::export::HistorySnapshot) -> HistoryView {
    HistoryView {
        runs: s.runs.into_iter().collect(),
        attempts: s.attempts.into_iter().collect(),
        saved: s
            .saved
            .into_iter()
            .map(|s| SavedExport {
                group: s.group,
                file: PathBuf::from(s.file),
                rows: s.rows,
                at: s.at,
            })
            .collect(),
    }
}

/// The details of one release: audit trail, deploy log tail, rollback targets. (What the
/// engine runs comes from `app.releases.services`, not from here: the selection drives no engine
/// reads.)
async fn load_release(
    backend: Backend,
    data_dir: &std::path::Path,
    id: i64,
    service: &str,
    tag: &str,
) -> super::msg::ReleaseDetail {
    let mut detail = super::msg::ReleaseDetail {
        id,
        ..Default::default()
    };
    let remote_log = match backend
        .release_detail(id, service.to_string(), tag.to_string())
        .await
    {
        Ok((audit, targets, log)) => {
            detail.audit = audit;
            detail.targets = targets;
            log
        }
        Err(_) => None,
    };
    let mut log = match remote_log {
        Some(l) => l,
        None => {
            let mut log = Vec::new();
            for rollback in [false, true] {
                let p = crate::release::deploy::command::log_path(data_dir, service, tag, rollback);
                if let Ok(text) = tokio::fs::read(&p).await {
                    log.extend(String::from_utf8_lossy(&text).lines().map(str::to_string));
                }
            }
            log
        }
    };
    detail.log = log.split_off(log.len().saturating_sub(super::tabs::releases::LOG_LINES));
    detail
}

/// BEL, then OSC 9 (iTerm2, Windows Terminal, kitty, foot) and OSC 777 (rxvt, VTE terminals,
/// WezTerm) with `text`: they reach the laptop's desktop through SSH. Control characters and
/// `;` (OSC 777's separator) become spaces, so the text cannot end the sequence early.
pub fn alert_sequence(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() || c == ';' { ' ' } else { c })
        .collect();
    format!("\x07\x1b]9;{text}\x07\x1b]777;notify;opsdeck;{text}\x07")
}

#[cfg(test)]
mod alert_tests {
    #[test]
    fn the_alert_is_a_bell_and_two_desktop_notifications_that_cannot_be_cut_short() {
        assert_eq!(
            super::alert_sequence("api v2 waits; \x07\x1b[2J"),
            "\x07\x1b]9;api v2 waits    [2J\x07\x1b]777;notify;opsdeck;api v2 waits    [2J\x07"
        );
    }
}

#[cfg(test)]
mod detached_tests {
    use super::*;

    /// A detached `opsdeck release` that fails says why in a toast: the last line of its
    /// log. One that succeeds says nothing (the ledger's events tell).
    #[test]
    fn a_failed_detached_release_reports_its_last_log_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("deploy.log");
        let (tx, mut rx) = mpsc::channel(4);
        let run = |script: &str| {
            let out = std::fs::File::create(&log).unwrap();
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdout(out)
                .spawn()
                .unwrap()
        };
        let child =
            run("echo 'rolling back'; echo 'error: `v1.3.2` never ran on worker'; echo; exit 2");
        report_exit(child, &log, "opsdeck release rollback 6", &tx);
        match rx.try_recv() {
            Ok(Msg::Done(Err(m))) => {
                assert!(
                    m.starts_with(
                        "opsdeck release rollback 6 failed: `v1.3.2` never ran on worker"
                    ),
                    "{m}"
                );
                assert!(m.contains("deploy.log"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        report_exit(run("echo deployed"), &log, "opsdeck release approve 8", &tx);
        assert!(rx.try_recv().is_err(), "a success is not an error toast");
    }
}
