//! What a release can be rolled back to, and when each tag last ran: the ledger's deployed
//! tags, the engine's current spec, the service's task history (which holds the previous
//! spec's tasks) and the repository's images on this manager (which include what ran before opsdeck).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::deploy::SwarmDeployer;
use super::ledger::{Ledger, LedgerError, Release};
use crate::config::{DeployerKind, ReleasesConfig};

/// Where opsdeck learned of a tag; the first that applies wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOrigin {
    /// A release deployed it.
    Ledger,
    /// The engine's current service spec.
    EngineSpec,
    /// A task in the service's history ran it (the previous spec's tasks among them).
    TaskHistory,
    /// An image of the repository present on this manager.
    Image,
}

impl TargetOrigin {
    /// A few words for the picker: "deployed by a release", "task history".
    pub fn label(self) -> &'static str {
        match self {
            TargetOrigin::Ledger => "deployed by a release",
            TargetOrigin::EngineSpec => "engine's spec",
            TargetOrigin::TaskHistory => "task history",
            TargetOrigin::Image => "image on this manager",
        }
    }
}

/// A tag the engine knows for a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineTag {
    pub tag: String,
    pub origin: TargetOrigin,
    /// The newest task state change on this tag (the engine keeps a few tasks per slot).
    pub last_ran: Option<DateTime<Utc>>,
    /// A task runs it now.
    pub running: bool,
}

/// One choice of the rollback picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackTarget {
    pub tag: String,
    pub origin: TargetOrigin,
    /// When it last ran: the newer of its last deploy through the ledger and its newest task
    /// in the engine's history; `None` when nothing says it ever ran here.
    #[serde(default)]
    pub last_ran: Option<DateTime<Utc>>,
    /// The engine runs it now.
    #[serde(default)]
    pub running: bool,
}

impl RollbackTarget {
    /// "running now", "last ran 11-28 14:02", "never ran here" (times in `offset`).
    pub fn when(&self, offset: &chrono::FixedOffset) -> String {
        match (self.running, self.last_ran) {
            (true, _) => "running now".into(),
            (false, Some(t)) => format!(
                "last ran {}",
                t.with_timezone(offset).format("%Y-%m-%d %H:%M")
            ),
            (false, None) => "never ran here".into(),
        }
    }
}

/// The picker's list for `release`: the ledger's deployed tags of its service (newest
/// deploy first), then the tags only the engine knows, newest run first; the release's own
/// tag left out. Each tag once, with the newest time any source gives it.
pub fn rollback_targets(
    ledger: &Ledger,
    release: &Release,
    engine: &[EngineTag],
) -> Result<Vec<RollbackTarget>, LedgerError> {
    let mut out: Vec<RollbackTarget> = Vec::new();
    for (rid, tag, at) in ledger.deployed_tags(&release.service_name)? {
        if rid == release.id || tag == release.release_tag {
            continue;
        }
        match out.iter_mut().find(|t| t.tag == tag) {
            Some(t) => t.last_ran = t.last_ran.max(Some(at)),
            None => out.push(RollbackTarget {
                tag,
                origin: TargetOrigin::Ledger,
                last_ran: Some(at),
                running: false,
            }),
        }
    }
    let from_ledger = out.len();
    for e in engine {
        if e.tag == release.release_tag {
            continue;
        }
        match out.iter_mut().find(|t| t.tag == e.tag) {
            Some(t) => {
                t.last_ran = t.last_ran.max(e.last_ran);
                t.running |= e.running;
            }
            None => out.push(RollbackTarget {
                tag: e.tag.clone(),
                origin: e.origin,
                last_ran: e.last_ran,
                running: e.running,
            }),
        }
    }
    out[from_ledger..].sort_by(|a, b| {
        b.running
            .cmp(&a.running)
            .then(b.last_ran.cmp(&a.last_ran))
            .then(a.origin.cmp(&b.origin))
            .then(a.tag.cmp(&b.tag))
    });
    // Without the engine (the command deployer), the ledger says what runs now.
    if engine.is_empty()
        && let Some(tag) = running_by_ledger(ledger, &release.service_name)?
        && let Some(t) = out.iter_mut().find(|t| t.tag == tag)
    {
        t.running = true;
    }
    Ok(out)
}

/// The tag the ledger says a service runs: that of its last completed deploy or rollback.
/// `None` when the last one failed (the engine may run either tag) or none completed.
pub fn running_by_ledger(ledger: &Ledger, service: &str) -> Result<Option<String>, LedgerError> {
    use super::Status;
    let last = ledger
        .list(Some(service), None)?
        .into_iter()
        .filter(|r| r.completed_at.is_some())
        .filter(|r| {
            matches!(
                r.status,
                Status::Deployed
                    | Status::RollbackDone
                    | Status::ProductionFailed
                    | Status::RollbackFailed
            )
        })
        .max_by_key(|r| (r.completed_at, r.id));
    Ok(last.and_then(|r| match r.status {
        Status::Deployed => Some(r.release_tag),
        Status::RollbackDone => r.rollback_to_tag,
        _ => None,
    }))
}

