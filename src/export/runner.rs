//! `ExportRunner`: the export service. Takes export requests through a handle, runs each
//! group at most once at a time, records runs, applies retention after a successful run, and
//! cancels everything cleanly on shutdown.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::job::{ExportEvent, ExportJob, Trigger};
use crate::config::Group;
use crate::events::Event;

/// What one export run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunOutcome {
    pub run_id: Option<i64>,
    /// Saved files by group.
    pub saved: Vec<(String, PathBuf)>,
    /// Failures by group, with the reason.
    pub failed: Vec<(String, String)>,
    /// Groups not started because an export of them was already running.
    pub skipped: Vec<String>,
}

impl RunOutcome {
    /// True when every requested group was saved.
    pub fn all_saved(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.saved.is_empty()
    }
}

enum Command {
    Export {
        groups: Vec<Group>,
        trigger: Trigger,
        reply: Option<oneshot::Sender<RunOutcome>>,
    },
}

/// Sends requests to the export runner.
#[derive(Clone)]
pub struct ExportRunnerHandle {
    tx: mpsc::Sender<Command>,
}

impl ExportRunnerHandle {
    /// Starts an export of `groups` and returns without waiting. `false` when the runner is
    /// gone or its queue is full (the caller shows "busy"; it never blocks).
    pub fn start(&self, groups: Vec<Group>, trigger: Trigger) -> bool {
        self.tx
            .try_send(Command::Export {
                groups,
                trigger,
                reply: None,
            })
            .is_ok()
    }

    /// Exports `groups` and waits for the outcome.
    pub async fn export(&self, groups: Vec<Group>, trigger: Trigger) -> RunOutcome {
        let (reply, rx) = oneshot::channel();
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        if self
            .tx
            .send(Command::Export {
                groups,
                trigger,
                reply: Some(reply),
            })
            .await
            .is_err()
        {
            return stopped(names);
        }
        rx.await.unwrap_or_else(|_| stopped(names))
    }
}

fn stopped(names: Vec<String>) -> RunOutcome {
    RunOutcome {
        failed: names
            .into_iter()
            .map(|n| (n, "opsdeck is shutting down".into()))
            .collect(),
        ..Default::default()
    }
}

/// The export service task.
pub struct ExportRunner {
    job: Arc<ExportJob>,
    retention_days: u32,
    cancel: CancellationToken,
}

