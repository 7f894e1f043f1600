//! Tamper evidence: each finding of issue 9 (writes made with plain SQL by anyone who can write
//! the ledger file) is found by `Ledger::verify` and by `opsdeck release verify`, which names
//! the first row that does not match; the server finds it at start and on every change, and
//! a dashboard connected to it shows it red. Each runs on SQLite and on PostgreSQL
//! (`storage.url`), where the same edits made with `psql` are found the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/server.rs"]
mod server;

#[path = "support/ledgers.rs"]
mod ledgers;

use std::path::Path;

use ledgers::TestLedger;
use opsdeck::release::ledger::chain::{self, Row};
use opsdeck::release::{Actor, Ledger, NewRelease, Status, VerifyError};
use rusqlite::Connection;

fn actor(name: &str) -> Actor {
    Actor {
        user: name.into(),
        sudo_user: None,
        ssh_client: None,
    }
}

/// A ledger with release 1 deployed (audit rows 1-6) and release 2 waiting in manual testing
/// (rows 7-10, the last a refused approval), written through opsdeck.
fn ledger(t: &TestLedger) {
    let mut l = t.open();
    let new = |tag: &str| NewRelease {
        service_name: "api".into(),
        release_tag: tag.into(),
        image: Some("registry.example.com/team/api".into()),
        ..Default::default()
    };
    let r = l.create(&new("v1"), &actor("ci")).unwrap();
    for to in [
        Status::Building,
        Status::ManualTesting,
        Status::ManualTestPassed,
        Status::Deploying,
        Status::Deployed,
    ] {
        l.transition(r.id, to, &actor("alice"), None, None).unwrap();
    }
    let w = l.create(&new("v2"), &actor("ci")).unwrap();
    l.transition(w.id, Status::Building, &actor("ci"), None, None)
        .unwrap();
    l.transition(w.id, Status::ManualTesting, &actor("ci"), None, None)
        .unwrap();
    l.record_refusal(w.id, &actor("bob"), "bob may not approve")
        .unwrap();
    assert!(l.verify().is_ok(), "{:?}", l.verify());
}

/// Another writer: a plain SQLite connection (as `sqlite3` would be) or `psql`.
fn sql(t: &TestLedger, statements: &str) {
    t.sql(statements).unwrap();
}

fn tampered(t: &TestLedger) -> (Row, String) {
    match t.open().verify() {
        Err(VerifyError::Tampered(t)) => (t.row, t.reason),
        other => panic!("not found: {other:?}"),
    }
}

fn verify_cli(t: &TestLedger) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = dir.join("config.toml");
    std::fs::write(&config, t.config_toml()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(["--local", "release", "verify"])
        .env("OPSDECK_CONFIG", &config)
        .env("OPSDECK_DATA_DIR", dir.join("data"))
        .env_remove("OPSDECK_SERVER")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

both!(an_untouched_ledger_verifies_and_the_cli_prints_its_head);
fn an_untouched_ledger_verifies_and_the_cli_prints_its_head(t: &TestLedger) {
    ledger(t);
    let (code, out, err) = verify_cli(t);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("ledger ok: 10 audit rows, 2 releases, head row 10 sha256 "),
        "{out}"
    );
}

both!(a_waiting_release_rewritten_without_an_audit_entry_is_found);
fn a_waiting_release_rewritten_without_an_audit_entry_is_found(t: &TestLedger) {
    ledger(t);
    sql(
        t,
        "UPDATE releases SET release_tag = 'evil', image = 'evil.example.com/x' WHERE id = 2",
    );
    let (row, reason) = tampered(t);
    assert_eq!(row, Row::Release(2));
    assert!(
        reason.contains("release_tag, image") && reason.contains("audit row 10"),
        "{reason}"
    );
    let (code, _, err) = verify_cli(t);
    assert_eq!(code, 1);
    assert!(err.contains("ledger tampered at release 2"), "{err}");
}

both!(a_release_inserted_already_deployed_is_found);
fn a_release_inserted_already_deployed_is_found(t: &TestLedger) {
    ledger(t);
    sql(
        t,
        "INSERT INTO releases (id, service_name, release_tag, status, created_at)
         VALUES (3, 'api', 'v9', 'deployed', '2026-01-01T00:00:00+00:00')",
    );
    let (row, reason) = tampered(t);
    assert_eq!(row, Row::Release(3));
    assert!(reason.contains("no audit row"), "{reason}");
}

