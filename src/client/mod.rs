//! The front ends' side of the server: find it, call it, and turn its event stream into the
//! same `Event`s the in-process services send, so the dashboard does not know which mode it
//! is in. `Backend` is the one interface the dashboard's actions go through: local (services
//! in this process) or remote (the server's socket).

mod backend;
pub mod http;
pub mod logs;

pub use backend::{Backend, LOCAL_CANCEL, LocalBackend};
pub use http::{ClientError, UnixHttp};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use hyper::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventTx};
use crate::release::{AuditEntry, NewRelease, Release, Status};
use crate::server::hub::{WireBody, WireEvent};

/// The server, as a client sees it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub http: UnixHttp,
}

/// One release with its audit trail, as `GET /v1/releases/{id}` gives it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ReleaseWithAudit {
    pub release: Release,
    pub audit: Vec<AuditEntry>,
}

/// A line of an action that streams its progress (`?wait=1`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct WorkLine {
    #[serde(default)]
    pub progress: Option<String>,
    #[serde(default)]
    pub release: Option<Release>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub done: bool,
}

/// Where a client looks for the server (see `paths::client_socket_path`).
pub fn socket_for(server_flag: Option<&Path>, cfg_socket: Option<&Path>) -> PathBuf {
    crate::paths::client_socket_path(server_flag, cfg_socket)
}

