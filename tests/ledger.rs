//! The ledger's contract, on both stores (SQLite and PostgreSQL): the lifecycle with its
//! audit trail, a lost race told who won, the database itself refusing forbidden statuses
//! and audit edits, one winner among concurrent approvers, and random action sequences.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/ledgers.rs"]
mod ledgers;

use ledgers::TestLedger;
use opsdeck::release::lifecycle;
use opsdeck::release::{Actor, Ledger, LedgerError, NewRelease, Status};
use proptest::prelude::*;

fn actor(name: &str) -> Actor {
    Actor {
        user: name.into(),
        sudo_user: None,
        ssh_client: Some("10.0.0.7".into()),
    }
}

fn new(service: &str, tag: &str) -> NewRelease {
    NewRelease {
        service_name: service.into(),
        release_tag: tag.into(),
        ..Default::default()
    }
}

both!(a_release_walks_the_lifecycle_with_an_audit_trail);
fn a_release_walks_the_lifecycle_with_an_audit_trail(t: &TestLedger) {
    let mut l = t.open();
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

both!(a_forbidden_transition_says_who_moved_it_and_what_is_allowed);
fn a_forbidden_transition_says_who_moved_it_and_what_is_allowed(t: &TestLedger) {
    let mut l = t.open();
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

both!(sql_itself_refuses_forbidden_statuses_and_audit_edits);
fn sql_itself_refuses_forbidden_statuses_and_audit_edits(t: &TestLedger) {
    let mut l = t.open();
    let r = l.create(&new("api", "v1"), &actor("ci")).unwrap();
    // A forbidden move written by hand: refused by the database, whoever writes it.
    let e = t
        .sql(&format!(
            "UPDATE releases SET status = 'deployed' WHERE id = {}",
            r.id
        ))
        .unwrap_err();
    assert!(e.contains("lifecycle forbids"), "{e}");
    // Every allowed move is still writable by hand (the trigger is not a blanket refusal).
    t.sql(&format!(
        "UPDATE releases SET status = 'building' WHERE id = {}",
        r.id
    ))
    .unwrap();
    let e = t
        .sql(
            "INSERT INTO releases (id, service_name, release_tag, status, created_at)
             VALUES (99, 'api', 'v2', 'approved', 'now')",
        )
        .unwrap_err();
    assert!(e.to_lowercase().contains("check"), "{e}");
    for edit in ["DELETE FROM audit", "UPDATE audit SET actor = 'mallory'"] {
        let e = t.sql(edit).unwrap_err();
        assert!(e.contains("append-only"), "{edit}: {e}");
    }
    if t.is_postgres() {
        let e = t.sql("TRUNCATE audit CASCADE").unwrap_err();
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(l.get(r.id).unwrap().unwrap().status, Status::Building);
    assert_eq!(l.audit(r.id).unwrap().len(), 1);
}

both!(concurrent_approvers_one_wins);
fn concurrent_approvers_one_wins(t: &TestLedger) {
    // Several rounds: a race that is lost only now and then still shows.
    for round in 0..10 {
        one_race(t, round);
    }
}

fn one_race(t: &TestLedger, round: usize) {
    let id = t
        .open()
        .create(
            &NewRelease {
                status: Some(Status::ManualTesting),
                ..new("api", &format!("v{round}"))
            },
            &actor("ci"),
        )
        .unwrap()
        .id;
    let barrier = std::sync::Barrier::new(8);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut l = t.open();
                    // Warm: the first query of a connection is slower than the race.
                    l.get(id).unwrap();
                    barrier.wait();
                    l.transition(
                        id,
                        Status::ManualTestPassed,
                        &actor(&format!("user{i}")),
                        None,
                        None,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "round {round}: {results:?}");
    // Every loser is told who won.
    let trail = t.open().audit(id).unwrap();
    assert_eq!(trail.len(), 2, "round {round}");
    let who = &trail[1].actor;
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, LedgerError::Forbidden { .. }), "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("is manual_test_passed ({who} approved it")),
                "{e}"
            );
        }
    }
    assert!(t.open().verify().is_ok());
}

/// One ledger per store for all the cases of the property below.
fn shared(postgres: bool) -> Option<&'static std::sync::Mutex<(TestLedger, Ledger)>> {
    static SQLITE: std::sync::OnceLock<std::sync::Mutex<(TestLedger, Ledger)>> =
        std::sync::OnceLock::new();
    static PG: std::sync::OnceLock<Option<std::sync::Mutex<(TestLedger, Ledger)>>> =
        std::sync::OnceLock::new();
    let with = |t: TestLedger| {
        let l = t.open();
        std::sync::Mutex::new((t, l))
    };
    if postgres {
        PG.get_or_init(|| TestLedger::postgres().map(with)).as_ref()
    } else {
        Some(SQLITE.get_or_init(|| with(TestLedger::sqlite())))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    /// Any sequence of attempted transitions leaves only statuses the lifecycle allows, and
    /// the audit trail is exactly the chain of accepted steps; on either store.
    #[test]
    fn random_actions_never_leave_a_forbidden_status(
        postgres in proptest::bool::ANY,
        steps in proptest::collection::vec(0usize..12, 1..40),
    ) {
        let Some(shared) = shared(postgres) else { return Ok(()) };
        let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
        let l = &mut guard.1;
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
        prop_assert!(l.verify().is_ok());
    }
}
