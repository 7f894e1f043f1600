//! `Effects`: carries out the commands `update` returns. Nothing here blocks the UI task:
//! service calls use non-blocking sends, file and database work runs on blocking threads,
//! and results come back as messages.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use tokio::sync::mpsc;

use super::app::{Cmd, HistoryView, Msg, SavedExport};
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
    /// Cancels the running whole-file log search.
    pub search_cancel: Arc<std::sync::atomic::AtomicBool>,
    /// Adds log sources (the deploy log of a selected release).
    pub log_tailer: Option<crate::logs::LogTailerHandle>,
    /// Releases whose deploy log is already a source.
    pub followed_deploys: std::collections::HashSet<i64>,
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
            search_cancel: Default::default(),
            log_tailer,
            followed_deploys: Default::default(),
        }
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
                tokio::task::spawn_blocking(move || {
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
                tokio::task::spawn_blocking(move || {
                    crate::export::preview::stream_preview(&path, 500_000, |batch| {
                        results
                            .blocking_send(Msg::Preview { generation, batch })
                            .is_ok()
                    });
                });
            }
            Cmd::Diff {
                old,
                new,
                generation,
            } => {
                let results = self.results.clone();
                tokio::task::spawn_blocking(move || {
                    let result = crate::export::diff::diff_files(&old, &new);
                    let _ = results.blocking_send(Msg::Diff { generation, result });
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
            Cmd::LoadRelease { id, service, tag } => {
                if let Backend::Local(_) = self.backend {
                    self.follow_deploy_log(id, &service, &tag, false);
                }
                let (b, data_dir) = (self.backend.clone(), self.data_dir.clone());
                self.call(async move {
                    Msg::ReleaseDetail(load_release(b, &data_dir, id, &service, &tag).await)
                });
            }
            Cmd::CancelSearch => self
                .search_cancel
                .store(true, std::sync::atomic::Ordering::Relaxed),
            Cmd::SearchFile {
                spec,
                pattern,
                generation,
            } => {
                self.search_cancel
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
                self.search_cancel = cancel.clone();
                let results = self.results.clone();
                tokio::task::spawn_blocking(move || {
                    super::logs::search_task(&spec, &pattern, generation, &cancel, &results)
                });
            }
            Cmd::ReadContext { spec, offset } => {
                let results = self.results.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = results
                        .blocking_send(Msg::MatchContext(super::logs::context_task(&spec, offset)));
                });
            }
            Cmd::SaveLog { name, lines } => {
                let path = saved_log_path(&self.data_dir, &name);
                let results = self.results.clone();
                tokio::task::spawn_blocking(move || {
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
            Cmd::LoadHistory => {
                let (b, jobs) = (self.backend.clone(), self.job_names.clone());
                let results = self.results.clone();
                tokio::spawn(async move {
                    if let Ok(snap) = b.history(jobs).await {
                        let _ = results.send(Msg::History(history_view(snap))).await;
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
        let exists = crate::logs::tail::resolve(&spec).is_some();
        if let Some(t) = &self.log_tailer
            && (starting || exists)
            && self.followed_deploys.insert(id)
        {
            t.add(crate::logs::LogSource::file(
                format!("deploy {service} {tag}"),
                spec,
            ));
        }
    }

    /// Runs `opsdeck release ARGS` in its own process group, so the deploy goes on when the
    /// dashboard quits or the SSH connection drops; its output goes to the deploy log.
    fn detached(&self, args: &[&str], service: &str, tag: &str, rollback: bool) {
        let log = crate::release::deploy::command::log_path(&self.data_dir, service, tag, rollback);
        let started = (|| -> std::io::Result<()> {
            let out = crate::private::append(&log)?;
            let mut cmd = std::process::Command::new(std::env::current_exe()?);
            if let Some(p) = &self.cfg.path {
                cmd.arg("--config").arg(p);
            }
            use std::os::unix::process::CommandExt;
            cmd.arg("release")
                .args(args)
                .env("OPSDECK_DATA_DIR", &self.data_dir)
                .stdin(std::process::Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .process_group(0);
            let mut child = cmd.spawn()?;
            // Reap it when it ends (if we are still here); it outlives us otherwise.
            std::thread::spawn(move || child.wait());
            Ok(())
        })();
        if let Err(e) = started {
            let _ = self.results.try_send(Msg::Done(Err(format!(
                "cannot start opsdeck release {}: {e}",
                args.join(" ")
            ))));
        }
    }

    fn reply(&self, msg: Msg) -> Option<Suspend> {
        let _ = self.results.try_send(msg);
        None
    }

    /// Runs `f` off the UI task and sends its message back.
    fn call(&self, f: impl std::future::Future<Output = Msg> + Send + 'static) {
        let results = self.results.clone();
        tokio::spawn(async move {
            let _ = results.send(f.await).await;
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
        tokio::spawn(async move {
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
/// engine runs comes from `app.services`, not from here: the selection drives no engine
/// reads.)
async fn load_release(
    backend: Backend,
    data_dir: &std::path::Path,
    id: i64,
    service: &str,
    tag: &str,
) -> super::app::ReleaseDetail {
    let mut detail = super::app::ReleaseDetail {
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
    detail.log = log.split_off(log.len().saturating_sub(super::releases::LOG_LINES));
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