impl ExportRunner {
    /// Spawns the runner; it stops when `cancel` fires, after cancelling running exports.
    pub fn spawn(
        job: ExportJob,
        retention_days: u32,
        cancel: CancellationToken,
    ) -> (ExportRunnerHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16);
        let runner = ExportRunner {
            job: Arc::new(job),
            retention_days,
            cancel,
        };
        (ExportRunnerHandle { tx }, tokio::spawn(runner.run(rx)))
    }

    /// A runner for a configuration without TestOps settings: every export fails at once
    /// with `reason`, so the dashboard still works for everything else.
    pub fn spawn_disabled(
        reason: String,
        events: crate::events::EventTx,
        cancel: CancellationToken,
    ) -> (ExportRunnerHandle, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Command>(16);
        let task = tokio::spawn(async move {
            loop {
                let cmd = tokio::select! {
                    () = cancel.cancelled() => return,
                    cmd = rx.recv() => match cmd { Some(c) => c, None => return },
                };
                let Command::Export { groups, reply, .. } = cmd;
                let error = format!("exports are not configured: {reason}");
                for g in &groups {
                    let _ = events
                        .send(Event::Export(ExportEvent::Failed {
                            run_id: -1,
                            group: g.name.clone(),
                            error: error.clone(),
                            attempts: 0,
                        }))
                        .await;
                }
                if let Some(r) = reply {
                    let _ = r.send(RunOutcome {
                        failed: groups
                            .into_iter()
                            .map(|g| (g.name, error.clone()))
                            .collect(),
                        ..Default::default()
                    });
                }
            }
        });
        (ExportRunnerHandle { tx }, task)
    }

    async fn run(self, mut rx: mpsc::Receiver<Command>) {
        let mut running: HashSet<String> = HashSet::new();
        let mut tasks: JoinSet<Vec<String>> = JoinSet::new();
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(groups) = done {
                        for g in groups {
                            running.remove(&g);
                        }
                    }
                }
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Command::Export { groups, trigger, reply }) => {
                        let (todo, busy): (Vec<_>, Vec<_>) =
                            groups.into_iter().partition(|g| !running.contains(&g.name));
                        for g in &busy {
                            tracing::info!(group = %g.name, "export not started: one is already running");
                            let _ = self.job.events.send(Event::Export(ExportEvent::Skipped {
                                group: g.name.clone(),
                                reason: "an export of this group is already running".into(),
                            })).await;
                        }
                        let skipped: Vec<String> = busy.into_iter().map(|g| g.name).collect();
                        if todo.is_empty() {
                            if let Some(r) = reply {
                                let _ = r.send(RunOutcome { skipped, ..Default::default() });
                            }
                            continue;
                        }
                        running.extend(todo.iter().map(|g| g.name.clone()));
                        let job = self.job.clone();
                        let cancel = self.cancel.child_token();
                        let retention_days = self.retention_days;
                        tasks.spawn(async move {
                            let names = todo.iter().map(|g| g.name.clone()).collect();
                            let mut outcome = run_groups(&job, todo, trigger, &cancel).await;
                            outcome.skipped = skipped;
                            if !outcome.saved.is_empty() {
                                apply_retention(&job, retention_days).await;
                            }
                            if let Some(r) = reply {
                                let _ = r.send(outcome);
                            }
                            names
                        });
                    }
                },
            }
        }
        // Cancelled: running attempts drop their temporary files; wait for them to finish.
        self.cancel.cancel();
        while tasks.join_next().await.is_some() {}
    }
}

async fn run_groups(
    job: &ExportJob,
    groups: Vec<Group>,
    trigger: Trigger,
    cancel: &CancellationToken,
) -> RunOutcome {
    let run_id = job
        .history
        .start_run("export", trigger.label(), trigger.scheduled_for())
        .unwrap_or_else(|e| {
            tracing::warn!("cannot record the run in the run history: {e}");
            -1
        });
    tracing::info!(
        trigger = trigger.label(),
        "export run started for {} group(s)",
        groups.len()
    );
    let results =
        futures_util::future::join_all(groups.iter().map(|g| job.run_group(run_id, g, cancel)))
            .await;
    let mut outcome = RunOutcome {
        run_id: Some(run_id),
        ..Default::default()
    };
    for (g, r) in groups.iter().zip(results) {
        match r {
            Ok((path, _)) => outcome.saved.push((g.name.clone(), path)),
            Err(e) => outcome.failed.push((g.name.clone(), e)),
        }
    }
    let result = if outcome.failed.is_empty() {
        "ok"
    } else {
        "failed"
    };
    let detail = outcome
        .failed
        .iter()
        .map(|(g, e)| format!("{g}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    let _ = job.history.finish_run(
        run_id,
        result,
        (!detail.is_empty()).then_some(detail.as_str()),
    );
    let _ = job
        .events
        .send(Event::Export(ExportEvent::RunFinished {
            run_id,
            trigger,
            saved: outcome.saved.len(),
            failed: outcome.failed.len(),
        }))
        .await;
    outcome
}

/// Deletes old exports after a successful run (as the old exporter did).
pub(crate) async fn apply_retention(job: &ExportJob, days: u32) {
    let store = job.store.clone();
    match tokio::task::spawn_blocking(move || store.apply_retention(days, Utc::now())).await {
        Ok(Ok(files)) if !files.is_empty() => {
            let _ = job
                .events
                .send(Event::RetentionDeleted {
                    files,
                    at: Utc::now(),
                })
                .await;
        }
        Ok(Err(e)) => tracing::warn!("retention: cannot list the export directory: {e}"),
        _ => {}
    }
}
