//! Two real servers (`opsdeck run`, each its own socket and data dir) on one PostgreSQL
//! ledger: a release created through one is seen by the other, and approvals sent to both at
//! once give one winner and one 409 that says who won.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/server.rs"]
mod server;

#[path = "support/postgres.rs"]
mod pg;

use server::TestServer;

#[test]
fn two_servers_on_one_ledger_one_approval_wins_the_other_is_a_409() {
    let Some(db) = pg::database() else { return };
    let storage = format!("[storage]\nurl = {:?}\n", db.url);
    let mut a = TestServer::new("0.1", &storage);
    let mut b = TestServer::new("0.1", &storage);
    a.start();
    b.start();
    for round in 0..3 {
        let id = a.create("api", &format!("v{round}"));
        // Seen at once through the other server: there is one ledger.
        assert_eq!(b.status_of(id), "manual_testing");
        let path = format!("/v1/releases/{id}/approve");
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| a.curl("POST", &path, None));
            let hb = s.spawn(|| b.curl("POST", &path, None));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let mut codes = [ra.0, rb.0];
        codes.sort();
        assert!(
            (200..300).contains(&codes[0]) && codes[1] == 409,
            "round {round}: {ra:?} {rb:?}"
        );
        let lost = if ra.0 == 409 { &ra.1 } else { &rb.1 };
        assert!(
            lost.contains("(root approved it ") || lost.contains("(root set it to "),
            "{lost}"
        );
        // Whichever server won deploys it; both read the outcome.
        a.wait_status(id, "deployed");
        assert_eq!(b.status_of(id), "deployed");
        let audit = b.json(&format!("/v1/releases/{id}"))["audit"].clone();
        let approvals = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["to"] == "manual_test_passed" && e["from"] == "manual_testing")
            .count();
        assert_eq!(approvals, 1, "{audit}");
    }
    // One chain, whole, from either side.
    for s in [&a, &b] {
        let out = s.ok(&["release", "verify"]);
        assert!(out.starts_with("ledger ok: "), "{out}");
    }
    assert!(a.stop().success());
    assert!(b.stop().success());
}
