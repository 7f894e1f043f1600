//! `ReleaseDesk`: the release actions (create, CI status, approve, reject, roll back,
//! reconcile) over the ledger and the configured deployer. Used by the CLI; the dashboard
//! runs the CLI detached, so a deploy outlives the dashboard.

use std::path::PathBuf;

use super::actor::{Actor, may_act, valid_tag};
use super::deploy::command::{self, CommandVars};
use super::deploy::health;
use super::deploy::{ServiceState, SwarmDeployer};
use super::ledger::{Ledger, LedgerError, NewRelease, Release, WorkHold};
use super::lifecycle::Status;
use crate::config::{DeployerKind, OnFailure, ReleaseService, ReleasesConfig};

/// Why a release action did not happen or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// Bad input: nothing was written (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// No such release (exit 2).
    #[error("{0}")]
    NotFound(String),
    /// The release is not in a status that allows this, e.g. someone else acted first; says
    /// the current status, who and when (exit 2: nothing was written).
    #[error("{0}")]
    Conflict(String),
    /// Not allowed: refused, and the refusal audited (exit 4).
    #[error("{0}")]
    Refused(String),
    /// The action was valid but failed, e.g. the deploy (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl From<LedgerError> for DeskError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound(_) => DeskError::NotFound(e.to_string()),
            LedgerError::Forbidden { .. } => DeskError::Conflict(e.to_string()),
            LedgerError::Sql(_) | LedgerError::Postgres(_) => DeskError::Failed(e.to_string()),
        }
    }
}

/// The desk.
pub struct ReleaseDesk {
    pub ledger: Ledger,
    pub cfg: ReleasesConfig,
    pub actor: Actor,
    pub data_dir: PathBuf,
    /// Progress lines for the person waiting (the CLI prints them).
    pub progress: Box<dyn FnMut(&str) + Send>,
    /// Fired when someone cancels the running deploy: the service is rolled back.
    pub cancel: tokio_util::sync::CancellationToken,
}

impl ReleaseDesk {
    fn say(&mut self, line: &str) {
        (self.progress)(line);
        tracing::info!("{line}");
    }

    fn service(&self, name: &str) -> Result<&ReleaseService, DeskError> {
        self.cfg.service(name).ok_or_else(|| {
            let known: Vec<_> = self.cfg.services.iter().map(|s| s.name.as_str()).collect();
            DeskError::Invalid(format!(
                "service `{name}` is not configured; configured services: {} (add a [[releases.services]] entry)",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            ))
        })
    }

    fn require_approver(&mut self, id: i64, what: &str) -> Result<Release, DeskError> {
        let release = self
            .ledger
            .get(id)?
            .ok_or(DeskError::NotFound(format!("no release with id {id}")))?;
        if !may_act(&self.cfg.approvers, self.actor.person()) {
            let note = format!(
                "refused {what}: {} is not in releases.approvers",
                self.actor.person()
            );
            self.ledger.record_refusal(id, &self.actor, &note)?;
            return Err(DeskError::Refused(format!(
                "{note} ({}); the refusal is recorded in the audit trail",
                self.cfg.approvers.join(", ")
            )));
        }
        Ok(release)
    }

