//! `Effects`: carries out the commands `update` returns. Nothing here blocks the UI task:
//! service calls use non-blocking sends, file and database work runs on blocking threads,
//! and results come back as messages.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use tokio::sync::mpsc;

use super::app::{Cmd, HistoryView, Msg, SavedExport};
use crate::config::Config;
use crate::events::EventTx;
use crate::export::{ExportRunnerHandle, ExportStore, RunHistory, Trigger};
use crate::schedule::{CronSchedule, SchedulerCommand};

/// What the loop must do itself because it owns the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspend {
    /// Leave the screen, run `$PAGER` on the file, come back.
    Pager(PathBuf),
}

/// The command executor.
pub struct Effects {
    pub cfg: Arc<Config>,
    pub runner: ExportRunnerHandle,
    pub scheduler: Option<mpsc::Sender<SchedulerCommand>>,
    pub store: ExportStore,
    pub history: RunHistory,
    pub events: EventTx,
    pub results: mpsc::Sender<Msg>,
    /// Where OSC 52 copy sequences go (the terminal; a buffer in tests).
    pub clipboard: Box<dyn Write + Send>,
    pub job_names: Vec<String>,
}

impl Effects {
    /// Starts one command; returns a suspension the loop has to perform itself.
    pub fn run(&mut self, cmd: Cmd) -> Option<Suspend> {
        match cmd {
            Cmd::Export(names) => {
                let groups = match self.cfg.select_groups(&names) {
                    Ok(g) => g,
                    Err(e) => return self.reply(Msg::Done(Err(e))),
                };
                if !self.runner.start(groups, Trigger::Manual) {
                    return self.reply(Msg::Done(Err(
                        "the export runner is busy; try again".into()
                    )));
                }
            }
            Cmd::RunCleanup => {
                tokio::spawn(crate::schedule::run_cleanup(
                    self.store.clone(),
                    self.history.clone(),
                    self.events.clone(),
                    self.cfg.export.retention_days,
                    "cleanup".into(),
                    Trigger::Manual,
                ));
                return self.reply(Msg::Done(Ok("cleanup started".into())));
            }
            Cmd::SetPaused { job, paused } => {
                let dir = self.store.dir().to_path_buf();
                let results = self.results.clone();
                tokio::task::spawn_blocking(move || {
                    let msg = match crate::schedule::set_paused(&dir, &job, paused) {
                        Ok(set) => {
                            let _ = results.blocking_send(Msg::Paused(set));
                            Ok(format!(
                                "{job} {}",
                                if paused { "paused" } else { "resumed" }
                            ))
                        }
                        Err(e) => Err(format!("cannot save the pause in {}: {e}", dir.display())),
                    };
                    let _ = results.blocking_send(Msg::Done(msg));
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
            Cmd::LoadHistory => {
                let history = self.history.clone();
                let results = self.results.clone();
                let jobs = self.job_names.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(view) = load_history(&history, &jobs) {
                        let _ = results.blocking_send(Msg::History(view));
                    }
                });
            }
        }
        None
    }

    fn reply(&self, msg: Msg) -> Option<Suspend> {
        let _ = self.results.try_send(msg);
        None
    }

    fn save_cron(&mut self, job: String, expr: String) {
        let key = if job == "export" {
            "schedule"
        } else {
            "cleanup_schedule"
        };
        let Some(path) = self.cfg.path.clone() else {
            let _ = self.results.try_send(Msg::Done(Err(
                "no config file to save to: start opsdeck with --config FILE".into(),
            )));
            return;
        };
        let tz = self.cfg.export.schedule.timezone();
        let results = self.results.clone();
        let scheduler = self.scheduler.clone();
        let env_wins = job == "export" && crate::config::process_env("CRON_SCHEDULE").is_some();
        tokio::task::spawn_blocking(move || {
            let saved = CronSchedule::parse(&expr, Some(tz)).and_then(|s| {
                crate::config::edit::set_string(&path, "export", key, &expr).map(|()| s)
            });
            match saved {
                Ok(schedule) => {
                    if let Some(tx) = scheduler {
                        let _ = tx.blocking_send(SchedulerCommand::SetSchedule {
                            job: job.clone(),
                            schedule: schedule.clone(),
                        });
                    }
                    let _ = results.blocking_send(Msg::CronSaved { job, schedule });
                    if env_wins {
                        let _ = results.blocking_send(Msg::Done(Err(
                            "saved, but CRON_SCHEDULE in the environment overrides it at the next start".into(),
                        )));
                    }
                }
                Err(e) => {
                    let _ = results.blocking_send(Msg::Done(Err(format!("not saved: {e}"))));
                }
            }
        });
    }
}

/// Reads what the dashboard shows from the run history. Blocking.
pub fn load_history(history: &RunHistory, jobs: &[String]) -> Option<HistoryView> {
    let mut runs = HashMap::new();
    let mut attempts = HashMap::new();
    for job in jobs {
        let recent = history.recent_runs(job, 10).ok()?;
        for r in &recent {
            if let Ok(n) = history.attempt_count(r.id)
                && n > 0
            {
                attempts.insert(r.id, n);
            }
        }
        runs.insert(job.clone(), recent);
    }
    let saved = history
        .saved_exports(20_000)
        .ok()?
        .into_iter()
        .map(|s| SavedExport {
            group: s.group,
            file: PathBuf::from(s.file),
            rows: s.rows,
            at: s.at,
        })
        .collect();
    Some(HistoryView {
        runs,
        attempts,
        saved,
    })
}
