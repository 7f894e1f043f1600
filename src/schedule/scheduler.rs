//! `Scheduler`: fires jobs at their cron times while this process holds the leader lock.
//!
//! Exactly-once per scheduled instant: the instant is written to the shared state file before
//! the job starts, and a new leader catches up only instants newer than that record (and not
//! older than `export.catch_up`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::cron::CronSchedule;
use super::lock::{Holder, LeaderLock};
use super::state::SchedulerState;
use crate::config::Group;
use crate::events::{Event, EventTx};
use crate::export::{ExportRunnerHandle, ExportStore, RunHistory, Trigger};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JobKind {
    /// Export every configured group.
    Export,
    /// Delete exports older than the retention period.
    Cleanup,
}

/// A scheduled job.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: String,
    pub kind: JobKind,
    pub schedule: CronSchedule,
}

/// What the scheduler reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ScheduleEvent {
    /// This process is the leader and runs scheduled jobs.
    Leader,
    /// Another process is the leader.
    Follower { holder: String },
    /// A job fired for a scheduled instant.
    Fired {
        job: String,
        scheduled_for: DateTime<Utc>,
        catch_up: bool,
    },
    /// A missed instant older than `export.catch_up` that will not be run.
    MissedTooOld {
        job: String,
        scheduled_for: DateTime<Utc>,
    },
    /// When each job runs next.
    Next {
        job: String,
        at: Option<DateTime<Utc>>,
    },
}

/// Changes to a running scheduler.
#[derive(Debug, Clone)]
pub enum SchedulerCommand {
    /// Replace a job's schedule (after the user edited it).
    SetSchedule { job: String, schedule: CronSchedule },
}

/// The scheduler service.
pub struct Scheduler {
    pub jobs: Vec<JobSpec>,
    pub groups: Vec<Group>,
    pub store: ExportStore,
    /// Where the leader lock, the last-fired state and the paused jobs live: the state dir.
    pub state_dir: PathBuf,
    pub retention_days: u32,
    pub catch_up: Duration,
    pub runner: ExportRunnerHandle,
    pub history: RunHistory,
    pub events: EventTx,
    /// How often a follower tries to take over the lock.
    pub lock_retry: Duration,
    /// Commands from a front end; `None` for a scheduler nobody changes.
    pub commands: Option<tokio::sync::mpsc::Receiver<SchedulerCommand>>,
}

/// Wall-clock sleeps are cut into pieces so a clock change or suspend is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