both!(back_dated_audit_rows_under_any_name_are_found);
fn back_dated_audit_rows_under_any_name_are_found(t: &TestLedger) {
    ledger(t);
    // As the finding did it: plain INSERTs, an old date, someone else's name.
    sql(
        t,
        "INSERT INTO audit (id, release_id, at, actor, from_status, to_status, note)
         VALUES (11, 2, '2025-01-01T09:00:00+00:00', 'alice', 'manual_testing', 'manual_test_passed', 'lgtm')",
    );
    assert_eq!(tampered(t).0, Row::Audit(11));
}

both!(a_back_dated_row_with_a_copied_hash_is_found);
fn a_back_dated_row_with_a_copied_hash_is_found(t: &TestLedger) {
    // Even with a hash copied from a real row, and then the status moved to match.
    ledger(t);
    sql(
        t,
        "INSERT INTO audit (id, release_id, at, actor, from_status, to_status, note, release_snapshot, hash)
         SELECT 11, 2, '2025-01-01T09:00:00+00:00', 'alice', 'manual_testing', 'manual_test_passed', NULL,
                release_snapshot, hash FROM audit WHERE id = 10;
         UPDATE releases SET status = 'manual_test_passed' WHERE id = 2;",
    );
    let (row, reason) = tampered(t);
    assert_eq!(row, Row::Audit(11));
    assert!(reason.contains("hash does not match"), "{reason}");
}

both!(an_audit_row_edited_after_dropping_the_trigger_is_found);
fn an_audit_row_edited_after_dropping_the_trigger_is_found(t: &TestLedger) {
    ledger(t);
    sql(
        t,
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE id = 4",
    );
    let (row, reason) = tampered(t);
    assert_eq!(row, Row::Audit(4));
    assert!(reason.contains("changed"), "{reason}");
    let (code, _, err) = verify_cli(t);
    assert_eq!(code, 1);
    assert!(err.contains("ledger tampered at audit row 4"), "{err}");
}

both!(a_deleted_audit_row_is_found);
fn a_deleted_audit_row_is_found(t: &TestLedger) {
    // A deleted row: the next one no longer links.
    ledger(t);
    sql(
        t,
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 4",
    );
    let (row, reason) = tampered(t);
    assert_eq!(row, Row::Audit(5));
    assert!(reason.contains("deleted"), "{reason}");
}

both!(a_deleted_last_row_of_a_release_is_found);
fn a_deleted_last_row_of_a_release_is_found(t: &TestLedger) {
    // The last row of a release deleted: row 7 linked to row 6.
    ledger(t);
    sql(
        t,
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 6",
    );
    assert_eq!(tampered(t).0, Row::Audit(7));
}

both!(an_edited_row_with_a_recomputed_hash_breaks_the_next_link);
fn an_edited_row_with_a_recomputed_hash_breaks_the_next_link(t: &TestLedger) {
    ledger(t);
    sql(
        t,
        "DROP TRIGGER audit_no_update; UPDATE audit SET note = 'edited' WHERE id = 8",
    );
    assert_eq!(tampered(t).0, Row::Audit(8));
    // The hash recomputed by hand, exactly as opsdeck computes it.
    let prev = t.query_text("SELECT hash FROM audit WHERE id = 7").unwrap();
    let (row, snap) = audit_row_8(t);
    let hash = chain::row_hash(&prev, &row, &snap);
    sql(t, &format!("UPDATE audit SET hash = '{hash}' WHERE id = 8"));
    assert_eq!(tampered(t).0, Row::Audit(9));
}

