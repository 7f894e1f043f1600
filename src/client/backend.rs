//! `Backend`: the actions the dashboard asks for, carried out by services in this process
//! (local mode: one person, one machine, the demo) or by the server (client mode). Both
//! answer with the same values; the dashboard cannot tell them apart.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::Remote;
use crate::config::Config;
use crate::events::EventTx;
use crate::export::{ExportRunnerHandle, ExportStore, HistorySnapshot, RunHistory, Trigger};
use crate::release::AuditEntry;
use crate::schedule::{CronSchedule, SchedulerCommand};

/// Why a deploy cannot be cancelled without a server.
pub const LOCAL_CANCEL: &str = "local mode has no deploy queue: a deploy runs in its own \
    process and ends on its own (roll it back once it ends); with a server, c cancels";

/// The services of local mode.
#[derive(Clone)]
pub struct LocalBackend {
    pub cfg: Arc<Config>,
    pub runner: ExportRunnerHandle,
    pub scheduler: Option<tokio::sync::mpsc::Sender<SchedulerCommand>>,
    pub store: ExportStore,
    pub history: RunHistory,
    pub events: EventTx,
    pub data_dir: PathBuf,
    pub ledger: crate::storage::LedgerAt,
    /// Local mode notifies too: changes made here are queued in this machine's outbox.
    pub notifier: Option<Arc<crate::notify::Notifier>>,
}

impl LocalBackend {
    /// Over running services; the ledger at `ledger`.
    pub fn new(
        cfg: &Config,
        services: &crate::services::Services,
        events: EventTx,
        data_dir: PathBuf,
        ledger: crate::storage::LedgerAt,
    ) -> LocalBackend {
        LocalBackend {
            cfg: Arc::new(cfg.clone()),
            runner: services.runner.clone(),
            scheduler: services.scheduler.clone(),
            store: services.store.clone(),
            history: services.history.clone(),
            events,
            data_dir,
            ledger,
            notifier: None,
        }
    }
}

/// Local or remote.
#[derive(Clone)]
pub enum Backend {
    Local(LocalBackend),
    Remote(Remote),
}

impl Backend {
    /// Starts an export of the named groups (all when empty).
    pub async fn export(&self, groups: Vec<String>) -> Result<String, String> {
        match self {
            Backend::Local(l) => {
                let g = l.cfg.select_groups(&groups)?;
                if l.runner.start(g, Trigger::Manual) {
                    Ok("export started".into())
                } else {
                    Err("the export runner is busy; try again".into())
                }
            }
            Backend::Remote(r) => r
                .http
                .post_json::<serde_json::Value>("/v1/exports", &json!({"groups": groups}))
                .await
                .map(|_| "export started in the server".into())
                .map_err(|e| e.to_string()),
        }
    }

    /// Runs a scheduled job now.
    pub async fn run_job(&self, job: String) -> Result<String, String> {
        match self {
            Backend::Local(l) => {
                if job == "export" {
                    let groups = l.cfg.testops.groups.clone();
                    if !l.runner.start(groups, Trigger::Manual) {
                        return Err("the export runner is busy; try again".into());
                    }
                    return Ok("export started".into());
                }
                // Awaited here, inside the dashboard's tracked task, so a quit waits for it
                // (it was a detached task) and the toast says what it did.
                crate::schedule::run_cleanup(
                    l.store.clone(),
                    l.history.clone(),
                    l.events.clone(),
                    l.cfg.export.retention_days,
                    job.clone(),
                    Trigger::Manual,
                )
                .await
                .map(|done| format!("{job}: {done}"))
                .map_err(|e| format!("{job} failed: {e}"))
            }
            Backend::Remote(r) => r
                .http
                .post_json::<serde_json::Value>(&format!("/v1/schedules/{job}/run"), &json!({}))
                .await
                .map(|_| format!("{job} started in the server"))
                .map_err(|e| e.to_string()),
        }
    }

