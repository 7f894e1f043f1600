//! What the server holds, and the release actions as it runs them: every change goes through
//! the one ledger connection set up here, so each reaches the event fan-out with its actor.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::access::{Access, Action};
use super::hub::{Hub, WireBody};
use super::identity::Identity;
use super::metrics::Metrics;
use crate::config::Config;
use crate::export::{ExportRunnerHandle, ExportStore, RunHistory};
use crate::release::{Actor, DeskError, Ledger, LedgerError, Release, ReleaseDesk, Status};
use crate::schedule::SchedulerCommand;

/// A caller of one request: who the kernel says it is, and what it says about its SSH origin.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Arc<Identity>,
    /// The client's own `SSH_CONNECTION` address: recorded, never trusted.
    pub ssh_unverified: Option<String>,
}

impl Caller {
    /// The actor the audit trail records.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.who.user.clone(),
            sudo_user: None,
            ssh_client: self
                .ssh_unverified
                .as_ref()
                .map(|s| format!("{s} (unverified)")),
        }
    }
}

/// A deploy or rollback the server is running or has queued.
#[derive(Debug, Clone)]
pub struct Work {
    pub service: String,
    pub tag: String,
    pub rollback: bool,
    pub queued: bool,
    /// What a queued one waits for: "2.4.0 (release 12)".
    pub behind: Option<String>,
    pub cancel: CancellationToken,
}

/// Everything the server owns.
pub struct ServerState {
    pub cfg: Arc<Config>,
    pub access: Access,
    pub hub: Arc<Hub>,
    pub started: std::time::Instant,
    pub started_at: DateTime<Utc>,
    pub runner: ExportRunnerHandle,
    pub scheduler: Option<mpsc::Sender<SchedulerCommand>>,
    pub store: ExportStore,
    pub history: RunHistory,
    pub data_dir: PathBuf,
    /// Where the ledger is: an SQLite file, or PostgreSQL (`storage.url`).
    pub ledger_at: crate::storage::LedgerAt,
    /// Reads (list, show) share one connection.
    reader: Mutex<Ledger>,
    /// "leader", "follower (holder)" or "starting": the scheduler's file lock (SQLite).
    pub leader: Mutex<String>,
    /// The PostgreSQL election (`storage.url`); `None` with SQLite, where this process leads
    /// unless the scheduler's file lock says otherwise.
    pub leadership: Option<tokio::sync::watch::Receiver<crate::storage::leader::Role>>,
    pub paused: Mutex<BTreeSet<String>>,
    /// One deploy per service at a time: the service's turn.
    queues: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub work: Mutex<HashMap<i64, Work>>,
    pub metrics: Arc<Metrics>,
    /// Notifications: ledger changes are queued here (`None`: the outbox cannot be opened).
    pub notifier: Option<Arc<crate::notify::Notifier>>,
    /// Fires at shutdown: event streams end so the server can stop.
    pub shutdown: CancellationToken,
    /// The engine's live state of each configured service (set once at start).
    pub services: std::sync::OnceLock<crate::release::engine::ServicesWatch>,
}

/// How a release action failed, for the API's status codes.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// Lost a race: the message says the current status, who and when.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

impl From<DeskError> for ActionError {
    fn from(e: DeskError) -> Self {
        match e {
            DeskError::Invalid(m) => ActionError::Invalid(m),
            DeskError::NotFound(m) => ActionError::NotFound(m),
            DeskError::Conflict(m) => ActionError::Conflict(m),
            DeskError::Refused(m) => ActionError::Forbidden(m),
            DeskError::Failed(m) => ActionError::Failed(m),
        }
    }
}

impl From<LedgerError> for ActionError {
    fn from(e: LedgerError) -> Self {
        DeskError::from(e).into()
    }
}

/// Runs blocking work (SQLite) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ActionError> + Send + 'static,
) -> Result<T, ActionError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ActionError::Failed(format!("internal error: {e}")))?
}

/// The parts `ServerState::new` takes over.
pub struct Parts {
    pub cfg: Config,
    pub runner: ExportRunnerHandle,
    pub scheduler: Option<mpsc::Sender<SchedulerCommand>>,
    pub store: ExportStore,
    pub history: RunHistory,
    pub data_dir: PathBuf,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub notifier: Option<Arc<crate::notify::Notifier>>,
    pub leadership: Option<tokio::sync::watch::Receiver<crate::storage::leader::Role>>,
}

