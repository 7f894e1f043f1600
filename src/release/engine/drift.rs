//! Drift: the engine runs a tag the ledger did not deploy last (by hand, by the engine's own
//! rollback, by another tool). Decided from the ledger's releases of the service and the
//! engine's live state; recorded once per change as an `external_change` audit entry.

use crate::release::{Actor, AuditKind, Ledger, LedgerError, Release, Status};

pub use super::live::Drift;
use super::live::ServiceLive;

/// What the ledger says about a service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectation {
    /// The release whose tag the ledger says runs, and that tag: the newest `deployed`
    /// (its tag) or `rollback_done` (its rollback target).
    pub last: Option<(i64, String)>,
    /// Tags a failed deploy or rollback after `last` may have left on the engine (a paused
    /// update): not drift, the release's failure says it already.
    pub tolerated: Vec<String>,
    /// A deploy or rollback is in progress: the engine is expected to move.
    pub in_flight: bool,
}

/// The ledger's expectation for `service`, from its releases (any order).
pub fn expectation(releases: &[Release], service: &str) -> Expectation {
    let mine = releases.iter().filter(|r| r.service_name == service);
    let mut last: Option<(&Release, String)> = None;
    for r in mine.clone() {
        let tag = match r.status {
            Status::Deployed => r.release_tag.clone(),
            Status::RollbackDone => match &r.rollback_to_tag {
                Some(t) => t.clone(),
                None => continue,
            },
            _ => continue,
        };
        if last
            .as_ref()
            .is_none_or(|(l, _)| (r.completed_at, r.id) > (l.completed_at, l.id))
        {
            last = Some((r, tag));
        }
    }
    let after = last.as_ref().and_then(|(l, _)| l.completed_at);
    let tolerated = mine
        .clone()
        .filter(|r| matches!(r.status, Status::ProductionFailed | Status::RollbackFailed))
        .filter(|r| after.is_none() || r.completed_at >= after)
        .flat_map(|r| [Some(r.release_tag.clone()), r.rollback_to_tag.clone()])
        .flatten()
        .collect();
    Expectation {
        last: last.map(|(r, t)| (r.id, t)),
        tolerated,
        in_flight: mine
            .clone()
            .any(|r| matches!(r.status, Status::Deploying | Status::Rollback)),
    }
}

/// The drift `live` shows against `expected`, if any.
pub fn drift(live: &ServiceLive, expected: &Expectation) -> Option<Drift> {
    let (_, ledger_tag) = expected.last.as_ref()?;
    if live.error.is_some()
        || live.tag.is_empty()
        || live.tag == *ledger_tag
        || expected.in_flight
        || live.in_motion()
        || expected.tolerated.contains(&live.tag)
    {
        return None;
    }
    Some(Drift {
        engine_tag: live.tag.clone(),
        ledger_tag: ledger_tag.clone(),
        since: live.updated_at,
    })
}

/// Fills `ledger_tag` and `drift` of each service from the ledger, and records each drift
/// not recorded yet as an `external_change` on the release the ledger says runs. Returns the
/// drifts newly recorded.
pub fn check(ledger: &mut Ledger, live: &mut [ServiceLive]) -> Result<Vec<Drift>, LedgerError> {
    let releases = ledger.list(None, None)?;
    let mut recorded = Vec::new();
    for s in live.iter_mut() {
        let expected = expectation(&releases, &s.service);
        s.ledger_tag = expected.last.as_ref().map(|(_, t)| t.clone());
        s.drift = drift(s, &expected);
        let (Some(d), Some((id, _))) = (&s.drift, &expected.last) else {
            continue;
        };
        let note = format!(
            "engine runs {}, ledger says {} (service {})",
            d.engine_tag, d.ledger_tag, s.swarm_service
        );
        let full = format!("{}: {note}", AuditKind::ExternalChange.as_str());
        let already = ledger
            .audit(*id)?
            .iter()
            .rev()
            .find(|a| a.kind() == AuditKind::ExternalChange)
            .is_some_and(|a| a.note.as_deref() == Some(full.as_str()));
        if !already {
            ledger.record_note(*id, &engine_actor(), AuditKind::ExternalChange, &note)?;
            recorded.push(d.clone());
        }
    }
    Ok(recorded)
}