    /// Pauses or resumes a job; the jobs now paused.
    pub async fn set_paused(&self, job: String, paused: bool) -> Result<BTreeSet<String>, String> {
        match self {
            Backend::Local(l) => {
                let dir = l.data_dir.clone();
                tokio::task::spawn_blocking(move || {
                    crate::schedule::set_paused(&dir, &job, paused)
                        .map_err(|e| format!("cannot save the pause in {}: {e}", dir.display()))
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Backend::Remote(r) => {
                #[derive(serde::Deserialize)]
                struct P {
                    paused: BTreeSet<String>,
                }
                let verb = if paused { "pause" } else { "resume" };
                r.http
                    .post_json::<P>(&format!("/v1/schedules/{job}/{verb}"), &json!({}))
                    .await
                    .map(|p| p.paused)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Saves a job's cron expression (checked first) where the scheduler reads it.
    pub async fn set_cron(&self, job: String, schedule: CronSchedule) -> Result<(), String> {
        match self {
            Backend::Local(l) => {
                let key = if job == "export" {
                    "schedule"
                } else {
                    "cleanup_schedule"
                };
                let Some(path) = l.cfg.path.clone() else {
                    return Err(
                        "no config file to save to: start opsdeck with --config FILE".into(),
                    );
                };
                let expr = schedule.expr().to_string();
                tokio::task::spawn_blocking(move || {
                    crate::config::edit::set_string(&path, "export", key, &expr)
                })
                .await
                .map_err(|e| e.to_string())??;
                if let Some(tx) = &l.scheduler {
                    let _ = tx
                        .send(SchedulerCommand::SetSchedule { job, schedule })
                        .await;
                }
                Ok(())
            }
            Backend::Remote(r) => r
                .http
                .put_json::<serde_json::Value>(
                    &format!("/v1/schedules/{job}"),
                    &json!({"cron": schedule.expr()}),
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    /// The run history the dashboard shows.
    pub async fn history(&self, jobs: Vec<String>) -> Result<HistorySnapshot, String> {
        match self {
            Backend::Local(l) => {
                let h = l.history.clone();
                tokio::task::spawn_blocking(move || {
                    h.snapshot(&jobs, 10).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Backend::Remote(r) => {
                #[derive(serde::Deserialize)]
                struct E {
                    history: HistorySnapshot,
                }
                r.http
                    .get_json::<E>("/v1/exports")
                    .await
                    .map(|e| e.history)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Rejects a release with a reason.
    pub async fn reject(&self, id: i64, reason: String) -> Result<String, String> {
        match self {
            Backend::Local(l) => {
                let (cfg, path, data_dir, notifier) = (
                    l.cfg.releases.clone(),
                    l.ledger.clone(),
                    l.data_dir.clone(),
                    l.notifier.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    let mut ledger =
                        crate::release::Ledger::open_at(&path).map_err(|e| e.to_string())?;
                    if let Some(n) = &notifier {
                        n.observe(&mut ledger);
                    }
                    let mut desk = crate::release::ReleaseDesk {
                        ledger,
                        cfg,
                        actor: crate::release::Actor::current(),
                        data_dir,
                        progress: Box::new(|_| {}),
                        cancel: Default::default(),
                    };
                    desk.reject(id, &reason)
                        .map(|r| format!("release {} rejected", r.id))
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Backend::Remote(r) => r
                .reject(id, &reason)
                .await
                .map(|r| format!("release {} rejected", r.id))
                .map_err(|e| e.to_string()),
        }
    }

    /// Approves (and so deploys) or rolls back a release in the server; in local mode the
    /// caller starts the detached CLI instead, so this is remote only.
    pub async fn remote_work(
        &self,
        id: i64,
        verb: &str,
        to: Option<String>,
    ) -> Result<String, String> {
        let Backend::Remote(r) = self else {
            return Err("local mode runs the CLI detached".into());
        };
        let body = match &to {
            Some(t) => json!({"to": t}),
            None => json!({}),
        };
        r.start_work(id, verb, body)
            .await
            .map(|rel| match verb {
                "approve" => format!(
                    "release {id} approved: deploying {} in the server",
                    rel.release_tag
                ),
                "rollback" => format!(
                    "release {id}: rolling back to {} in the server",
                    to.unwrap_or_default()
                ),
                "deploy" => format!("release {id}: deploying {} in the server", rel.release_tag),
                _ => format!("release {id}: {verb} started in the server"),
            })
            .map_err(|e| e.to_string())
    }

    /// A release's audit trail, its rollback targets and, remotely, the server's deploy log.
    pub async fn release_detail(
        &self,
        id: i64,
        service: String,
        tag: String,
    ) -> Result<
        (
            Vec<AuditEntry>,
            Vec<crate::release::targets::RollbackTarget>,
            Option<Vec<String>>,
        ),
        String,
    > {
        match self {
            Backend::Local(l) => {
                let path = l.ledger.clone();
                let release = {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || {
                        crate::release::Ledger::open_at(&path).and_then(|l| l.get(id))
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?
                };
                let engine = match &release {
                    Some(r) => crate::release::targets::engine_tags(&l.cfg.releases, r).await,
                    None => Vec::new(),
                };
                tokio::task::spawn_blocking(move || {
                    let ledger =
                        crate::release::Ledger::open_at(&path).map_err(|e| e.to_string())?;
                    let audit = ledger.audit(id).map_err(|e| e.to_string())?;
                    let r = release.ok_or_else(|| format!("no release {service} {tag} ({id})"))?;
                    let targets = crate::release::targets::rollback_targets(&ledger, &r, &engine)
                        .map_err(|e| e.to_string())?;
                    Ok((audit, targets, None))
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Backend::Remote(r) => {
                #[derive(serde::Deserialize)]
                struct D {
                    audit: Vec<AuditEntry>,
                    #[serde(default)]
                    log: Vec<String>,
                }
                let d: D = r
                    .http
                    .get_json(&format!("/v1/releases/{id}"))
                    .await
                    .map_err(|e| e.to_string())?;
                let targets = r.targets(id).await.map_err(|e| e.to_string())?;
                Ok((d.audit, targets, Some(d.log)))
            }
        }
    }

    /// Cancels a release's queued deploy, or stops a running one (the server rolls the
    /// service back). Only a server queues deploys: local mode says so.
    pub async fn cancel(&self, id: i64) -> Result<String, String> {
        let Backend::Remote(r) = self else {
            return Err(LOCAL_CANCEL.into());
        };
        r.http
            .post_json::<serde_json::Value>(&format!("/v1/releases/{id}/cancel"), &json!({}))
            .await
            .map(|v| {
                if v["rolling_back"].as_bool() == Some(true) {
                    format!("release {id}: deploy stopped; the server rolls the service back")
                } else {
                    format!("release {id}: queued deploy cancelled; it stays approved")
                }
            })
            .map_err(|e| e.to_string())
    }
}