impl ServerState {
    /// Opens the ledger and builds the state.
    pub fn new(p: Parts) -> Result<ServerState, LedgerError> {
        let ledger_at = crate::storage::LedgerAt::of(&p.cfg, &p.data_dir);
        let reader = Ledger::open_at(&ledger_at)?;
        let paused = crate::schedule::load_paused(&p.data_dir);
        Ok(ServerState {
            access: Access::new(p.cfg.access.clone()),
            cfg: Arc::new(p.cfg),
            hub: p.hub,
            started: std::time::Instant::now(),
            started_at: Utc::now(),
            runner: p.runner,
            scheduler: p.scheduler,
            store: p.store,
            history: p.history,
            data_dir: p.data_dir,
            ledger_at,
            reader: Mutex::new(reader),
            leader: Mutex::new("starting".into()),
            leadership: p.leadership,
            paused: Mutex::new(paused),
            queues: Mutex::new(HashMap::new()),
            work: Mutex::new(HashMap::new()),
            metrics: p.metrics,
            notifier: p.notifier,
            shutdown: CancellationToken::new(),
            services: std::sync::OnceLock::new(),
        })
    }

    /// Runs `f` on the shared read connection (blocking; call from `blocking`).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Ledger) -> Result<T, LedgerError>,
    ) -> Result<T, ActionError> {
        let guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&guard)?)
    }

    /// A ledger connection whose every change is published with its actor.
    pub fn ledger(&self) -> Result<Ledger, ActionError> {
        let mut ledger = Ledger::open_at(&self.ledger_at)?;
        let hub = self.hub.clone();
        let metrics = self.metrics.clone();
        let notifier = self.notifier.clone();
        let services = self.services.get().cloned();
        ledger.observe(Arc::new(move |change| {
            // The service lines show what the ledger says: read the engine again.
            if let Some(w) = &services {
                w.poke();
            }
            metrics.transition(change.to);
            // A quick local insert; a failure is logged and the change goes on.
            if let Some(n) = &notifier
                && let Some(ev) = crate::notify::NotifyEvent::from_change(&change)
            {
                n.enqueue(&ev);
            }
            let summary = super::hub::summary(&change);
            hub.publish(
                Some(change.actor.clone()),
                WireBody::Release {
                    release: change.release,
                    summary,
                },
            );
        }));
        Ok(ledger)
    }

    /// A desk acting for `caller`. Access was decided by the server before; the desk's own
    /// approvers list (a local-mode setting) does not apply.
    pub fn desk(&self, caller: &Caller, id: Option<i64>) -> Result<ReleaseDesk, ActionError> {
        let mut cfg = self.cfg.releases.clone();
        cfg.approvers.clear();
        let hub = self.hub.clone();
        Ok(ReleaseDesk {
            ledger: self.ledger()?,
            cfg,
            actor: caller.actor(),
            data_dir: self.data_dir.clone(),
            progress: Box::new(move |line| {
                if let Some(id) = id {
                    hub.publish(
                        None,
                        WireBody::DeployProgress {
                            id,
                            line: line.to_string(),
                        },
                    );
                }
            }),
            cancel: Default::default(),
        })
    }

    /// Starts the live view of the configured services; its changes go to every client.
    pub fn watch_services(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let watch = crate::release::engine::ServicesWatch::spawn(
            self.cfg.releases.clone(),
            Arc::new(move || weak.upgrade().and_then(|s| s.ledger().ok())),
            Arc::new(|_, _| {}),
        );
        let mut rx = watch.subscribe();
        if self.services.set(watch).is_err() {
            return;
        }
        let hub = self.hub.clone();
        let stop = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    () = stop.cancelled() => return,
                }
                let now = rx.borrow_and_update().clone();
                hub.publish(
                    None,
                    WireBody::Services {
                        services: now.as_ref().clone(),
                    },
                );
            }
        });
    }

    /// Allows `action` for `caller`, or refuses it; a refusal that concerns a release is
    /// recorded in its audit trail and nothing else changes.
    pub async fn authorize(
        self: &Arc<Self>,
        caller: &Caller,
        action: Action,
        release: Option<i64>,
    ) -> Result<(), ActionError> {
        let Err(refusal) = self.access.check(&caller.who, action) else {
            return Ok(());
        };
        self.metrics.refusal();
        tracing::warn!(user = %caller.who.user, uid = caller.who.uid, "refused: {refusal}");
        if let Some(id) = release {
            let (me, caller) = (self.clone(), caller.clone());
            let note = format!("refused: {refusal}");
            let _ = blocking(move || {
                let mut l = me.ledger()?;
                Ok(l.record_refusal(id, &caller.actor(), &note)?)
            })
            .await;
        }
        Err(ActionError::Forbidden(refusal.0))
    }

    /// Refuses the approval of a release by whoever created it, unless `self_approval`.
    pub async fn check_self_approval(
        self: &Arc<Self>,
        caller: &Caller,
        id: i64,
        verb: &str,
    ) -> Result<(), ActionError> {
        if self.access.self_approval() {
            return Ok(());
        }
        let me = self.clone();
        let creator =
            blocking(move || me.read(|l| Ok(l.audit(id)?.first().map(|a| a.actor.clone()))))
                .await?;
        if creator.as_deref() == Some(caller.who.user.as_str()) {
            let note = format!(
                "refused: {} may not {verb} release {id}: they created it (access.self_approval = false)",
                caller.who.user
            );
            let (me, c, n) = (self.clone(), caller.clone(), note.clone());
            let _ = blocking(move || {
                let mut l = me.ledger()?;
                Ok(l.record_refusal(id, &c.actor(), &n)?)
            })
            .await;
            self.metrics.refusal();
            return Err(ActionError::Forbidden(
                note.trim_start_matches("refused: ").to_string(),
            ));
        }
        Ok(())
    }

    fn queue(&self, service: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(service.to_string())
            .or_default()
            .clone()
    }

    /// Runs a deploy (or rollback) of release `id` in the server, after any other deploy of
    /// the same service; it outlives the request that started it. The receiver gets the end.
    pub fn spawn_work(
        self: &Arc<Self>,
        mut desk: ReleaseDesk,
        release: Release,
        rollback: bool,
    ) -> tokio::sync::oneshot::Receiver<Result<Release, ActionError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let queue = self.queue(&release.service_name);
        // Progress goes to every client and to the release's deploy log in the state dir.
        let log = crate::release::deploy::command::log_path(
            &self.data_dir,
            &release.service_name,
            &release.release_tag,
            rollback,
        );
        let hub = self.hub.clone();
        let id = release.id;
        desk.progress = Box::new(move |line| {
            hub.publish(
                None,
                WireBody::DeployProgress {
                    id,
                    line: line.to_string(),
                },
            );
            append_line(&log, line);
        });
        let cancel = CancellationToken::new();
        desk.cancel = cancel.clone();
        self.work.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            Work {
                service: release.service_name.clone(),
                tag: release.release_tag.clone(),
                rollback,
                queued: true,
                behind: None,
                cancel: cancel.clone(),
            },
        );
        self.publish_work();
        tokio::spawn(async move {
            let turn = match queue.clone().try_lock_owned() {
                Ok(g) => Some(g),
                Err(_) => {
                    let ahead = me.running_on(&release.service_name, id);
                    if let Some(w) = me
                        .work
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&id)
                    {
                        w.behind = ahead.clone();
                    }
                    me.publish_work();
                    me.hub.publish(
                        None,
                        WireBody::DeployProgress {
                            id,
                            line: format!(
                                "release {id}: queued behind {}",
                                ahead.unwrap_or_else(|| "another deploy".into())
                            ),
                        },
                    );
                    tokio::select! {
                        g = queue.lock_owned() => Some(g),
                        () = cancel.cancelled() => None,
                    }
                }
            };
            let result = match turn {
                None => Err(ActionError::Conflict(format!(
                    "release {id}: the queued deploy was cancelled; it stays {}",
                    release.status
                ))),
                Some(_turn) => {
                    if let Some(w) = me
                        .work
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&id)
                    {
                        w.queued = false;
                        w.behind = None;
                    }
                    me.publish_work();
                    let started = std::time::Instant::now();
                    let r = if rollback {
                        desk.run_rollback(id).await
                    } else {
                        desk.deploy_approved(id).await
                    };
                    me.metrics.deploy_finished(started.elapsed());
                    r.map_err(ActionError::from)
                }
            };
            me.work
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            me.publish_work();
            let _ = tx.send(result);
        });
        rx
    }

    /// The last lines of a release's deploy and rollback logs.
    pub fn deploy_log(&self, r: &Release, max: usize) -> Vec<String> {
        let mut log = Vec::new();
        for rollback in [false, true] {
            let p = crate::release::deploy::command::log_path(
                &self.data_dir,
                &r.service_name,
                &r.release_tag,
                rollback,
            );
            if let Ok(text) = std::fs::read(&p) {
                log.extend(String::from_utf8_lossy(&text).lines().map(str::to_string));
            }
        }
        log.split_off(log.len().saturating_sub(max))
    }

    /// Tells every client what runs and what waits (sticky: a new client learns it first).
    pub fn publish_work(&self) {
        let mut work: Vec<super::hub::WorkInfo> = self
            .work
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, w)| super::hub::WorkInfo {
                id: *id,
                service: w.service.clone(),
                tag: w.tag.clone(),
                rollback: w.rollback,
                queued: w.queued,
                behind: w.behind.clone(),
            })
            .collect();
        work.sort_by_key(|w| w.id);
        self.hub.publish(None, WireBody::Work { work });
    }

    /// "release 12 (api 2.4.0)": what runs or waits on a service before `id`.
    fn running_on(&self, service: &str, id: i64) -> Option<String> {
        let work = self.work.lock().unwrap_or_else(|p| p.into_inner());
        let other = work
            .iter()
            .filter(|(i, w)| **i != id && w.service == service && !w.queued)
            .map(|(i, _)| *i)
            .next()?;
        drop(work);
        self.read(|l| l.get(other))
            .ok()
            .flatten()
            .map(|r| format!("{} (release {})", r.release_tag, r.id))
    }

    /// Whether this server leads, and who does ("pid 42 on manager-1", when known).
    pub fn leader_status(&self) -> (bool, Option<String>) {
        use crate::storage::leader::Role;
        match &self.leadership {
            Some(rx) => match &*rx.borrow() {
                Role::Leader => (true, Some(crate::storage::leader::me())),
                Role::Follower { holder } => (false, Some(holder.clone())),
                Role::Starting => (false, None),
            },
            None => {
                let s = self
                    .leader
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                match s
                    .strip_prefix("follower (")
                    .and_then(|r| r.strip_suffix(" leads)"))
                {
                    Some(holder) => (false, Some(holder.to_string())),
                    None => (true, Some(crate::storage::leader::me())),
                }
            }
        }
    }

    /// Settles releases a stopped server left in deploying or rollback, against the engine.
    pub fn reconcile_in_background(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let system = Caller {
                who: Arc::new(Identity {
                    uid: nix::unistd::getuid().as_raw(),
                    gid: nix::unistd::getgid().as_raw(),
                    pid: Some(std::process::id() as i32),
                    user: "opsdeck-server".into(),
                    groups: vec![],
                }),
                ssh_unverified: None,
            };
            let Ok(mut desk) = me.desk(&system, None) else {
                return;
            };
            // Stopped at shutdown like everything else; each transition is one transaction,
            // so the next start (or leader) settles what this left.
            tokio::select! {
                settled = desk.reconcile() => match settled {
                    Ok(settled) => {
                        for r in settled {
                            tracing::info!(id = r.id, status = %r.status, "reconciled a release left in progress");
                        }
                    }
                    Err(e) => tracing::warn!("release reconciliation failed: {e}"),
                },
                () = me.shutdown.cancelled() => {}
            }
        });
    }

    /// The statuses from which `action` makes sense, for clear 409s before any work starts.
    pub fn expect(r: &Release, allowed: &[Status], what: &str) -> Result<(), ActionError> {
        if allowed.contains(&r.status) {
            Ok(())
        } else {
            Err(ActionError::Conflict(format!(
                "release {} is {}; {what} needs {}",
                r.id,
                r.status,
                allowed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )))
        }
    }
}

/// Appends a timestamped line to a deploy log (best effort: a full disk must not stop a deploy).
fn append_line(path: &std::path::Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = crate::private::append(path) {
        let _ = writeln!(f, "{} {line}", Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
    }
}