impl Remote {
    /// The server on `socket`, when one answers `/v1/health` there.
    pub async fn connect(socket: &Path) -> Option<Remote> {
        if !socket.exists() {
            return None;
        }
        let http = UnixHttp::new(socket.to_path_buf());
        match tokio::time::timeout(
            Duration::from_secs(3),
            http.get_json::<serde_json::Value>("/v1/health"),
        )
        .await
        {
            Ok(Ok(_)) => Some(Remote { http }),
            _ => None,
        }
    }

    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        self.http.get_json("/v1/health").await
    }

    pub async fn whoami(&self) -> Result<serde_json::Value, ClientError> {
        self.http.get_json("/v1/whoami").await
    }

    pub async fn list(
        &self,
        service: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<Release>, ClientError> {
        let mut q = Vec::new();
        if let Some(s) = service {
            q.push(format!("service={}", urlenc(s)));
        }
        if let Some(s) = status {
            q.push(format!("status={s}"));
        }
        let path = if q.is_empty() {
            "/v1/releases".to_string()
        } else {
            format!("/v1/releases?{}", q.join("&"))
        };
        self.http.get_json(&path).await
    }

    pub async fn show(&self, id: i64) -> Result<ReleaseWithAudit, ClientError> {
        self.http.get_json(&format!("/v1/releases/{id}")).await
    }

    pub async fn targets(
        &self,
        id: i64,
    ) -> Result<Vec<crate::release::targets::RollbackTarget>, ClientError> {
        self.http
            .get_json(&format!("/v1/releases/{id}/targets"))
            .await
    }

    pub async fn create(&self, new: &NewRelease) -> Result<Release, ClientError> {
        self.http.post_json("/v1/releases", new).await
    }

    pub async fn ci_status(
        &self,
        id: i64,
        status: Status,
        note: Option<&str>,
    ) -> Result<Release, ClientError> {
        self.http
            .post_json(
                &format!("/v1/releases/{id}/status"),
                &json!({"status": status, "note": note}),
            )
            .await
    }

    pub async fn reject(&self, id: i64, reason: &str) -> Result<Release, ClientError> {
        self.http
            .post_json(
                &format!("/v1/releases/{id}/reject"),
                &json!({"reason": reason}),
            )
            .await
    }

    /// Approve, rollback or deploy without waiting: the release as the server accepted it.
    pub async fn start_work(
        &self,
        id: i64,
        verb: &str,
        body: serde_json::Value,
    ) -> Result<Release, ClientError> {
        self.http
            .post_json(&format!("/v1/releases/{id}/{verb}"), &body)
            .await
    }

    /// Approve, rollback or deploy, following the server's progress lines to the end.
    pub async fn work(
        &self,
        id: i64,
        verb: &str,
        body: serde_json::Value,
        mut progress: impl FnMut(&str),
    ) -> Result<Release, ClientError> {
        let b = serde_json::to_vec(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut lines = Box::pin(
            self.http
                .lines(
                    Method::POST,
                    &format!("/v1/releases/{id}/{verb}?wait=1"),
                    Some(b),
                )
                .await?,
        );
        while let Some(line) = lines.next().await {
            let l: WorkLine =
                serde_json::from_str(&line?).map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(p) = &l.progress {
                progress(p);
            }
            if l.done {
                return match (l.release, l.error) {
                    (Some(r), _) => Ok(r),
                    (None, e) => Err(ClientError::Api {
                        status: 500,
                        code: l.code.unwrap_or_else(|| "failed".into()),
                        error: e.unwrap_or_else(|| "failed".into()),
                    }),
                };
            }
        }
        Err(ClientError::Protocol(
            "the server closed the stream before the end; the work goes on in the server (see `opsdeck release show`)".into(),
        ))
    }

    /// Exports now and waits for the outcome.
    pub async fn export_wait(
        &self,
        groups: &[String],
    ) -> Result<crate::export::RunOutcome, ClientError> {
        self.http
            .post_json("/v1/exports?wait=1", &json!({"groups": groups}))
            .await
    }
}

/// Percent-encodes a query value.
pub(crate) fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Follows the server's `/v1/events` and sends what arrives as `Event`s: the release list
/// (kept here, sent whole on each change, as the local ledger watcher does), a notice for
/// each change someone made, export and schedule events, sessions. Reconnects with backoff
/// and says so when the server goes away.
pub fn spawn_event_pump(
    remote: Remote,
    tx: EventTx,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut releases: BTreeMap<i64, Release> = BTreeMap::new();
        let mut delay = Duration::from_millis(250);
        let mut lost = false;
        loop {
            let run = pump_once(&remote, &tx, &mut releases, &mut lost);
            tokio::select! {
                () = cancel.cancelled() => return,
                r = run => {
                    if let Err(e) = r && !lost {
                        lost = true;
                        let _ = tx.send(Event::Notice(format!("lost the server: {e}; reconnecting…"))).await;
                        let _ = tx.send(Event::ReleasesUnavailable(format!("the server is unreachable: {e}"))).await;
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    })
}

async fn pump_once(
    remote: &Remote,
    tx: &EventTx,
    releases: &mut BTreeMap<i64, Release>,
    lost: &mut bool,
) -> Result<(), ClientError> {
    let mut lines = Box::pin(remote.http.lines(Method::GET, "/v1/events", None).await?);
    // Subscribed first, then the snapshot: no change can fall between the two.
    let list = remote.list(None, None).await?;
    *releases = list.into_iter().map(|r| (r.id, r)).collect();
    let send_list = |releases: &BTreeMap<i64, Release>| {
        Event::Releases(releases.values().rev().cloned().collect())
    };
    let _ = tx.send(send_list(releases)).await;
    // Roles can change while we are away (a server restarted with a new [access]).
    let me = remote.whoami().await?;
    let _ = tx
        .send(Event::Whoami {
            user: me["user"].as_str().unwrap_or_default().to_string(),
            refusals: serde_json::from_value(me["refusals"].clone()).unwrap_or_default(),
        })
        .await;
    if std::mem::take(lost) {
        let _ = tx
            .send(Event::Notice("reconnected to the server".into()))
            .await;
    }
    while let Some(line) = lines.next().await {
        let line = line?;
        let Ok(ev) = serde_json::from_str::<WireEvent>(&line) else {
            continue;
        };
        let out: Vec<Event> = match ev.body {
            WireBody::Hello { sessions } | WireBody::Sessions { sessions } => {
                vec![Event::Sessions(sessions)]
            }
            WireBody::Release { release, summary } => {
                releases.insert(release.id, release);
                // Every session hears every change, its own user's other sessions too.
                vec![send_list(releases), Event::Notice(summary)]
            }
            WireBody::DeployProgress { id, line } => vec![Event::DeployProgress { id, line }],
            WireBody::Work { work } => vec![Event::Work(work)],
            WireBody::Export { event } => vec![Event::Export(event)],
            WireBody::Schedule { event } => vec![Event::Schedule(event)],
            WireBody::ExportDir { listing } => vec![Event::ExportDir(listing)],
            WireBody::JobFinished { job } => vec![Event::JobFinished { job }],
            WireBody::TestopsHealth { error } => {
                vec![Event::TestOpsHealth(error.map_or(Ok(()), Err))]
            }
            WireBody::DiskFree { bytes } => vec![Event::DiskFree(bytes)],
            WireBody::Paused { jobs } => vec![Event::Paused(jobs.into_iter().collect())],
            WireBody::Cron { job, expr } => vec![Event::CronChanged { job, expr }],
            WireBody::Notify { failing } => vec![Event::NotifyFailing(failing)],
            WireBody::LedgerTampered { row } => vec![Event::LedgerTampered(row)],
            WireBody::Services { services } => vec![Event::Services(std::sync::Arc::new(services))],
        };
        for e in out {
            if tx.send(e).await.is_err() {
                return Ok(());
            }
        }
    }
    Err(ClientError::Unreachable {
        socket: remote.http.socket.display().to_string(),
        reason: "the event stream ended".into(),
    })
}
