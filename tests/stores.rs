//! The run history, the notification outbox and the API tokens: one contract each, run on
//! both stores (an SQLite file, and a PostgreSQL database of the throwaway cluster, skipped
//! with the reason when none can start unless OPSDECK_REQUIRE_POSTGRES=1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/postgres.rs"]
mod pg;

use chrono::Utc;
use opsdeck::export::{AttemptEnd, RunHistory};
use opsdeck::notify::{EventKind, NotifyEvent, Outbox};
use opsdeck::server::access::Role;
use opsdeck::server::tokens::{TokenError, TokenStore, Verdict};
use opsdeck::storage::PgConfig;
use secrecy::ExposeSecret;

/// Where one test keeps its state.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(pg::Database, PgConfig),
}

impl Place {
    fn history(&self) -> RunHistory {
        match self {
            Place::Sqlite(d) => RunHistory::open(&d.path().join("history.db")).unwrap(),
            Place::Postgres(_, c) => RunHistory::open_pg(c).unwrap(),
        }
    }

    fn outbox(&self) -> Outbox {
        match self {
            Place::Sqlite(d) => Outbox::open(&d.path().join("notify.db")).unwrap(),
            Place::Postgres(_, c) => Outbox::open_pg(c).unwrap(),
        }
    }

    fn tokens(&self) -> TokenStore {
        match self {
            Place::Sqlite(d) => TokenStore::open_for(None, d.path()).unwrap(),
            Place::Postgres(_, c) => {
                TokenStore::open_for(Some(c), std::path::Path::new("/nonexistent")).unwrap()
            }
        }
    }
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::Place::Sqlite(tempfile::tempdir().unwrap()));
            }
            #[test]
            fn postgres() {
                if let Some(db) = super::pg::database() {
                    let cfg = opsdeck::storage::PgConfig::new(&db.url, None).unwrap();
                    super::$name(&super::Place::Postgres(db, cfg));
                }
            }
        }
    };
}

both!(history_records_runs_and_attempts_across_reopen);
fn history_records_runs_and_attempts_across_reopen(p: &Place) {
    let h = p.history();
    let run = h.start_run("export", "manual", None).unwrap();
    let a1 = h.start_attempt(run, "API", 1, 3).unwrap();
    h.finish_attempt(
        a1,
        &AttemptEnd {
            outcome: "retrying",
            error: Some("HTTP 503"),
            ..Default::default()
        },
    )
    .unwrap();
    let a2 = h.start_attempt(run, "API", 2, 3).unwrap();
    h.finish_attempt(
        a2,
        &AttemptEnd {
            outcome: "saved",
            bytes: Some(10),
            rows: Some(2),
            file: Some("f.csv"),
            error: None,
        },
    )
    .unwrap();
    h.finish_run(run, "ok", None).unwrap();
    let at = Utc::now() - chrono::Duration::days(1);
    let past = h
        .record_past_run(
            "export",
            at,
            chrono::Duration::seconds(4),
            &[("UI", 7, 70, "u.csv")],
        )
        .unwrap();
    drop(h);

    let h = p.history();
    let last = h.last_attempt("API").unwrap().unwrap();
    assert_eq!(
        (last.attempt, last.outcome.as_str(), last.rows, last.error),
        (2, "saved", Some(2), None)
    );
    let attempts = h.attempts_of_run(run).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].error.as_deref(), Some("HTTP 503"));
    let runs = h.recent_runs("export", 5).unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [past, run]);
    assert_eq!(runs[1].outcome, "ok");
    assert_eq!(h.last_saved("UI").unwrap().unwrap().rows, Some(7));
    assert!(h.last_attempt("none").unwrap().is_none());
    assert_eq!(h.runs_for_instant("export", at).unwrap(), 1);
    let snap = h.snapshot(&["export".into()], 10).unwrap();
    assert_eq!(snap.attempts.get(&run), Some(&2));
    let saved: Vec<_> = snap.saved.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(saved, ["f.csv", "u.csv"]);
}

both!(history_closes_runs_of_a_dead_process);
fn history_closes_runs_of_a_dead_process(p: &Place) {
    // Our own pid counts as a previous life's at open: the run is closed on reopen.
    let h = p.history();
    let run = h.start_run("export", "manual", None).unwrap();
    h.start_attempt(run, "API", 1, 3).unwrap();
    drop(h);
    let h = p.history();
    assert_eq!(
        h.recent_runs("export", 1).unwrap()[0].outcome,
        "interrupted"
    );
    assert_eq!(h.attempts_of_run(run).unwrap()[0].outcome, "interrupted");
}

fn ev(tag: &str) -> NotifyEvent {
    let mut e = NotifyEvent::new(EventKind::ReleaseWaiting);
    e.service = Some("api".into());
    e.tag = Some(tag.into());
    e
}

