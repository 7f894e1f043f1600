//! `Scheduler`: fires jobs at their cron times while this process holds the leader lock.
//!
//! Exactly-once per scheduled instant: the instant is recorded (`fired.rs`: the state file, or
//! a compare-and-set in PostgreSQL) before the job starts, and only by whoever records it; a
//! new leader catches up only instants newer than that record (and not older than
//! `export.catch_up`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::cron::CronSchedule;
use super::fired::FiredStore;
use super::lock::{Holder, LeaderLock};
use crate::config::Group;
use crate::events::{Event, EventTx};
use crate::export::{ExportRunnerHandle, ExportStore, RunHistory, Trigger};
use crate::storage::leader::Role;

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
    /// When its schedule was changed while running: an instant of the new schedule before
    /// this (already past when it was saved) does not fire.
    pub since: Option<DateTime<Utc>>,
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
    /// The server's PostgreSQL election (`None`: the file lock in the state dir decides).
    pub leadership: Option<watch::Receiver<Role>>,
    /// Where the last fired instants are recorded.
    pub fired: FiredStore,
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
        loop {
            // Leadership: the file lock in the state dir, or the server's PostgreSQL election.
            let _lock = match self.leadership.clone() {
                None => {
                    let dir = self.state_dir.clone();
                    let Some(lock) = self.become_leader(&dir, &cancel).await else {
                        return;
                    };
                    Some(lock)
                }
                Some(rx) => {
                    if !self.wait_for_election(rx, &cancel).await {
                        return;
                    }
                    None
                }
            };
            tracing::info!("scheduler: this process is the leader");
            self.emit(ScheduleEvent::Leader).await;
            let lost = lost_leadership(self.leadership.clone());
            let retry = self.lock_retry;
            tokio::select! {
                () = cancel.cancelled() => return,
                () = lost => {
                    tracing::warn!("scheduler: no longer the leader; scheduled jobs stop here");
                }
                () = self.lead(&cancel) => {
                    // The shared record could not be read or written: try again later.
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                }
            }
        }
    }

    /// Waits until the election makes this server the leader (`false`: cancelled),
    /// reporting who leads meanwhile.
    async fn wait_for_election(
        &self,
        mut rx: watch::Receiver<Role>,
        cancel: &CancellationToken,
    ) -> bool {
        loop {
            let role = rx.borrow_and_update().clone();
            match role {
                Role::Leader => return true,
                Role::Follower { holder } => {
                    tracing::info!("scheduler: {holder} leads; manual exports still work");
                    self.emit(ScheduleEvent::Follower { holder }).await;
                }
                Role::Starting => {}
            }
            tokio::select! {
                () = cancel.cancelled() => return false,
                changed = rx.changed() => if changed.is_err() { return false },
            }
        }
    }

    /// Runs the jobs while leading; returns only when the shared record fails.
    async fn lead(&mut self, cancel: &CancellationToken) {
        let dir: PathBuf = self.state_dir.clone();
        let mut fired = match self.fired.load().await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("scheduler: cannot read when jobs last fired: {e}");
                return;
            }
        };
        let now = Utc::now();
        for job in self.jobs.clone() {
            let claimed = match fired.get(&job.name).copied() {
                // First start: nothing was missed, the schedule starts now.
                None => self
                    .fired
                    .claim(&mut fired, &job.name, now)
                    .await
                    .map(|_| ()),
                Some(last) => {
                    let Some(prev) = job.schedule.prev_at_or_before(now).filter(|p| *p > last)
                    else {
                        continue;
                    };
                    match self.fired.claim(&mut fired, &job.name, prev).await {
                        Ok(true) => {
                            if (now - prev).to_std().unwrap_or_default() <= self.catch_up {
                                tracing::info!(job = %job.name, "catching up the run missed at {prev}");
                                self.fire(&job, Trigger::CatchUp(prev)).await;
                            } else {
                                tracing::warn!(job = %job.name, "missed run at {prev} is older than export.catch_up; not run");
                                self.emit(ScheduleEvent::MissedTooOld {
                                    job: job.name.clone(),
                                    scheduled_for: prev,
                                })
                                .await;
                            }
                            Ok(())
                        }
                        Ok(false) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = claimed {
                tracing::error!("scheduler: {e}");
                return;
            }
        }
        // A claim lost to another server leaves the record behind: read it again.
        match self.fired.load().await {
            Ok(f) => fired = f,
            Err(e) => {
                tracing::error!("scheduler: cannot read when jobs last fired: {e}");
                return;
            }
        }

        loop {
            let next: Vec<(usize, Option<DateTime<Utc>>)> = self
                .jobs
                .iter()
                .enumerate()
                .map(|(i, j)| {
                    let last = fired.get(&j.name).copied().unwrap_or(now);
                    (i, next_run(j, last))
                })
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
                let job = self.jobs[i].clone();
                match self.fired.claim(&mut fired, &job.name, at).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %job.name, "the run for {at} was recorded by another server; not run here");
                        match self.fired.load().await {
                            Ok(f) => fired = f,
                            Err(e) => {
                                tracing::error!("scheduler: {e}");
                                return;
                            }
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::error!("scheduler: {e}");
                        return;
                    }
                }
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
                self.fire(&job, Trigger::Scheduled(at)).await;
            }
        }
    }

    fn apply(&mut self, cmd: SchedulerCommand) {
        match cmd {
            SchedulerCommand::SetSchedule { job, schedule } => {
                if let Some(j) = self.jobs.iter_mut().find(|j| j.name == job) {
                    tracing::info!(%job, "schedule changed to `{}`", schedule.expr());
                    j.schedule = schedule;
                    j.since = Some(Utc::now());
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

    async fn emit(&self, e: ScheduleEvent) {
        let _ = self.events.send(Event::Schedule(e)).await;
    }
}

/// When `job` runs next, having last fired at `last`: after that, and after the moment its
/// schedule was changed (an instant that passed before the edit was saved is not a run).
fn next_run(job: &JobSpec, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let from = job.since.map_or(last, |since| since.max(last));
    job.schedule.next_after(from)
}

/// Resolves when the election says this server no longer leads (never with the file lock,
/// which is held until the process ends).
async fn lost_leadership(rx: Option<watch::Receiver<Role>>) {
    let Some(mut rx) = rx else {
        return std::future::pending().await;
    };
    loop {
        if !rx.borrow_and_update().is_leader() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
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

/// Runs the retention cleanup once and records it as a run of `job` in the history; what
/// it did (`3 files deleted`) or why it failed. The history's SQLite calls and the
/// deletions run on blocking threads.
pub async fn run_cleanup(
    store: ExportStore,
    history: RunHistory,
    events: crate::events::EventTx,
    days: u32,
    job: String,
    trigger: Trigger,
) -> Result<String, String> {
    let res = {
        let (history, job) = (history.clone(), job.clone());
        tokio::task::spawn_blocking(move || {
            let run = history
                .start_run(&job, trigger.label(), trigger.scheduled_for())
                .ok();
            (run, store.apply_retention(days, Utc::now()))
        })
        .await
    };
    let (run, result) = match res {
        Ok((run, Ok(files))) => {
            let detail = match files.len() {
                1 => "1 file deleted".to_string(),
                n => format!("{n} files deleted"),
            };
            if !files.is_empty() {
                let _ = events
                    .send(Event::RetentionDeleted {
                        files,
                        at: Utc::now(),
                    })
                    .await;
            }
            (run, Ok(detail))
        }
        Ok((run, Err(e))) => (run, Err(e.to_string())),
        Err(e) => (None, Err(e.to_string())),
    };
    if let Some(run) = run {
        let (outcome, detail) = match &result {
            Ok(d) => ("ok", d.clone()),
            Err(e) => ("failed", e.clone()),
        };
        let _ =
            tokio::task::spawn_blocking(move || history.finish_run(run, outcome, Some(&detail)))
                .await;
    }
    let _ = events.send(Event::JobFinished { job }).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new user's finding: saving `31 * * * *` at 11:31:27, with the job last fired at
    /// 07:00, ran an export at once (for 07:31, then 11:31). The next run counts from the edit.
    #[test]
    fn a_changed_schedule_runs_next_after_the_change() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let mut job = JobSpec {
            name: "export".into(),
            kind: JobKind::Export,
            schedule: CronSchedule::parse("31 * * * *", None).unwrap(),
            since: None,
        };
        let last = at("2026-12-03T07:00:00Z");
        assert_eq!(next_run(&job, last), Some(at("2026-12-03T07:31:00Z")));
        job.since = Some(at("2026-12-03T11:31:27Z"));
        assert_eq!(next_run(&job, last), Some(at("2026-12-03T12:31:00Z")));
        // A run fired after the change counts as usual.
        assert_eq!(
            next_run(&job, at("2026-12-03T12:31:00Z")),
            Some(at("2026-12-03T13:31:00Z"))
        );
    }
}
