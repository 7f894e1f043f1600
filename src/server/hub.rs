//! The event fan-out: every change the server makes or sees, numbered, with its actor and time,
//! broadcast to each `/v1/events` stream; and the sessions connected to it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::events::Event;
use crate::export::{DirListing, ExportEvent};
use crate::release::Release;
use crate::schedule::ScheduleEvent;

/// One line of `/v1/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireEvent {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// Who caused it, when a person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(flatten)]
    pub body: WireBody,
}

/// What happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireBody {
    /// Sent first on every stream: who the server thinks you are and who else is here.
    Hello {
        sessions: Vec<SessionInfo>,
    },
    /// A release was created or changed status (or a refusal was audited).
    Release {
        release: Release,
        /// "alice approved api v1.5.0".
        summary: String,
    },
    /// A line of a running deploy or rollback.
    DeployProgress {
        id: i64,
        line: String,
    },
    Export {
        event: ExportEvent,
    },
    Schedule {
        event: ScheduleEvent,
    },
    ExportDir {
        listing: DirListing,
    },
    JobFinished {
        job: String,
    },
    TestopsHealth {
        error: Option<String>,
    },
    DiskFree {
        bytes: u64,
    },
    /// Paused jobs changed.
    Paused {
        jobs: Vec<String>,
    },
    /// A schedule's cron changed.
    Cron {
        job: String,
        expr: String,
    },
    /// The notification sinks that keep failing (empty: all deliver).
    Notify {
        failing: Vec<crate::notify::SinkHealth>,
    },
    /// The deploys and rollbacks the server runs or has queued (sticky; empty: none).
    Work {
        work: Vec<WorkInfo>,
    },
    /// The live state of every configured service changed (sticky).
    Services {
        services: Vec<crate::release::engine::ServiceLive>,
    },
    /// Sessions connected or left.
    Sessions {
        sessions: Vec<SessionInfo>,
    },
    /// The ledger fails verification at `row` ("audit row 7"): sticky, so a dashboard that
    /// connects later shows it too.
    LedgerTampered {
        row: String,
    },
}

impl WireBody {
    /// Events that describe a state rather than a change, by kind.
    fn sticky_key(&self) -> Option<&'static str> {
        match self {
            WireBody::TestopsHealth { .. } => Some("testops"),
            WireBody::DiskFree { .. } => Some("disk"),
            WireBody::ExportDir { .. } => Some("listing"),
            WireBody::Schedule {
                event: ScheduleEvent::Leader | ScheduleEvent::Follower { .. },
            } => Some("leader"),
            WireBody::Paused { .. } => Some("paused"),
            WireBody::Notify { .. } => Some("notify"),
            WireBody::LedgerTampered { .. } => Some("ledger"),
            WireBody::Services { .. } => Some("services"),
            WireBody::Work { .. } => Some("work"),
            _ => None,
        }
    }

    /// The service events that travel to clients; log lines have their own endpoint and the
    /// release list is sent as changes.
    pub fn from_event(e: &Event) -> Option<WireBody> {
        Some(match e {
            Event::Export(event) => WireBody::Export {
                event: event.clone(),
            },
            Event::Schedule(event) => WireBody::Schedule {
                event: event.clone(),
            },
            Event::ExportDir(listing) => WireBody::ExportDir {
                listing: listing.clone(),
            },
            Event::JobFinished { job } => WireBody::JobFinished { job: job.clone() },
            Event::TestOpsHealth(r) => WireBody::TestopsHealth {
                error: r.clone().err(),
            },
            Event::DiskFree(b) => WireBody::DiskFree { bytes: *b },
            Event::NotifyFailing(failing) => WireBody::Notify {
                failing: failing.clone(),
            },
            Event::LedgerTampered(row) => WireBody::LedgerTampered { row: row.clone() },
            Event::Services(s) => WireBody::Services {
                services: s.as_ref().clone(),
            },
            Event::RetentionDeleted { .. }
            | Event::Releases(_)
            | Event::ReleasesUnavailable(_)
            | Event::Notice(_)
            | Event::Sessions(_)
            | Event::Whoami { .. }
            | Event::Paused(_)
            | Event::Work(_)
            | Event::DeployProgress { .. }
            | Event::CronChanged { .. } => return None,
        })
    }
}

/// A deploy or rollback in the server: running, or queued behind another of its service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkInfo {
    pub id: i64,
    pub service: String,
    pub tag: String,
    pub rollback: bool,
    pub queued: bool,
    /// What it waits for: "2.4.0 (release 12)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind: Option<String>,
}