both!(outbox_in_order_per_sink_and_a_sending_row_is_queued_again_after_a_crash);
fn outbox_in_order_per_sink_and_a_sending_row_is_queued_again_after_a_crash(p: &Place) {
    let o = p.outbox();
    if let Place::Sqlite(d) = p {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("notify.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let a = o.enqueue(&ev("v1"), &["t".into(), "w".into()]).unwrap();
    let b = o.enqueue(&ev("v2"), &["t".into()]).unwrap();
    assert_eq!(o.next("t").unwrap().unwrap().id, a[0]);
    assert!(o.claim(a[0]).unwrap());
    // A second deliverer loses the claim: nothing is sent twice.
    assert!(!o.claim(a[0]).unwrap());
    // The process dies here: the row stays `sending` and is the next one again.
    drop(o);
    let o = p.outbox();
    assert_eq!(o.recover().unwrap(), 1);
    let d = o.next("t").unwrap().unwrap();
    assert_eq!((d.id, d.state.as_str(), d.attempts), (a[0], "queued", 1));
    assert!(o.claim(d.id).unwrap());
    o.sent(d.id).unwrap();
    // Once sent, a recovery does not queue it again.
    assert_eq!(o.recover().unwrap(), 0);
    assert_eq!(o.next("t").unwrap().unwrap().id, b[0]);
    assert_eq!(
        o.next("w").unwrap().unwrap().event.tag.as_deref(),
        Some("v1")
    );
    let log = o.log(10).unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log.iter().filter(|d| d.state == "sent").count(), 1);
}

both!(outbox_failing_sinks_and_export_outcomes);
fn outbox_failing_sinks_and_export_outcomes(p: &Place) {
    let o = p.outbox();
    let id = o.enqueue(&ev("v1"), &["t".into()]).unwrap()[0];
    for _ in 0..3 {
        assert!(o.claim(id).unwrap());
        o.retry(id, Utc::now(), "connection refused").unwrap();
    }
    assert_eq!(
        o.failing(3).unwrap(),
        vec![("t".to_string(), 3, "connection refused".to_string())]
    );
    assert!(o.claim(id).unwrap());
    o.sent(id).unwrap();
    assert!(o.failing(3).unwrap().is_empty());
    assert_eq!(o.export_outcome("API", true).unwrap(), None);
    assert_eq!(
        o.export_outcome("API", false).unwrap(),
        Some(EventKind::ExportFailed)
    );
    assert_eq!(
        o.export_outcome("API", true).unwrap(),
        Some(EventKind::ExportRecovered)
    );
    assert_eq!(o.export_outcome("API", true).unwrap(), None);
}

both!(a_token_verifies_until_revoked_and_only_its_hash_is_stored);
fn a_token_verifies_until_revoked_and_only_its_hash_is_stored(p: &Place) {
    let store = p.tokens();
    let (info, token) = store.create("gha", Role::Ci, "alice").unwrap();
    let token = token.expose_secret().to_string();
    assert_eq!(info.role, "ci");
    // Another server's store (another connection) knows it.
    let other = p.tokens();
    let Verdict::Live(who) = other.verify(&token).unwrap() else {
        panic!("a live token did not verify")
    };
    assert_eq!(who.user, "token/gha");
    assert_eq!(other.verify("odk_nope").unwrap(), Verdict::Unknown);
    assert!(matches!(
        other.create("gha", Role::Viewers, "bob"),
        Err(TokenError::Exists(_))
    ));
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used.is_some());
    other.revoke("gha").unwrap();
    assert_eq!(
        store.verify(&token).unwrap(),
        Verdict::Revoked("gha".into())
    );
    assert!(matches!(store.revoke("gha"), Err(TokenError::NotFound(_))));
    // A revoked name can be used again, with a new value; the old one stays refused.
    let (_, again) = store.create("gha", Role::Viewers, "alice").unwrap();
    assert!(matches!(
        other.verify(again.expose_secret()).unwrap(),
        Verdict::Live(w) if w.token_role() == Some(Role::Viewers)
    ));
    assert_eq!(other.verify(&token).unwrap(), Verdict::Unknown);
    // Nothing stored holds the token itself; the file is the server's alone.
    if let Place::Sqlite(d) = p {
        use std::os::unix::fs::PermissionsExt;
        let path = d.path().join(opsdeck::server::tokens::TOKENS_DB);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains(&token[4..]));
    }
    if let Place::Postgres(db, _) = p {
        let rows = db
            .connect()
            .query("SELECT t::text FROM tokens t", &[])
            .unwrap();
        assert!(
            rows.iter()
                .all(|r| !r.get::<_, String>(0).contains(&token[4..]))
        );
    }
}