/// Audit row 8 as the chain hashes it, and its snapshot, read with plain SQL.
fn audit_row_8(t: &TestLedger) -> (String, String) {
    const Q: &str = "SELECT id, release_id, at, actor, sudo_user, ssh_client, from_status,
                     to_status, note, release_snapshot FROM audit WHERE id = 8";
    match &t.store {
        ledgers::Store::Sqlite(dir) => {
            let conn = Connection::open(dir.path().join("releases.db")).unwrap();
            conn.query_row(Q, [], |r| {
                let cols = (0..9)
                    .map(|i| match r.get::<_, rusqlite::types::Value>(i)? {
                        rusqlite::types::Value::Integer(n) => Ok(serde_json::json!(n)),
                        rusqlite::types::Value::Text(t) => Ok(serde_json::json!(t)),
                        _ => Ok(serde_json::Value::Null),
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((serde_json::Value::Array(cols).to_string(), r.get(9)?))
            })
            .unwrap()
        }
        ledgers::Store::Postgres(db) => {
            let r = db.connect().query_one(Q, &[]).unwrap();
            let texts: [Option<String>; 7] = std::array::from_fn(|i| r.get(i + 2));
            (chain::audit_json(r.get(0), r.get(1), &texts), r.get(9))
        }
    }
}

/// A plain SQLite connection, as `sqlite3` would be.
fn sqlite_sql(path: &Path, statements: &str) {
    Connection::open(path)
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

fn sqlite_tampered(path: &Path) -> (Row, String) {
    match Ledger::open(path).unwrap().verify() {
        Err(VerifyError::Tampered(t)) => (t.row, t.reason),
        other => panic!("not found: {other:?}"),
    }
}

#[test]
fn a_ledger_of_schema_1_gets_its_chain_once_and_is_then_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releases.db");
    // The schema of the previous release, with rows written by it.
    sqlite_sql(
        &path,
        "CREATE TABLE releases (id INTEGER PRIMARY KEY, service_name TEXT NOT NULL,
           release_tag TEXT NOT NULL, rollback_to_tag TEXT, image TEXT, status TEXT NOT NULL,
           initiated_by TEXT, github_run_id TEXT, github_action_link TEXT, github_ref TEXT,
           created_at TEXT NOT NULL, started_at TEXT, completed_at TEXT);
         CREATE TABLE audit (id INTEGER PRIMARY KEY,
           release_id INTEGER NOT NULL REFERENCES releases(id), at TEXT NOT NULL,
           actor TEXT NOT NULL, sudo_user TEXT, ssh_client TEXT, from_status TEXT,
           to_status TEXT NOT NULL, note TEXT);
         CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
         CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
         INSERT INTO releases VALUES (1, 'api', 'v1', NULL, NULL, 'building', 'ci', NULL, NULL,
           NULL, '2026-01-01T00:00:00+00:00', NULL, NULL);
         INSERT INTO audit VALUES (1, 1, '2026-01-01T00:00:00+00:00', 'ci', NULL, NULL, NULL,
           'initiated', 'created');
         INSERT INTO audit VALUES (2, 1, '2026-01-01T00:01:00+00:00', 'ci', NULL, NULL,
           'initiated', 'building', NULL);
         PRAGMA user_version = 1;",
    );
    let mut l = Ledger::open(&path).unwrap();
    let v = l.verify().unwrap();
    assert_eq!((v.audit_rows, v.releases), (2, 1));
    // The migration left the audit append-only, and new rows chain on.
    assert!(
        l.sqlite_connection()
            .unwrap()
            .execute("UPDATE audit SET actor = 'x'", [])
            .is_err()
    );
    l.transition(1, Status::ManualTesting, &actor("ci"), None, None)
        .unwrap();
    drop(l);
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.verify().unwrap().audit_rows, 3);
    sqlite_sql(
        &path,
        "UPDATE releases SET release_tag = 'v1-evil' WHERE id = 1",
    );
    assert_eq!(sqlite_tampered(&path).0, Row::Release(1));
}

both!(concurrent_writers_keep_one_chain);
fn concurrent_writers_keep_one_chain(t: &TestLedger) {
    ledger(t);
    std::thread::scope(|s| {
        for i in 0..6 {
            s.spawn(move || {
                let mut l = t.open();
                for n in 0..5 {
                    l.create(
                        &NewRelease {
                            service_name: "web".into(),
                            release_tag: format!("t{i}-{n}"),
                            ..Default::default()
                        },
                        &actor("ci"),
                    )
                    .unwrap();
                }
            });
        }
    });
    let v = t.open().verify().unwrap();
    assert_eq!((v.audit_rows, v.releases), (40, 32));
}

both!(verifying_while_others_write_never_reports_tampering);
fn verifying_while_others_write_never_reports_tampering(t: &TestLedger) {
    // A writer commits a release and its audit row between the verifier's reads of the audit
    // and of the releases: both reads must see one snapshot.
    ledger(t);
    let done = std::sync::atomic::AtomicBool::new(false);
    let l = t.open();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut l = t.open();
            for n in 0..300 {
                let r = l
                    .create(
                        &NewRelease {
                            service_name: "web".into(),
                            release_tag: format!("w{n}"),
                            ..Default::default()
                        },
                        &actor("ci"),
                    )
                    .unwrap();
                l.transition(r.id, Status::Building, &actor("ci"), None, None)
                    .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut checks = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            if let Err(e) = l.verify() {
                panic!("after {checks} checks: {e}");
            }
            checks += 1;
        }
    });
    let v = l.verify().unwrap();
    assert_eq!((v.audit_rows, v.releases), (610, 302));
}