/// A connected dashboard or event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: u64,
    pub user: String,
    pub uid: u32,
    pub pid: Option<i32>,
    pub since: DateTime<Utc>,
    /// What the client says about its SSH origin; not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_unverified: Option<String>,
}

/// The fan-out.
pub struct Hub {
    tx: broadcast::Sender<std::sync::Arc<WireEvent>>,
    /// The last event of each kind that describes a state (health, disk, leader, listing),
    /// replayed to each new stream so it starts complete.
    sticky: Mutex<BTreeMap<&'static str, std::sync::Arc<WireEvent>>>,
    seq: AtomicU64,
    sessions: Mutex<BTreeMap<u64, SessionInfo>>,
    next_session: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// A hub that keeps up to 4 096 events for a slow reader before it lags.
    pub fn new() -> Hub {
        Hub {
            tx: broadcast::channel(4096).0,
            sticky: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(1),
            sessions: Mutex::new(BTreeMap::new()),
            next_session: AtomicU64::new(1),
        }
    }

    /// Publishes an event to every stream.
    pub fn publish(&self, actor: Option<String>, body: WireBody) {
        let ev = WireEvent {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            at: Utc::now(),
            actor,
            body,
        };
        let ev = std::sync::Arc::new(ev);
        if let Some(key) = ev.body.sticky_key() {
            self.sticky
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    /// The current state events, for a new stream.
    pub fn sticky(&self) -> Vec<std::sync::Arc<WireEvent>> {
        self.sticky
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A new receiver of every later event.
    pub fn subscribe(&self) -> broadcast::Receiver<std::sync::Arc<WireEvent>> {
        self.tx.subscribe()
    }

    /// Registers a session; it ends when the guard drops.
    pub fn join(self: &std::sync::Arc<Self>, mut info: SessionInfo) -> SessionGuard {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        info.id = id;
        self.lock().insert(id, info);
        self.publish(
            None,
            WireBody::Sessions {
                sessions: self.sessions(),
            },
        );
        SessionGuard {
            hub: self.clone(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, SessionInfo>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connected sessions.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.lock().values().cloned().collect()
    }
}

/// Removes its session when dropped (the stream closed).
pub struct SessionGuard {
    hub: std::sync::Arc<Hub>,
    id: u64,
}

impl SessionGuard {
    /// The session's id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.hub.lock().remove(&self.id);
        self.hub.publish(
            None,
            WireBody::Sessions {
                sessions: self.hub.sessions(),
            },
        );
    }
}

/// "alice approved api v1.5.0": a change said in words.
pub fn summary(c: &crate::release::LedgerChange) -> String {
    use crate::release::Status::*;
    let r = &c.release;
    let what = format!("{} {}", r.service_name, r.release_tag);
    let verb = match (c.from, c.to) {
        (None, _) => format!("created {what} ({})", c.to),
        (Some(f), t) if f == t && c.kind() == crate::release::AuditKind::ExternalChange => format!(
            "saw the engine change {}: {}",
            r.service_name,
            c.note
                .as_deref()
                .unwrap_or("")
                .trim_start_matches("external_change: ")
        ),
        (Some(f), t) if f == t && c.kind() == crate::release::AuditKind::AutomaticRollback => {
            format!(
                "rolled {} back automatically: {}",
                r.service_name,
                c.note
                    .as_deref()
                    .unwrap_or("")
                    .trim_start_matches("automatic_rollback: ")
            )
        }
        (Some(f), t) if f == t && c.kind() == crate::release::AuditKind::NotDeployed => format!(
            "could not start the deploy of {what}: {}",
            c.note
                .as_deref()
                .unwrap_or("")
                .trim_start_matches("not_deployed: ")
        ),
        (Some(f), t) if f == t => format!(
            "was refused on {what}: {}",
            c.note.as_deref().unwrap_or("refused")
        ),
        (_, ManualTestPassed) => format!("approved {what}"),
        (_, ManualTestFailed) => format!(
            "rejected {what}{}",
            c.note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        ),
        (_, Deploying) => format!("is deploying {what}"),
        (_, Deployed) => format!("deployed {what}"),
        (_, ProductionFailed) => format!(
            "failed to deploy {what}{}",
            c.note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        ),
        (_, Rollback) => format!(
            "is rolling back {what}{}",
            r.rollback_to_tag
                .as_deref()
                .map(|t| format!(" to {t}"))
                .unwrap_or_default()
        ),
        (_, RollbackDone) => format!("rolled back {what}"),
        (_, RollbackFailed) => format!("failed to roll back {what}"),
        (_, t) => format!("set {what} to {t}"),
    };
    format!("{} {verb}", c.actor)
}
