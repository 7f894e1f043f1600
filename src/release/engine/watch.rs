//! `ServicesWatch`: the live state of every configured service, kept current by the Docker
//! events stream (service and container events), a fast poll while a rollout moves, and a
//! slow fallback poll; drift is checked against the ledger on every change.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use super::drift::{self, Drift};
use super::live::ServiceLive;
use super::read;
use crate::config::{DeployerKind, ReleasesConfig};
use crate::release::Ledger;

/// How often the engine is read when nothing says it changed.
const FALLBACK_POLL: Duration = Duration::from_secs(10);
/// How often it is read while a rollout or rollback moves (task progress).
const MOVING_POLL: Duration = Duration::from_millis(500);
/// Events closer together than this make one read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Opens the ledger the way the owner wants its writes observed (the server's observer).
pub type OpenLedger = Arc<dyn Fn() -> Option<Ledger> + Send + Sync>;
/// Told of each drift newly recorded.
pub type OnDrift = Arc<dyn Fn(&ServiceLive, &Drift) + Send + Sync>;

/// The handle: the latest states, and a way to ask for a fresh read.
#[derive(Clone)]
pub struct ServicesWatch {
    rx: watch::Receiver<Arc<Vec<ServiceLive>>>,
    poke: Arc<Notify>,
}

impl ServicesWatch {
    /// Starts watching the configured services (nothing to watch with the command
    /// deployer: the list stays empty).
    pub fn spawn(cfg: ReleasesConfig, ledger: OpenLedger, on_drift: OnDrift) -> ServicesWatch {
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        let poke = Arc::new(Notify::new());
        if cfg.deployer == DeployerKind::Swarm && !cfg.services.is_empty() {
            tokio::spawn(run(cfg, ledger, on_drift, tx, poke.clone()));
        }
        ServicesWatch { rx, poke }
    }

    /// The latest states.
    pub fn current(&self) -> Arc<Vec<ServiceLive>> {
        self.rx.borrow().clone()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<ServiceLive>>> {
        self.rx.clone()
    }

    /// Reads the engine again soon (the ledger changed, a deploy started).
    pub fn poke(&self) {
        self.poke.notify_one();
    }
}

/// Reads every configured service once, with drift filled in and recorded.
pub async fn read_all(
    docker: Option<&Docker>,
    cfg: &ReleasesConfig,
    ledger: &OpenLedger,
    on_drift: &OnDrift,
    connect_error: &str,
) -> Vec<ServiceLive> {
    let mut out = Vec::with_capacity(cfg.services.len());
    for s in &cfg.services {
        out.push(match docker {
            Some(d) => read::read(d, &s.name, &s.swarm_service).await,
            None => ServiceLive::unreachable(&s.name, &s.swarm_service, connect_error.into()),
        });
    }
    let ledger = ledger.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let mut out = out;
        let recorded = match ledger() {
            Some(mut l) => drift::check(&mut l, &mut out).unwrap_or_else(|e| {
                tracing::warn!("drift check: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        (out, recorded)
    })
    .await;
    let Ok((out, recorded)) = checked else {
        return Vec::new();
    };
    for d in &recorded {
        if let Some(s) = out.iter().find(|s| s.drift.as_ref() == Some(d)) {
            tracing::warn!(
                service = %s.service,
                "{}",
                d.text(&chrono::Offset::fix(&chrono::Utc))
            );
            on_drift(s, d);
        }
    }
    out
}

/// Connects and reads every configured service once (`opsdeck services`, a server asked
/// before its watch read the engine).
pub async fn read_once(cfg: &ReleasesConfig, ledger: &OpenLedger) -> Vec<ServiceLive> {
    let (docker, error) = match crate::release::deploy::SwarmDeployer::docker().await {
        Ok(d) => (Some(d), String::new()),
        Err(e) => (None, e),
    };
    let quiet: OnDrift = Arc::new(|_, _| {});
    read_all(docker.as_ref(), cfg, ledger, &quiet, &error).await
}

/// Equal but for when they were read.
fn same(a: &[ServiceLive], b: &[ServiceLive]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let mut y = y.clone();
            y.observed_at = x.observed_at;
            *x == y
        })
}

async fn run(
    cfg: ReleasesConfig,
    ledger: OpenLedger,
    on_drift: OnDrift,
    tx: watch::Sender<Arc<Vec<ServiceLive>>>,
    poke: Arc<Notify>,
) {
    let ours: HashSet<String> = cfg
        .services
        .iter()
        .map(|s| s.swarm_service.clone())
        .collect();
    loop {
        let docker = crate::release::deploy::SwarmDeployer::docker().await;
        let (docker, error) = match docker {
            Ok(d) => (Some(d), String::new()),
            Err(e) => (None, e),
        };
        let publish = |states: Vec<ServiceLive>| {
            tx.send_if_modified(|cur| {
                if same(cur, &states) {
                    false
                } else {
                    *cur = Arc::new(states);
                    true
                }
            })
        };
        let states = read_all(docker.as_ref(), &cfg, &ledger, &on_drift, &error).await;
        publish(states);
        let Some(docker) = docker else {
            tokio::select! {
                _ = tokio::time::sleep(FALLBACK_POLL) => {}
                _ = poke.notified() => {}
            }
            if tx.is_closed() {
                return;
            }
            continue;
        };
        let mut filters = std::collections::HashMap::new();
        filters.insert(
            "type".to_string(),
            vec!["service".to_string(), "container".to_string()],
        );
        let mut events = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        // A deadline, not a fresh sleep per turn: other containers' events must not keep
        // postponing the poll.
        let mut next_read = tokio::time::Instant::now() + FALLBACK_POLL;
        loop {
            let moving = tx.borrow().iter().any(|s| s.in_motion());
            if moving {
                next_read = next_read.min(tokio::time::Instant::now() + MOVING_POLL);
            }
            let lost = tokio::select! {
                e = events.next() => match e {
                    Some(Ok(m)) => {
                        let attrs = m.actor.as_ref().and_then(|a| a.attributes.as_ref());
                        let name = attrs.and_then(|a| {
                            a.get("com.docker.swarm.service.name").or(a.get("name"))
                        });
                        if !name.is_some_and(|n| ours.contains(n)) {
                            continue;
                        }
                        // A burst (a rollout is many events) makes one read.
                        tokio::time::sleep(DEBOUNCE).await;
                        false
                    }
                    Some(Err(e)) => {
                        tracing::info!("Docker events stream: {e}; reconnecting");
                        true
                    }
                    None => true,
                },
                _ = tokio::time::sleep_until(next_read) => false,
                _ = poke.notified() => false,
            };
            if tx.is_closed() {
                return;
            }
            if lost {
                tokio::time::sleep(Duration::from_secs(1)).await;
                break;
            }
            let states = read_all(Some(&docker), &cfg, &ledger, &on_drift, "").await;
            publish(states);
            next_read = tokio::time::Instant::now() + FALLBACK_POLL;
        }
    }
}