/// Who the audit names for what the engine did on its own.
pub fn engine_actor() -> Actor {
    Actor {
        user: "engine".into(),
        sudo_user: None,
        ssh_client: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn rel(id: i64, tag: &str, status: Status, done_min: i64) -> Release {
        Release {
            id,
            service_name: "api".into(),
            release_tag: tag.into(),
            rollback_to_tag: None,
            image: None,
            status,
            initiated_by: None,
            github_run_id: None,
            github_action_link: None,
            github_ref: None,
            created_at: Utc::now(),
            started_at: None,
            completed_at: Some(Utc::now() + Duration::minutes(done_min)),
        }
    }

    fn live(tag: &str) -> ServiceLive {
        ServiceLive {
            service: "api".into(),
            tag: tag.into(),
            update_state: "completed".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_newest_deploy_or_rollback_is_what_the_ledger_says() {
        let mut back = rel(3, "v3", Status::RollbackDone, 3);
        back.rollback_to_tag = Some("v1".into());
        let rs = vec![
            rel(1, "v1", Status::Deployed, 1),
            rel(2, "v2", Status::Deployed, 2),
            back,
        ];
        let e = expectation(&rs, "api");
        assert_eq!(e.last, Some((3, "v1".into())));
        assert_eq!(drift(&live("v1"), &e), None);
        let d = drift(&live("v2"), &e).unwrap();
        assert_eq!((d.engine_tag.as_str(), d.ledger_tag.as_str()), ("v2", "v1"));
    }

    #[test]
    fn no_drift_while_a_deploy_runs_or_a_failed_one_left_its_tag() {
        let rs = vec![
            rel(1, "v1", Status::Deployed, 1),
            rel(2, "v2", Status::ProductionFailed, 2),
        ];
        let e = expectation(&rs, "api");
        assert_eq!(drift(&live("v2"), &e), None, "the failure says it already");
        assert!(drift(&live("v0"), &e).is_some());
        let mut rs = rs;
        rs.push(rel(3, "v3", Status::Deploying, 0));
        assert_eq!(drift(&live("v0"), &expectation(&rs, "api")), None);
        let mut moving = live("v0");
        moving.update_state = "updating".into();
        assert_eq!(drift(&moving, &expectation(&rs[..2], "api")), None);
    }

    #[test]
    fn a_service_no_release_deployed_has_no_drift() {
        let e = expectation(&[rel(1, "v1", Status::ManualTesting, 0)], "api");
        assert_eq!(drift(&live("v0"), &e), None);
    }

    #[test]
    fn drift_is_recorded_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("r.db")).unwrap();
        let me = Actor::current();
        let r = ledger
            .create(
                &crate::release::NewRelease {
                    service_name: "api".into(),
                    release_tag: "v2".into(),
                    status: Some(Status::ManualTesting),
                    ..Default::default()
                },
                &me,
            )
            .unwrap();
        for to in [
            Status::ManualTestPassed,
            Status::Deploying,
            Status::Deployed,
        ] {
            ledger.transition(r.id, to, &me, None, None).unwrap();
        }
        let mut services = vec![live("v1")];
        let first = check(&mut ledger, &mut services).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(services[0].ledger_tag.as_deref(), Some("v2"));
        assert!(services[0].drift.is_some());
        assert!(check(&mut ledger, &mut services).unwrap().is_empty());
        let audit = ledger.audit(r.id).unwrap();
        let last = audit.last().unwrap();
        assert_eq!(last.kind(), AuditKind::ExternalChange);
        assert_eq!(last.to, "deployed", "no status changes");
        assert_eq!(last.actor, "engine");
        assert!(ledger.verify().is_ok(), "the chain holds the entry");
        // The engine moves again: a new entry.
        let mut services = vec![live("v0")];
        assert_eq!(check(&mut ledger, &mut services).unwrap().len(), 1);
    }
}