/// A dashboard connected to the server at `socket`: the real event pump into the real `update`,
/// drawn; the status bar (last line) and the colour of the tamper text, once it arrived.
fn client_dashboard_status(config: &Path, socket: &Path) -> (String, ratatui::style::Color) {
    use opsdeck::tui::app::update;
    use opsdeck::tui::msg::Msg;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg =
            opsdeck::config::Config::load(Some(config), &opsdeck::config::process_env).unwrap();
        let mut app = opsdeck::tui::initial_app(&cfg, &Default::default());
        app.color = true;
        let (w, h) = (140u16, 30u16);
        app.size = (w, h);
        let remote = opsdeck::client::Remote::connect(socket)
            .await
            .expect("the server answers");
        let (tx, mut rx) = opsdeck::events::channel();
        let cancel = tokio_util::sync::CancellationToken::new();
        let pump = opsdeck::client::spawn_event_pump(remote, tx, cancel.clone());
        let waited = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while let Some(ev) = rx.recv().await {
                let hit = matches!(ev, opsdeck::events::Event::LedgerTampered(_));
                update(&mut app, Msg::Service(ev));
                if hit {
                    return;
                }
            }
        })
        .await;
        cancel.cancel();
        let _ = pump.await;
        assert!(waited.is_ok(), "the dashboard never heard of the tampering");
        let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
        t.draw(|f| opsdeck::tui::view::draw(f, &app)).unwrap();
        let buf = t.backend().buffer();
        let cells: Vec<_> = (0..w).map(|x| buf[(x, h - 1)].clone()).collect();
        let status: String = cells.iter().map(|c| c.symbol()).collect();
        // By cell, not by byte: the bar holds multi-byte symbols before it.
        let colour = (0..cells.len())
            .find(|&i| {
                cells[i..]
                    .iter()
                    .map(|c| c.symbol())
                    .collect::<String>()
                    .starts_with("ledger tampered")
            })
            .map_or(ratatui::style::Color::Reset, |at| cells[at + 1].fg);
        (status, colour)
    })
}

#[test]
fn the_server_finds_tampering_on_change_and_at_start_and_its_dashboards_show_it_red() {
    let s = server::TestServer::new("0.1", "");
    let path = s.data.join("releases.db");
    server_finds_tampering(s, &|sql| sqlite_sql(&path, sql));
}

#[test]
fn the_server_on_postgres_finds_tampering_on_change_and_at_start() {
    let Some(t) = TestLedger::postgres() else {
        return;
    };
    let s = server::TestServer::new("0.1", &t.config_toml());
    server_finds_tampering(s, &|stmts| sql(&t, stmts));
}

fn server_finds_tampering(mut s: server::TestServer, sql: &dyn Fn(&str)) {
    s.start();
    let id = s.create("api", "v1.0.0");
    assert_eq!(s.ok(&["release", "verify"]).lines().count(), 1);
    let (mut stream, rx) = s.events();
    server::expect_event(&rx, "hello", |v| v["type"] == "hello");

    // Changed behind the server's back while it runs: every stream hears it.
    sql(&format!(
        "UPDATE releases SET release_tag = 'evil' WHERE id = {id}"
    ));
    let ev = server::expect_event(&rx, "ledger_tampered", |v| v["type"] == "ledger_tampered");
    assert_eq!(ev["row"], format!("release {id}"));
    let _ = stream.kill();
    let _ = stream.wait();
    // A dashboard that connects later gets it too (sticky), red.
    let (status, colour) = client_dashboard_status(&s.config, &s.socket);
    assert!(
        status.contains(&format!("ledger tampered at release {id}")),
        "{status}"
    );
    assert_eq!(colour, ratatui::style::Color::Red, "{status}");
    // The CLI through the server names the row and exits 1.
    let out = s.client(&["release", "verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        server::text(&out.stderr).contains(&format!("ledger tampered at release {id}")),
        "{}",
        server::text(&out.stderr)
    );

    // A server started on a tampered ledger finds it at start.
    assert!(s.stop().success());
    s.start();
    let (status, colour) = client_dashboard_status(&s.config, &s.socket);
    assert!(
        status.contains(&format!("ledger tampered at release {id}")),
        "{status}"
    );
    assert_eq!(colour, ratatui::style::Color::Red, "{status}");
}