    /// `release create`. The image repository is resolved and stored with the release, so
    /// the approver sees exactly what will run.
    pub fn create(&mut self, mut new: NewRelease) -> Result<Release, DeskError> {
        no_option_like(&[
            ("service", Some(&new.service_name)),
            ("image", new.image.as_ref()),
            ("initiated-by", new.initiated_by.as_ref()),
            ("github-run-id", new.github_run_id.as_ref()),
            ("github-link", new.github_action_link.as_ref()),
            ("github-ref", new.github_ref.as_ref()),
        ])?;
        let service = self.service(&new.service_name)?.clone();
        let default_repo = service
            .repository
            .clone()
            .unwrap_or_else(|| service.name.clone());
        match &new.image {
            Some(img) if *img != default_repo && !service.allowed_repositories.contains(img) => {
                return Err(DeskError::Invalid(format!(
                    "--image `{img}` is not a repository of service {}: allowed are {} (releases.services.allowed_repositories)",
                    service.name,
                    std::iter::once(default_repo.as_str())
                        .chain(service.allowed_repositories.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Some(_) => {}
            None => new.image = Some(default_repo),
        }
        if !valid_tag(&new.release_tag) {
            return Err(DeskError::Invalid(format!(
                "`{}` is not a valid tag: [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}",
                new.release_tag
            )));
        }
        if let Some(s) = new.status.filter(|s| {
            !matches!(
                s,
                Status::Initiated | Status::Building | Status::ManualTesting
            )
        }) {
            return Err(DeskError::Invalid(format!(
                "a release starts as initiated, building or manual_testing, not {s}"
            )));
        }
        Ok(self.ledger.create(&new, &self.actor)?)
    }

    /// `release status ID STATUS`: CI's own steps only.
    pub fn ci_status(
        &mut self,
        id: i64,
        to: Status,
        note: Option<&str>,
    ) -> Result<Release, DeskError> {
        no_option_like(&[("note", note.map(str::to_string).as_ref())])?;
        if !matches!(
            to,
            Status::Building | Status::ManualTesting | Status::StagingFailed
        ) {
            return Err(DeskError::Invalid(format!(
                "`release status` sets building, manual_testing or staging_failed; use approve, reject or rollback for {to}"
            )));
        }
        Ok(self.ledger.transition(id, to, &self.actor, note, None)?)
    }

    /// A lock held while this process deploys or rolls back release `id`: reconciliation
    /// leaves releases alone whose lock someone holds. A file in the state dir, and on
    /// PostgreSQL also a session lock every server sharing the ledger sees.
    fn work_lock(&self, id: i64) -> Result<WorkGuard, DeskError> {
        let dir = self.data_dir.join("deployments");
        crate::private::create_dir(&dir)
            .map_err(|e| DeskError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let f = crate::private::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!(".release-{id}.lock")))
            .map_err(|e| DeskError::Failed(e.to_string()))?;
        let busy = || {
            DeskError::Invalid(format!(
                "release {id} is being worked on by another process"
            ))
        };
        f.try_lock().map_err(|_| busy())?;
        let shared = match self.ledger.hold_work(id)? {
            WorkHold::Busy => return Err(busy()),
            WorkHold::NotShared => None,
            WorkHold::Held(h) => Some(h),
        };
        Ok(WorkGuard {
            _file: f,
            _shared: shared,
        })
    }

    fn in_progress_elsewhere(&self, id: i64) -> bool {
        let path = self
            .data_dir
            .join("deployments")
            .join(format!(".release-{id}.lock"));
        let here = match crate::private::options().write(true).open(path) {
            Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        };
        // When the shared lock cannot be read, assume it is held: settling a deploy that is
        // still running would be worse than settling it later.
        here || self.ledger.work_held(id).unwrap_or(true)
    }

    /// `release approve`: manual_testing → manual_test_passed → deploying → deployed or
    /// production_failed.
    pub async fn approve(&mut self, id: i64) -> Result<Release, DeskError> {
        self.approve_verdict(id)?;
        self.deploy_approved(id).await
    }

    /// The verdict alone: manual_testing → manual_test_passed, as a compare-and-set, so a
    /// concurrent approver learns who won and when.
    pub fn approve_verdict(&mut self, id: i64) -> Result<Release, DeskError> {
        let release = self.require_approver(id, "approve")?;
        self.service(&release.service_name)?;
        let r = self.ledger.transition(
            id,
            Status::ManualTestPassed,
            &self.actor,
            Some("approved"),
            None,
        )?;
        self.say(&format!("release {id}: approved by {}", self.actor));
        Ok(r)
    }

    /// `release deploy`: an approved release deployed again (a cancelled queued deploy, or one
    /// that never reached the engine). Approvers only, as approving.
    pub async fn deploy(&mut self, id: i64) -> Result<Release, DeskError> {
        self.require_approver(id, "deploy")?;
        self.deploy_approved(id).await
    }

    /// Deploys an approved release: manual_test_passed → deploying → deployed or
    /// production_failed.
    pub async fn deploy_approved(&mut self, id: i64) -> Result<Release, DeskError> {
        let release = self
            .ledger
            .get(id)?
            .ok_or(DeskError::NotFound(format!("no release with id {id}")))?;
        let service = self.service(&release.service_name)?.clone();
        // A deploy that cannot reach the engine never starts: the release stays approved and
        // `release deploy` tries again, instead of a production_failed that nothing can retry.
        if self.cfg.deployer == DeployerKind::Swarm {
            let image = image_of(&service, release.image.as_deref(), &release.release_tag);
            let ready = match SwarmDeployer::connect().await {
                Ok(s) => match s.can_update(&service.swarm_service).await {
                    Ok(()) => s.image_available(&image).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = ready {
                self.ledger.record_note(
                    id,
                    &self.actor,
                    crate::release::AuditKind::NotDeployed,
                    &e,
                )?;
                return Err(DeskError::Failed(format!(
                    "release {id} was not deployed and stays approved: {e}; `opsdeck release deploy {id}` once the engine answers"
                )));
            }
        }
        // The work lock is held before the status becomes deploying, so reconciliation never
        // races it.
        let _lock = self.work_lock(id)?;
        let release = self
            .ledger
            .transition(id, Status::Deploying, &self.actor, None, None)?;
        let image = image_of(&service, release.image.as_deref(), &release.release_tag);
        self.say(&format!(
            "release {id}: deploying {image} to {}",
            service.swarm_service
        ));
        let result = self.run_deployer(&service, &release, &image, false).await;
        self.finish(id, result, Status::Deployed, Status::ProductionFailed)
    }

    /// `release reject`.
    pub fn reject(&mut self, id: i64, reason: &str) -> Result<Release, DeskError> {
        if reason.trim().is_empty() {
            return Err(DeskError::Invalid(
                "a rejection needs a reason (--reason TEXT)".into(),
            ));
        }
        no_option_like(&[("reason", Some(&reason.to_string()))])?;
        self.require_approver(id, "reject")?;
        Ok(self.ledger.transition(
            id,
            Status::ManualTestFailed,
            &self.actor,
            Some(reason),
            None,
        )?)
    }

    /// The tags a release could be rolled back to, from the ledger alone (newest deploy
    /// first).
    pub fn rollback_targets(
        &self,
        release: &Release,
    ) -> Result<Vec<super::targets::RollbackTarget>, DeskError> {
        Ok(super::targets::rollback_targets(
            &self.ledger,
            release,
            &[],
        )?)
    }

    /// `release rollback`: deployed | production_failed → rollback → rollback_done or
    /// rollback_failed, to `to` or the service's previous deployed tag.
    pub async fn rollback(
        &mut self,
        id: i64,
        to: Option<&str>,
        force: bool,
    ) -> Result<Release, DeskError> {
        let engine = match (to, force) {
            (Some(_), false) => self.engine_tags(id).await,
            _ => Vec::new(),
        };
        let _lock = self.work_lock(id)?;
        self.begin_rollback(id, to, force, &engine)?;
        self.run_rollback(id).await
    }

    /// Tags the engine knows for a release's service (its current spec, the repository's
    /// images on this manager); empty with the command deployer or when the engine does not
    /// answer.
    pub async fn engine_tags(&self, id: i64) -> Vec<super::targets::EngineTag> {
        let Ok(Some(r)) = self.ledger.get(id) else {
            return Vec::new();
        };
        super::targets::engine_tags(&self.cfg, &r).await
    }
}

impl ReleaseDesk {
    /// Checks the target and moves the release to `rollback`. A named target must be known to
    /// have run (the ledger's deployed tags, or `engine_tags`) unless `force`.
    pub fn begin_rollback(
        &mut self,
        id: i64,
        to: Option<&str>,
        force: bool,
        engine_tags: &[super::targets::EngineTag],
    ) -> Result<Release, DeskError> {
        let release = self.require_approver(id, "roll back")?;
        self.service(&release.service_name)?;
        let target = match to {
            Some(t) if !valid_tag(t) => {
                return Err(DeskError::Invalid(format!("`{t}` is not a valid tag")));
            }
            Some(t) if !force => {
                let mut known: Vec<String> = self
                    .ledger
                    .deployed_tags(&release.service_name)?
                    .into_iter()
                    .map(|(_, tag, _)| tag)
                    .collect();
                known.extend(engine_tags.iter().map(|e| e.tag.clone()));
                known.sort();
                known.dedup();
                if !known.iter().any(|k| k == t) {
                    return Err(DeskError::Invalid(format!(
                        "`{t}` never ran on {}: known tags are {} (the ledger's deployed tags, the engine's current and previous spec, images on this manager); --force to use it anyway",
                        release.service_name,
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
                t.to_string()
            }
            Some(t) => t.to_string(),
            None => self
                .rollback_targets(&release)?
                .into_iter()
                .next()
                .map(|t| t.tag)
                .ok_or_else(|| {
                    DeskError::Invalid(format!(
                        "no earlier deployed tag of {} in the ledger; name one with --to TAG",
                        release.service_name
                    ))
                })?,
        };
        Ok(self.ledger.transition(
            id,
            Status::Rollback,
            &self.actor,
            Some(&format!("to {target}")),
            Some(&target),
        )?)
    }

    /// Runs the rollback of a release in `rollback`.
    pub async fn run_rollback(&mut self, id: i64) -> Result<Release, DeskError> {
        let release = self
            .ledger
            .get(id)?
            .ok_or(DeskError::NotFound(format!("no release with id {id}")))?;
        let service = self.service(&release.service_name)?.clone();
        let target = release.rollback_to_tag.clone().unwrap_or_default();
        let image = image_of(&service, release.image.as_deref(), &target);
        self.say(&format!(
            "release {id}: rolling {} back to {image}",
            service.swarm_service
        ));
        let result = self.run_deployer(&service, &release, &image, true).await;
        self.finish(id, result, Status::RollbackDone, Status::RollbackFailed)
    }

    fn finish(
        &mut self,
        id: i64,
        result: Result<String, String>,
        ok: Status,
        failed: Status,
    ) -> Result<Release, DeskError> {
        match result {
            Ok(msg) => {
                let r = self
                    .ledger
                    .transition(id, ok, &self.actor, Some(&msg), None)?;
                self.say(&format!("release {id}: {ok}: {msg}"));
                Ok(r)
            }
            Err(msg) => {
                self.ledger
                    .transition(id, failed, &self.actor, Some(&msg), None)?;
                self.say(&format!("release {id}: {failed}: {msg}"));
                Err(DeskError::Failed(format!("release {id}: {failed}: {msg}")))
            }
        }
    }

    async fn run_deployer(
        &mut self,
        service: &ReleaseService,
        release: &Release,
        image: &str,
        rollback: bool,
    ) -> Result<String, String> {
        let timeout = self.cfg.deploy_timeout;
        match self.cfg.deployer {
            DeployerKind::Swarm if rollback => {
                let swarm = SwarmDeployer::connect().await?;
                swarm
                    .update_image(&service.swarm_service, image, timeout)
                    .await
            }
            DeployerKind::Swarm => self.swarm_deploy(service, release, image).await,
            DeployerKind::Command => {
                let argv = if rollback {
                    self.cfg.command.rollback.clone()
                } else {
                    self.cfg.command.deploy.clone()
                };
                let argv = argv.filter(|a| !a.is_empty()).ok_or_else(|| {
                    format!(
                        "releases.command.{} is not configured",
                        if rollback { "rollback" } else { "deploy" }
                    )
                })?;
                let tag = if rollback {
                    release.rollback_to_tag.clone().unwrap_or_default()
                } else {
                    release.release_tag.clone()
                };
                let vars = CommandVars {
                    service: service.name.clone(),
                    tag: release.release_tag.clone(),
                    image: image.to_string(),
                    rollback_to_tag: release.rollback_to_tag.clone().unwrap_or_default(),
                };
                let log = command::log_path(
                    &self.data_dir,
                    &service.name,
                    if rollback { &release.release_tag } else { &tag },
                    rollback,
                );
                command::run(&argv, &vars, &log, timeout).await
            }
        }
    }

    /// A Swarm deploy with its health gate and failure policy: a failed update (tasks
    /// failing, paused, unhealthy, timed out, cancelled) is rolled back unless the service
    /// says `on_failure = "pause"`; the reason names the failing task's error and exit code.
    async fn swarm_deploy(
        &mut self,
        service: &ReleaseService,
        release: &Release,
        image: &str,
    ) -> Result<String, String> {
        let swarm = SwarmDeployer::connect().await?;
        let name = &service.swarm_service;
        let before = crate::release::engine::read::read(swarm.client(), &service.name, name).await;
        let tag = &release.release_tag;
        let mut result = swarm
            .update_image_until(name, image, self.cfg.deploy_timeout, &self.cancel)
            .await;
        if let Ok(done) = &result {
            self.say(&format!("release {}: {done}; checking health", release.id));
            result = match health::gate(&swarm, service, tag).await {
                Ok(h) if h.is_empty() => Ok(done.clone()),
                Ok(h) => Ok(format!("{done}; {h}")),
                Err(e) => Err(e),
            };
        }
        let Err(error) = result else {
            return result;
        };
        let back_to = (!before.tag.is_empty()).then(|| before.tag.clone());
        Err(self
            .after_failed_update(&swarm, service, release, back_to, error)
            .await)
    }

    /// A failed update: the reason completed with the failing task's error and exit code,
    /// then the service rolled back (audited) unless it says `on_failure = "pause"` and
    /// nobody cancelled. Returns the release's reason.
    async fn after_failed_update(
        &mut self,
        swarm: &SwarmDeployer,
        service: &ReleaseService,
        release: &Release,
        back_to: Option<String>,
        error: String,
    ) -> String {
        let name = &service.swarm_service;
        let tag = &release.release_tag;
        let live = crate::release::engine::read::read(swarm.client(), &service.name, name).await;
        let mut reason = error;
        if let Some(t) = live.failure_of(tag) {
            reason = format!("{reason}; {}", t.reason());
        }
        let cancelled = self.cancel.is_cancelled();
        if service.on_failure == OnFailure::Pause && !cancelled {
            return format!(
                "{reason}; {name} is left as the engine has it ({}; on_failure = \"pause\"): `opsdeck release rollback {}` puts it back",
                if live.update_state.is_empty() {
                    "state unknown"
                } else {
                    &live.update_state
                },
                release.id
            );
        }
        let engine_rolls_back = live.update_state.starts_with("rollback_");
        if !engine_rolls_back && !live.tag.is_empty() && live.tag != *tag {
            // Someone or something already moved the service on: rolling back "to the
            // previous spec" now could bring the failed one back.
            return format!(
                "{reason}; the engine runs {} now: nothing rolled back",
                live.tag
            );
        }
        let back_to = back_to.unwrap_or_else(|| "the previous spec".to_string());
        self.say(&format!(
            "release {}: {reason}; rolling {name} back to {back_to}",
            release.id
        ));
        let rolled = swarm.rollback_previous(name, self.cfg.deploy_timeout).await;
        let note = match &rolled {
            Ok(m) => format!("put {name} back on {back_to} after the failed deploy of {tag}: {m}"),
            Err(e) => format!("the rollback of {name} to {back_to} failed: {e}"),
        };
        if let Err(e) = self.ledger.record_note(
            release.id,
            &self.actor,
            crate::release::AuditKind::AutomaticRollback,
            &note,
        ) {
            tracing::warn!("cannot audit the automatic rollback: {e}");
        }
        self.say(&format!("release {}: {note}", release.id));
        match rolled {
            Ok(_) => format!("{reason}; rolled back to {back_to}"),
            Err(e) => format!("{reason}; the automatic rollback failed too: {e}"),
        }
    }

    /// Settles releases left in deploying or rollback by a process that stopped: the Swarm's
    /// actual state decides (still updating: watched to the end); the command deployer cannot
    /// know, so they are marked failed with a note.
    pub async fn reconcile(&mut self) -> Result<Vec<Release>, DeskError> {
        let mut settled = Vec::new();
        for status in [Status::Deploying, Status::Rollback] {
            for r in self.ledger.list(None, Some(status))? {
                if self.in_progress_elsewhere(r.id) {
                    continue;
                }
                let (ok, failed) = if status == Status::Deploying {
                    (Status::Deployed, Status::ProductionFailed)
                } else {
                    (Status::RollbackDone, Status::RollbackFailed)
                };
                let result = match (
                    self.cfg.deployer,
                    self.cfg.service(&r.service_name).cloned(),
                ) {
                    (DeployerKind::Command, _) => {
                        Err("interrupted: opsdeck stopped while the deploy command ran".to_string())
                    }
                    (DeployerKind::Swarm, None) => Err(format!(
                        "service {} is no longer configured",
                        r.service_name
                    )),
                    (DeployerKind::Swarm, Some(svc)) => {
                        let tag = if status == Status::Rollback {
                            r.rollback_to_tag.clone().unwrap_or_default()
                        } else {
                            r.release_tag.clone()
                        };
                        let image = image_of(&svc, r.image.as_deref(), &tag);
                        match SwarmDeployer::connect().await {
                            Err(e) => Err(e),
                            Ok(s) => {
                                let watched = s
                                    .update_image_watch_only(
                                        &svc.swarm_service,
                                        &image,
                                        self.cfg.deploy_timeout,
                                    )
                                    .await;
                                match watched {
                                    // A deploy that failed while nobody watched gets the
                                    // failure policy too: never left down.
                                    Err(e) if status == Status::Deploying => {
                                        let back_to = self
                                            .ledger
                                            .list(Some(&r.service_name), None)
                                            .ok()
                                            .and_then(|all| {
                                                crate::release::engine::drift::expectation(
                                                    &all,
                                                    &r.service_name,
                                                )
                                                .last
                                                .map(|(_, t)| t)
                                            });
                                        Err(self
                                            .after_failed_update(&s, &svc, &r, back_to, e)
                                            .await)
                                    }
                                    other => other,
                                }
                            }
                        }
                    }
                };
                let note = match &result {
                    Ok(m) => format!("reconciled: {m}"),
                    Err(m) => format!("reconciled: {m}"),
                };
                let to = if result.is_ok() { ok } else { failed };
                settled.push(
                    self.ledger
                        .transition(r.id, to, &self.actor, Some(&note), None)?,
                );
            }
        }
        Ok(settled)
    }

    /// The live state of a release's service (Swarm deployer only).
    pub async fn service_state(&self, service: &str) -> Option<ServiceState> {
        let svc = self.cfg.service(service)?;
        if self.cfg.deployer != DeployerKind::Swarm {
            return None;
        }
        SwarmDeployer::connect()
            .await
            .ok()?
            .state(&svc.swarm_service)
            .await
            .ok()
    }
}

/// The work lock of one release: the file, and the shared lock when the ledger has one.
struct WorkGuard {
    _file: std::fs::File,
    _shared: Option<Box<dyn std::any::Any + Send>>,
}

/// Refuses values that start with `-`: they could reach a deploy command's argv as options.
fn no_option_like(fields: &[(&str, Option<&String>)]) -> Result<(), DeskError> {
    for (name, v) in fields {
        if let Some(v) = v
            && v.trim_start().starts_with('-')
        {
            return Err(DeskError::Invalid(format!(
                "--{name} `{v}` starts with `-`: no value may (it could pass as an option to the deploy command)"
            )));
        }
    }
    Ok(())
}

/// `<repository>:<tag>`; the repository comes from the release, else the service config,
/// else the service name.
pub fn image_of(service: &ReleaseService, release_image: Option<&str>, tag: &str) -> String {
    let repo = release_image
        .or(service.repository.as_deref())
        .unwrap_or(&service.name);
    format!("{repo}:{tag}")
}

/// Settles releases a stopped process left in deploying or rollback, without holding up the
/// caller (the dashboard in local mode). Ends when `stop` is cancelled: the caller awaits the
/// handle at shutdown. A reconciliation cut short leaves the release where it was (each
/// transition is one transaction), so the next start settles it.
pub fn reconcile_in_background(
    cfg: ReleasesConfig,
    ledger: crate::storage::LedgerAt,
    data_dir: PathBuf,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let work = async move {
            let opened = tokio::task::spawn_blocking(move || Ledger::open_at(&ledger)).await;
            let Ok(Ok(ledger)) = opened else {
                return;
            };
            let mut desk = ReleaseDesk {
                ledger,
                cfg,
                actor: Actor::current(),
                data_dir,
                progress: Box::new(|_| {}),
                // The desk's own token means "roll back" during a deploy: never this one.
                cancel: Default::default(),
            };
            match desk.reconcile().await {
                Ok(settled) => {
                    for r in settled {
                        tracing::info!(id = r.id, status = %r.status, "reconciled a release left in progress");
                    }
                }
                Err(e) => tracing::warn!("release reconciliation failed: {e}"),
            }
        };
        tokio::select! {
            () = work => {}
            () = stop.cancelled() => {
                tracing::info!("release reconciliation stopped by the shutdown; the next start settles what it left");
            }
        }
    })
}