impl Scheduler {
    /// Runs until `cancel` fires.
    pub fn spawn(self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run(cancel).await })
    }

    async fn run(mut self, cancel: CancellationToken) {
        let dir: PathBuf = self.state_dir.clone();
        let Some(_lock) = self.become_leader(&dir, &cancel).await else {
            return;
        };
        tracing::info!("scheduler: this process is the leader");
        self.emit(ScheduleEvent::Leader).await;

        let mut state = SchedulerState::load(&dir);
        let now = Utc::now();
        for job in &self.jobs {
            match state.last_fired.get(&job.name).copied() {
                None => {
                    // First start: nothing was missed, the schedule starts now.
                    state.last_fired.insert(job.name.clone(), now);
                }
                Some(last) => {
                    if let Some(prev) = job.schedule.prev_at_or_before(now).filter(|p| *p > last) {
                        state.last_fired.insert(job.name.clone(), prev);
                        self.save(&state, &dir);
                        if (now - prev).to_std().unwrap_or_default() <= self.catch_up {
                            tracing::info!(job = %job.name, "catching up the run missed at {prev}");
                            self.fire(job, Trigger::CatchUp(prev)).await;
                        } else {
                            tracing::warn!(job = %job.name, "missed run at {prev} is older than export.catch_up; not run");
                            self.emit(ScheduleEvent::MissedTooOld {
                                job: job.name.clone(),
                                scheduled_for: prev,
                            })
                            .await;
                        }
                    }
                }
            }
        }
        self.save(&state, &dir);

        loop {
            let next: Vec<(usize, Option<DateTime<Utc>>)> = self
                .jobs
                .iter()
                .enumerate()
                .map(|(i, j)| (i, j.schedule.next_after(state.last_fired[&j.name])))
                .collect();
            for (i, at) in &next {
                self.emit(ScheduleEvent::Next {
                    job: self.jobs[*i].name.clone(),
                    at: *at,
                })
                .await;
            }
            let Some(soonest) = next.iter().filter_map(|(_, at)| *at).min() else {
                cancel.cancelled().await;
                return;
            };
            // Sleep towards the soonest instant in bounded steps; a changed schedule restarts
            // the computation.
            let mut changed = false;
            loop {
                let wait = (soonest - Utc::now()).to_std().unwrap_or_default();
                if wait.is_zero() {
                    break;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                    Some(cmd) = recv(&mut self.commands) => {
                        self.apply(cmd);
                        changed = true;
                        break;
                    }
                }
            }
            if changed {
                continue;
            }
            let paused = super::paused::load_paused(&dir);
            let now = Utc::now();
            for (i, at) in next {
                let Some(at) = at.filter(|at| *at <= now) else {
                    continue;
                };
                let job = &self.jobs[i];
                state.last_fired.insert(job.name.clone(), at);
                self.save(&state, &dir);
                if paused.contains(&job.name) {
                    tracing::info!(job = %job.name, "scheduled run for {at} skipped: the job is paused");
                    continue;
                }
                if (now - at).to_std().unwrap_or_default() > self.catch_up {
                    self.emit(ScheduleEvent::MissedTooOld {
                        job: job.name.clone(),
                        scheduled_for: at,
                    })
                    .await;
                    continue;
                }
                self.fire(job, Trigger::Scheduled(at)).await;
            }
        }
    }

    fn apply(&mut self, cmd: SchedulerCommand) {
        match cmd {
            SchedulerCommand::SetSchedule { job, schedule } => {
                if let Some(j) = self.jobs.iter_mut().find(|j| j.name == job) {
                    tracing::info!(%job, "schedule changed to `{}`", schedule.expr());
                    j.schedule = schedule;
                }
            }
        }
    }

    async fn become_leader(
        &self,
        dir: &std::path::Path,
        cancel: &CancellationToken,
    ) -> Option<LeaderLock> {
        let mut last_holder: Option<Holder> = None;
        loop {
            if let Err(e) = crate::private::create_dir(dir) {
                tracing::warn!("scheduler: cannot create {}: {e}", dir.display());
            }
            match LeaderLock::try_acquire(dir) {
                Ok(Ok(lock)) => return Some(lock),
                Ok(Err(holder)) => {
                    if last_holder.as_ref() != Some(&holder) {
                        tracing::info!(
                            "scheduler: {holder} holds the scheduler lock; manual exports still work"
                        );
                        self.emit(ScheduleEvent::Follower {
                            holder: holder.0.clone(),
                        })
                        .await;
                        last_holder = Some(holder);
                    }
                }
                Err(e) => tracing::warn!(
                    "scheduler: cannot open the lock file in {}: {e}",
                    dir.display()
                ),
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(self.lock_retry) => {}
            }
        }
    }

    async fn fire(&self, job: &JobSpec, trigger: Trigger) {
        let scheduled_for = trigger.scheduled_for().unwrap_or_else(Utc::now);
        tracing::info!(job = %job.name, "scheduled run for {scheduled_for} starts");
        self.emit(ScheduleEvent::Fired {
            job: job.name.clone(),
            scheduled_for,
            catch_up: matches!(trigger, Trigger::CatchUp(_)),
        })
        .await;
        match job.kind {
            JobKind::Export => {
                if !self.runner.start(self.groups.clone(), trigger) {
                    tracing::warn!(job = %job.name, "export runner is busy or stopped; run not started");
                }
            }
            JobKind::Cleanup => {
                let (store, history, events, days) = (
                    self.store.clone(),
                    self.history.clone(),
                    self.events.clone(),
                    self.retention_days,
                );
                tokio::spawn(run_cleanup(
                    store,
                    history,
                    events,
                    days,
                    job.name.clone(),
                    trigger,
                ));
            }
        }
    }

    fn save(&self, state: &SchedulerState, dir: &std::path::Path) {
        if let Err(e) = state.save(dir) {
            tracing::error!(
                "scheduler: cannot write its state in {}: {e}",
                dir.display()
            );
        }
    }

    async fn emit(&self, e: ScheduleEvent) {
        let _ = self.events.send(Event::Schedule(e)).await;
    }
}

async fn recv(
    rx: &mut Option<tokio::sync::mpsc::Receiver<SchedulerCommand>>,
) -> Option<SchedulerCommand> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs the retention cleanup once and records it as a run of `job` in the history.
pub async fn run_cleanup(
    store: ExportStore,
    history: RunHistory,
    events: crate::events::EventTx,
    days: u32,
    job: String,
    trigger: Trigger,
) {
    let run = history
        .start_run(&job, trigger.label(), trigger.scheduled_for())
        .ok();
    let res = tokio::task::spawn_blocking(move || store.apply_retention(days, Utc::now())).await;
    let (outcome, detail) = match res {
        Ok(Ok(files)) => {
            let detail = format!("{} file(s) deleted", files.len());
            if !files.is_empty() {
                let _ = events
                    .send(Event::RetentionDeleted {
                        files,
                        at: Utc::now(),
                    })
                    .await;
            }
            ("ok", detail)
        }
        Ok(Err(e)) => ("failed", e.to_string()),
        Err(e) => ("failed", e.to_string()),
    };
    if let Some(run) = run {
        let _ = history.finish_run(run, outcome, Some(&detail));
    }
    let _ = events.send(Event::JobFinished { job }).await;
}
