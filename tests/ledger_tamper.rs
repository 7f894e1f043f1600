//! Tamper evidence: each finding of issue 9 (writes made with plain SQL by anyone who can write
//! the ledger file) is found by `Ledger::verify` and by `opsdeck release verify`, which names
//! the first row that does not match; the server finds it at start and on every change, and
//! a dashboard connected to it shows it red.

#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};

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
fn ledger() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releases.db");
    let mut l = Ledger::open(&path).unwrap();
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
    (dir, path)
}

/// Another writer: a plain SQLite connection, as `sqlite3` would be.
fn sql(path: &Path, statements: &str) {
    Connection::open(path)
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

fn tampered(path: &Path) -> (Row, String) {
    match Ledger::open(path).unwrap().verify() {
        Err(VerifyError::Tampered(t)) => (t.row, t.reason),
        other => panic!("not found: {other:?}"),
    }
}

fn verify_cli(path: &Path) -> (i32, String, String) {
    let dir = path.parent().unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("[releases]\nledger = {:?}\n", path.display().to_string()),
    )
    .unwrap();
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

#[test]
fn an_untouched_ledger_verifies_and_the_cli_prints_its_head() {
    let (_d, path) = ledger();
    let (code, out, err) = verify_cli(&path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("ledger ok: 10 audit rows, 2 releases, head row 10 sha256 "),
        "{out}"
    );
}

#[test]
fn a_waiting_release_rewritten_without_an_audit_entry_is_found() {
    let (_d, path) = ledger();
    sql(
        &path,
        "UPDATE releases SET release_tag = 'evil', image = 'evil.example.com/x' WHERE id = 2",
    );
    let (row, reason) = tampered(&path);
    assert_eq!(row, Row::Release(2));
    assert!(
        reason.contains("release_tag, image") && reason.contains("audit row 10"),
        "{reason}"
    );
    let (code, _, err) = verify_cli(&path);
    assert_eq!(code, 1);
    assert!(err.contains("ledger tampered at release 2"), "{err}");
}

#[test]
fn a_release_inserted_already_deployed_is_found() {
    let (_d, path) = ledger();
    sql(
        &path,
        "INSERT INTO releases (service_name, release_tag, status, created_at)
         VALUES ('api', 'v9', 'deployed', '2026-01-01T00:00:00+00:00')",
    );
    let (row, reason) = tampered(&path);
    assert_eq!(row, Row::Release(3));
    assert!(reason.contains("no audit row"), "{reason}");
}

#[test]
fn back_dated_audit_rows_under_any_name_are_found() {
    let (_d, path) = ledger();
    // As the finding did it: plain INSERTs, an old date, someone else's name.
    sql(
        &path,
        "INSERT INTO audit (release_id, at, actor, from_status, to_status, note)
         VALUES (2, '2025-01-01T09:00:00+00:00', 'alice', 'manual_testing', 'manual_test_passed', 'lgtm')",
    );
    assert_eq!(tampered(&path).0, Row::Audit(11));
    // Even with a hash copied from a real row, and then the status moved to match.
    let (_d, path) = ledger();
    sql(
        &path,
        "INSERT INTO audit (release_id, at, actor, from_status, to_status, note, release_snapshot, hash)
         SELECT 2, '2025-01-01T09:00:00+00:00', 'alice', 'manual_testing', 'manual_test_passed', NULL,
                release_snapshot, hash FROM audit WHERE id = 10;
         UPDATE releases SET status = 'manual_test_passed' WHERE id = 2;",
    );
    let (row, reason) = tampered(&path);
    assert_eq!(row, Row::Audit(11));
    assert!(reason.contains("hash does not match"), "{reason}");
}

#[test]
fn audit_rows_edited_or_deleted_after_drop_trigger_are_found() {
    let (_d, path) = ledger();
    sql(
        &path,
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE id = 4",
    );
    let (row, reason) = tampered(&path);
    assert_eq!(row, Row::Audit(4));
    assert!(reason.contains("changed"), "{reason}");
    let (code, _, err) = verify_cli(&path);
    assert_eq!(code, 1);
    assert!(err.contains("ledger tampered at audit row 4"), "{err}");

    // A deleted row: the next one no longer links.
    let (_d, path) = ledger();
    sql(
        &path,
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 4",
    );
    let (row, reason) = tampered(&path);
    assert_eq!(row, Row::Audit(5));
    assert!(reason.contains("deleted"), "{reason}");

    // The last row of a release deleted: the release no longer matches its audit.
    let (_d, path) = ledger();
    sql(
        &path,
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 6",
    );
    // Row 7 linked to row 6.
    assert_eq!(tampered(&path).0, Row::Audit(7));

    // An edited row given a hash recomputed by hand: the next row no longer links.
    let (_d, path) = ledger();
    sql(
        &path,
        "DROP TRIGGER audit_no_update; UPDATE audit SET note = 'edited' WHERE id = 8",
    );
    assert_eq!(tampered(&path).0, Row::Audit(8));
    let conn = Connection::open(&path).unwrap();
    let prev: String = conn
        .query_row("SELECT hash FROM audit WHERE id = 7", [], |r| r.get(0))
        .unwrap();
    let (row, snap): (serde_json::Value, String) = conn
        .query_row(
            "SELECT id, release_id, at, actor, sudo_user, ssh_client, from_status, to_status,
                    note, release_snapshot FROM audit WHERE id = 8",
            [],
            |r| {
                let cols = (0..9)
                    .map(|i| match r.get::<_, rusqlite::types::Value>(i)? {
                        rusqlite::types::Value::Integer(n) => Ok(serde_json::json!(n)),
                        rusqlite::types::Value::Text(t) => Ok(serde_json::json!(t)),
                        _ => Ok(serde_json::Value::Null),
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((serde_json::Value::Array(cols), r.get(9)?))
            },
        )
        .unwrap();
    let hash = chain::row_hash(&prev, &row.to_string(), &snap);
    conn.execute("UPDATE audit SET hash = ?1 WHERE id = 8", [hash])
        .unwrap();
    drop(conn);
    assert_eq!(tampered(&path).0, Row::Audit(9));
}

#[test]
fn a_ledger_of_schema_1_gets_its_chain_once_and_is_then_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releases.db");
    // The schema of the previous release, with rows written by it.
    sql(
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
        l.connection()
            .execute("UPDATE audit SET actor = 'x'", [])
            .is_err()
    );
    l.transition(1, Status::ManualTesting, &actor("ci"), None, None)
        .unwrap();
    drop(l);
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.verify().unwrap().audit_rows, 3);
    sql(
        &path,
        "UPDATE releases SET release_tag = 'v1-evil' WHERE id = 1",
    );
    assert_eq!(tampered(&path).0, Row::Release(1));
}

#[test]
fn concurrent_writers_keep_one_chain() {
    let (_d, path) = ledger();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut l = Ledger::open(&path).unwrap();
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
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let v = Ledger::open(&path).unwrap().verify().unwrap();
    assert_eq!((v.audit_rows, v.releases), (40, 32));
}

#[test]
fn verifying_while_others_write_never_reports_tampering() {
    // A writer commits a release and its audit row between the verifier's reads of the audit
    // and of the releases: both reads must see one snapshot.
    let (_d, path) = ledger();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, done) = (path.clone(), done.clone());
        std::thread::spawn(move || {
            let mut l = Ledger::open(&path).unwrap();
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
        })
    };
    let l = Ledger::open(&path).unwrap();
    let mut checks = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        if let Err(e) = l.verify() {
            panic!("after {checks} checks: {e}");
        }
        checks += 1;
    }
    writer.join().unwrap();
    let v = l.verify().unwrap();
    assert_eq!((v.audit_rows, v.releases), (610, 302));
}

/// A dashboard connected to the server at `socket`: the real event pump into the real `update`,
/// drawn; the status bar (last line) and the colour of the tamper text, once it arrived.
fn client_dashboard_status(config: &Path, socket: &Path) -> (String, ratatui::style::Color) {
    use opsdeck::tui::app::{Msg, update};
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
    let mut s = server::TestServer::new("0.1", "");
    s.start();
    let id = s.create("api", "v1.0.0");
    assert_eq!(s.ok(&["release", "verify"]).lines().count(), 1);
    let (mut stream, rx) = s.events();
    server::expect_event(&rx, "hello", |v| v["type"] == "hello");

    // Changed behind the server's back while it runs: every stream hears it.
    sql(
        &s.data.join("releases.db"),
        &format!("UPDATE releases SET release_tag = 'evil' WHERE id = {id}"),
    );
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
