//! Starts the export services from a configuration: runner, scheduler, watcher. Shared by the
//! headless commands and the dashboard, so every front end runs the same stack.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::EventTx;
use crate::export::{
    ExportDirWatcher, ExportJob, ExportRunner, ExportRunnerHandle, ExportStore, RunHistory,
};
use crate::schedule::{FiredStore, JobKind, JobSpec, Scheduler, SchedulerCommand};
use crate::testops::{TestOpsClient, TestOpsSettings};

/// Which optional services to run.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSet {
    pub scheduler: bool,
    pub watcher: bool,
    /// TestOps reachability and free disk space, for the status bar.
    pub health: bool,
    /// Start without TestOps settings (the dashboard): exports then fail with the reason,
    /// and everything else works.
    pub exports_optional: bool,
}

/// The running services.
pub struct Services {
    pub runner: ExportRunnerHandle,
    /// Commands for the scheduler, when it runs.
    pub scheduler: Option<tokio::sync::mpsc::Sender<SchedulerCommand>>,
    pub store: ExportStore,
    pub history: RunHistory,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// The scheduled jobs of a configuration.
pub fn jobs(cfg: &Config) -> Vec<JobSpec> {
    vec![
        JobSpec {
            name: "export".into(),
            kind: JobKind::Export,
            schedule: cfg.export.schedule.clone(),
            since: None,
        },
        JobSpec {
            name: "cleanup".into(),
            kind: JobKind::Cleanup,
            schedule: cfg.export.cleanup_schedule.clone(),
            since: None,
        },
    ]
}

impl Services {
    /// Starts the services with their files in `data_dir` (history); errors name what is
    /// missing (URL, token, unwritable directory).
    pub fn start(
        cfg: &Config,
        data_dir: &Path,
        events: EventTx,
        set: ServiceSet,
    ) -> anyhow::Result<Services> {
        Self::start_led(cfg, data_dir, events, set, None)
    }

    /// `start`, with the scheduler following a PostgreSQL election (`opsdeck run` with
    /// `storage.url`): it runs only while `leadership` says this server leads, and records
    /// fired instants in the database.
    pub fn start_led(
        cfg: &Config,
        data_dir: &Path,
        events: EventTx,
        set: ServiceSet,
        leadership: Option<tokio::sync::watch::Receiver<crate::storage::leader::Role>>,
    ) -> anyhow::Result<Services> {
        let client = match TestOpsSettings::from_config(cfg)
            .map_err(|e| e.to_string())
            .and_then(|s| TestOpsClient::new(s).map_err(|e| e.to_string()))
        {
            Ok(c) => Ok(Arc::new(c)),
            Err(e) if set.exports_optional => Err(e),
            Err(e) => anyhow::bail!(e),
        };
        let store = ExportStore::of(&cfg.export);
        // Without TestOps settings there is nothing to export: the directory is not created
        // (`opsdeck logs FILE` run anywhere must not leave an `exports` folder behind).
        if client.is_ok() {
            store.ensure_writable().with_context(|| {
                format!("export.dir {} is not writable", cfg.export.dir.display())
            })?;
        }
        let (history, notice) = match &cfg.storage {
            // Shared by every server on the database: `/v1/exports` lists the runs of all.
            Some(pg) => (
                RunHistory::open_pg(pg)
                    .with_context(|| format!("cannot open the run history in {pg}"))?,
                None,
            ),
            None => {
                let history_path = data_dir.join(crate::paths::HISTORY_DB);
                crate::export::recovery::open_history(&history_path).with_context(|| {
                    format!("cannot open the run history {}", history_path.display())
                })?
            }
        };
        crate::export::recovery::start_notices(notice, &store, &events);
        let cancel = CancellationToken::new();
        let client = match client {
            Ok(c) => c,
            Err(reason) => {
                let runner = ExportRunner::spawn_disabled(
                    reason.clone(),
                    events.clone(),
                    cancel.child_token(),
                );
                let mut tasks = vec![runner.1];
                if set.health {
                    tasks.push(crate::health::spawn(
                        None,
                        cfg.export.dir.clone(),
                        events,
                        cancel.child_token(),
                    ));
                }
                return Ok(Services {
                    runner: runner.0,
                    scheduler: None,
                    store,
                    history,
                    cancel,
                    tasks,
                });
            }
        };
        let job = ExportJob {
            client: client.clone(),
            store: store.clone(),
            history: history.clone(),
            mapping: Arc::new(cfg.testops.mapping.clone()),
            max_attempts: cfg.export.max_attempts,
            retry_delays: cfg.export.retry_delays.clone(),
            events: events.clone(),
            limits: crate::export::DownloadLimits::from_config(cfg),
        };
        let (runner, runner_task) =
            ExportRunner::spawn(job, cfg.export.retention_days, cancel.child_token());
        let mut tasks = vec![runner_task];
        let mut scheduler_tx = None;
        if set.scheduler {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            scheduler_tx = Some(tx);
            let scheduler = Scheduler {
                jobs: jobs(cfg),
                groups: cfg.testops.groups.clone(),
                store: store.clone(),
                state_dir: data_dir.to_path_buf(),
                retention_days: cfg.export.retention_days,
                catch_up: cfg.export.catch_up,
                runner: runner.clone(),
                history: history.clone(),
                events: events.clone(),
                lock_retry: Duration::from_secs(10),
                fired: match (&leadership, &cfg.storage) {
                    (Some(_), Some(pg)) => FiredStore::Postgres(pg.clone()),
                    _ => FiredStore::StateDir(data_dir.to_path_buf()),
                },
                leadership,
                commands: Some(rx),
            };
            tasks.push(scheduler.spawn(cancel.child_token()));
        }
        if set.watcher {
            let w = ExportDirWatcher::spawn(
                store.clone(),
                Duration::from_millis(300),
                events.clone(),
                cancel.child_token(),
            )
            .context("cannot watch the export directory")?;
            tasks.push(w);
        }
        if set.health {
            tasks.push(crate::health::spawn(
                Some(client),
                cfg.export.dir.clone(),
                events,
                cancel.child_token(),
            ));
        }
        Ok(Services {
            runner,
            scheduler: scheduler_tx,
            store,
            history,
            cancel,
            tasks,
        })
    }

    /// Cancels running exports (their temporary files are removed) and waits for every task.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
