use proptest::prelude::*;

use super::*;

fn actor(name: &str) -> Actor {
    Actor {
        user: name.into(),
        sudo_user: None,
        ssh_client: Some("10.0.0.7".into()),
    }
}

fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("releases.db")).unwrap();
    (dir, l)
}

fn new(service: &str, tag: &str) -> NewRelease {
    NewRelease {
        service_name: service.into(),
        release_tag: tag.into(),
        ..Default::default()
    }
}

#[test]
fn a_release_walks_the_lifecycle_with_an_audit_trail() {
    let (_d, mut l) = ledger();
    let r = l.create(&new("api", "v2"), &actor("ci")).unwrap();
    assert_eq!(r.status, Status::Initiated);
    for to in [
        Status::Building,
        Status::ManualTesting,
        Status::ManualTestPassed,
        Status::Deploying,
        Status::Deployed,
    ] {
        l.transition(r.id, to, &actor("alice"), None, None).unwrap();
    }
    let r = l.get(r.id).unwrap().unwrap();
    assert_eq!(r.status, Status::Deployed);
    assert!(r.started_at.is_some() && r.completed_at.is_some());
    let trail = l.audit(r.id).unwrap();
    assert_eq!(trail.len(), 6);
    assert_eq!(
        (trail[0].from.as_deref(), trail[0].to.as_str()),
        (None, "initiated")
    );
    assert_eq!(trail[5].ssh_client.as_deref(), Some("10.0.0.7"));
    assert_eq!(l.deployed_tags("api").unwrap()[0].1, "v2");
}

#[test]
fn a_forbidden_transition_says_who_moved_it_and_what_is_allowed() {
    let (_d, mut l) = ledger();
    let r = l
        .create(
            &NewRelease {
                status: Some(Status::ManualTesting),
                ..new("api", "v3")
            },
            &actor("ci"),
        )
        .unwrap();
    l.transition(
        r.id,
        Status::ManualTestPassed,
        &actor("alice"),
        Some("looks good"),
        None,
    )
    .unwrap();
    let e = l
        .transition(r.id, Status::ManualTestPassed, &actor("bob"), None, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is manual_test_passed (alice approved it 0 s ago, at "),
        "{e}"
    );
    assert!(
        e.contains("from manual_test_passed only deploying is allowed"),
        "{e}"
    );
    assert!(matches!(
        l.transition(999, Status::Building, &actor("x"), None, None),
        Err(LedgerError::NotFound(999))
    ));
}

#[test]
fn sql_itself_refuses_forbidden_statuses_and_audit_edits() {
    let (_d, mut l) = ledger();
    let r = l.create(&new("api", "v1"), &actor("ci")).unwrap();
    let c = l.connection();
    let e = c
        .execute(
            "UPDATE releases SET status = 'deployed' WHERE id = ?1",
            [r.id],
        )
        .unwrap_err();
    assert!(e.to_string().contains("lifecycle forbids"), "{e}");
    let e = c
        .execute(
            "INSERT INTO releases (service_name, release_tag, status, created_at) VALUES ('api', 'v2', 'approved', 'now')",
            [],
        )
        .unwrap_err();
    assert!(e.to_string().contains("CHECK"), "{e}");
    assert!(c.execute("DELETE FROM audit", []).is_err());
    assert!(c.execute("UPDATE audit SET actor = 'mallory'", []).is_err());
    assert_eq!(l.get(r.id).unwrap().unwrap().status, Status::Initiated);
}

#[test]
fn two_connections_approving_at_once_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releases.db");
    let id = {
        let mut l = Ledger::open(&path).unwrap();
        l.create(
            &NewRelease {
                status: Some(Status::ManualTesting),
                ..new("api", "v9")
            },
            &actor("ci"),
        )
        .unwrap()
        .id
    };
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut l = Ledger::open(&path).unwrap();
                barrier.wait();
                l.transition(
                    id,
                    Status::ManualTestPassed,
                    &actor(&format!("user{i}")),
                    None,
                    None,
                )
                .is_ok()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(wins, 1);
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.audit(id).unwrap().len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    /// Any sequence of attempted transitions leaves only statuses the lifecycle allows, and
    /// the audit trail is exactly the chain of accepted steps.
    #[test]
    fn random_actions_never_leave_a_forbidden_status(steps in proptest::collection::vec(0usize..12, 1..40)) {
        let (_d, mut l) = ledger();
        let r = l.create(&new("api", "v1"), &actor("ci")).unwrap();
        let mut current = Status::Initiated;
        let mut accepted = 1;
        for s in steps {
            let to = Status::ALL[s];
            let allowed = lifecycle::check(current, to).is_ok();
            let res = l.transition(r.id, to, &actor("p"), None, None);
            prop_assert_eq!(res.is_ok(), allowed);
            if allowed {
                current = to;
                accepted += 1;
            }
            prop_assert_eq!(l.get(r.id).unwrap().unwrap().status, current);
        }
        let trail = l.audit(r.id).unwrap();
        prop_assert_eq!(trail.len(), accepted);
        for w in trail.windows(2) {
            let from: Status = w[1].from.as_deref().unwrap().parse().unwrap();
            let to: Status = w[1].to.parse().unwrap();
            prop_assert_eq!(w[0].to.as_str(), from.as_str());
            prop_assert!(lifecycle::check(from, to).is_ok());
        }
    }
}