/// Tags the engine knows for `r`'s service (see `SwarmDeployer::known_tags`); empty with
/// the command deployer or when the engine does not answer.
pub async fn engine_tags(cfg: &ReleasesConfig, r: &Release) -> Vec<EngineTag> {
    let Some(svc) = cfg.service(&r.service_name) else {
        return Vec::new();
    };
    if cfg.deployer != DeployerKind::Swarm {
        return Vec::new();
    }
    let repo = r
        .image
        .clone()
        .or(svc.repository.clone())
        .unwrap_or_else(|| svc.name.clone());
    match SwarmDeployer::connect().await {
        Ok(s) => s.known_tags(&svc.swarm_service, &repo).await,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{Actor, NewRelease, Status};

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    /// A ledger in `dir` with a release of api per tag, each deployed in turn; their ids.
    fn deployed(dir: &std::path::Path, tags: &[&str]) -> (Ledger, Vec<i64>) {
        let mut ledger = Ledger::open(&dir.join("ledger.db")).unwrap();
        let actor = Actor::current();
        let mut ids = Vec::new();
        for tag in tags {
            let r = ledger
                .create(
                    &NewRelease {
                        service_name: "api".into(),
                        release_tag: tag.to_string(),
                        status: Some(Status::ManualTesting),
                        ..Default::default()
                    },
                    &actor,
                )
                .unwrap();
            for s in [
                Status::ManualTestPassed,
                Status::Deploying,
                Status::Deployed,
            ] {
                ledger.transition(r.id, s, &actor, None, None).unwrap();
            }
            ids.push(r.id);
        }
        (ledger, ids)
    }

    #[test]
    fn without_the_engine_the_ledgers_last_deploy_or_rollback_is_running_now() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, ids) = deployed(dir.path(), &["v1", "v2", "v3"]);
        let actor = Actor::current();
        // Rolling back the oldest: v3 runs now and is marked so; v2 is not.
        let oldest = ledger.get(ids[0]).unwrap().unwrap();
        let t = rollback_targets(&ledger, &oldest, &[]).unwrap();
        let running: Vec<(&str, bool)> = t.iter().map(|t| (t.tag.as_str(), t.running)).collect();
        assert_eq!(running, [("v3", true), ("v2", false)]);
        assert_eq!(
            t[0].when(&chrono::FixedOffset::east_opt(0).unwrap()),
            "running now"
        );
        // v3 rolled back to v2: now v2 runs.
        ledger
            .transition(ids[2], Status::Rollback, &actor, None, Some("v2"))
            .unwrap();
        ledger
            .transition(ids[2], Status::RollbackDone, &actor, None, None)
            .unwrap();
        assert_eq!(
            running_by_ledger(&ledger, "api").unwrap().as_deref(),
            Some("v2")
        );
        let t = rollback_targets(&ledger, &oldest, &[]).unwrap();
        assert!(t.iter().any(|t| t.tag == "v2" && t.running), "{t:?}");
        assert!(t.iter().all(|t| t.tag == "v2" || !t.running), "{t:?}");
        // With the engine's word, the ledger's guess is not used.
        let engine = [EngineTag {
            tag: "v1".into(),
            origin: TargetOrigin::EngineSpec,
            last_ran: None,
            running: true,
        }];
        let t = rollback_targets(&ledger, &ledger.get(ids[1]).unwrap().unwrap(), &engine).unwrap();
        assert!(t.iter().all(|t| !t.running || t.tag == "v1"), "{t:?}");
    }

    #[test]
    fn ledger_first_then_engine_newest_run_first_each_tag_once() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, ids) = deployed(dir.path(), &["v2", "v3", "v4"]);
        let current = ledger.get(ids[2]).unwrap().unwrap();
        let engine = vec![
            EngineTag {
                tag: "v4".into(),
                origin: TargetOrigin::EngineSpec,
                last_ran: at("2026-12-01T10:00:00Z"),
                running: true,
            },
            EngineTag {
                tag: "v0".into(),
                origin: TargetOrigin::Image,
                last_ran: None,
                running: false,
            },
            EngineTag {
                tag: "v1".into(),
                origin: TargetOrigin::TaskHistory,
                last_ran: at("2026-11-20T08:00:00Z"),
                running: false,
            },
            EngineTag {
                tag: "v2".into(),
                origin: TargetOrigin::TaskHistory,
                last_ran: at("2099-01-01T00:00:00Z"),
                running: false,
            },
        ];
        let t = rollback_targets(&ledger, &current, &engine).unwrap();
        let tags: Vec<&str> = t.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(tags, ["v3", "v2", "v1", "v0"], "{t:?}");
        assert_eq!(t[0].origin, TargetOrigin::Ledger);
        // The engine's task history is newer than the ledger's deploy of v2: the newer wins.
        assert_eq!(t[1].last_ran, at("2099-01-01T00:00:00Z"));
        assert_eq!(t[2].origin, TargetOrigin::TaskHistory);
        let utc = chrono::FixedOffset::east_opt(0).unwrap();
        assert_eq!(t[2].when(&utc), "last ran 2026-11-20 08:00");
        assert_eq!(t[3].when(&utc), "never ran here");
    }
}
