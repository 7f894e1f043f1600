//! `opsdeck storage migrate --from sqlite:PATH --to postgres://…`: a data dir (10 000
//! releases with their audit chain, a run history, an outbox with sent and queued messages,
//! a token) copied and verified; a server on the copy serves the same exports and history,
//! takes the token and delivers the queued message; `release verify` prints the source's
//! head; a second copy into the now non-empty database, or a tampered source, is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/postgres.rs"]
mod pg;

#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::process::Command;

use opsdeck::export::{AttemptEnd, RunHistory};
use opsdeck::notify::outbox::Outbox;
use opsdeck::notify::{EventKind, NotifyEvent};
use opsdeck::release::{Actor, Ledger, NewRelease, Status};
use opsdeck::server::access::Role;
use opsdeck::server::tokens::TokenStore;
use secrecy::ExposeSecret;
use server::TestServer;

fn actor(name: &str) -> Actor {
    Actor {
        user: name.into(),
        sudo_user: None,
        ssh_client: Some("10.0.0.7 (unverified)".into()),
    }
}

/// `opsdeck ARGS` with `config` (text) in a temp dir: (exit code, stdout, stderr).
fn opsdeck(dir: &Path, config: &str, args: &[&str]) -> (i32, String, String) {
    let file = dir.join("config.toml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(args)
        .env("OPSDECK_CONFIG", &file)
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

/// A ledger of `n` releases: all built, every tenth deployed, and texts that need escaping.
fn sqlite_ledger(path: &Path, n: usize) {
    let mut l = Ledger::open(path).unwrap();
    // Speed only: the test does not need each commit on disk.
    l.sqlite_connection()
        .unwrap()
        .pragma_update(None, "synchronous", "OFF")
        .unwrap();
    for i in 0..n {
        let r = l
            .create(
                &NewRelease {
                    service_name: ["api", "web"][i % 2].into(),
                    release_tag: format!("v{i}"),
                    image: Some("registry.example.com/team/api".into()),
                    initiated_by: Some("ci".into()),
                    github_ref: (i == 7)
                        .then(|| "refs/heads/tab\there\\back\nnewline 'q' ü".into()),
                    ..Default::default()
                },
                &actor("ci"),
            )
            .unwrap();
        l.transition(r.id, Status::Building, &actor("ci"), None, None)
            .unwrap();
        if i % 10 == 0 {
            for to in [
                Status::ManualTesting,
                Status::ManualTestPassed,
                Status::Deploying,
                Status::Deployed,
            ] {
                l.transition(r.id, to, &actor("alice"), Some("ok\r\n"), None)
                    .unwrap();
            }
            l.record_refusal(r.id, &actor("bob"), "refused: bob may not")
                .unwrap();
        }
    }
}

/// A run history of `runs` export runs with two saved attempts each, and one failed run.
fn sqlite_history(path: &Path, runs: usize) {
    let h = RunHistory::open(path).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2025-03-01T06:00:00+00:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for i in 0..runs {
        h.record_past_run(
            "export",
            start + chrono::Duration::hours(i as i64),
            chrono::Duration::seconds(42),
            &[
                ("API", 1000 + i as u64, 20_000, &format!("api-{i}.csv")),
                ("Web\tUI", 7, 300, &format!("web-{i}.csv")),
            ],
        )
        .unwrap();
    }
    let run = h.start_run("export", "manual", None).unwrap();
    let a = h.start_attempt(run, "API", 1, 3).unwrap();
    h.finish_attempt(
        a,
        &AttemptEnd {
            outcome: "failed",
            error: Some("HTTP 502 from the\nupstream"),
            ..Default::default()
        },
    )
    .unwrap();
    h.finish_run(run, "failed", Some("1 of 1 groups failed"))
        .unwrap();
}

/// An outbox for the sink `pager`: two messages sent, one still queued.
fn sqlite_outbox(path: &Path) -> Vec<i64> {
    let o = Outbox::open(path).unwrap();
    let mut ids = Vec::new();
    for reason in ["sent-before-1", "sent-before-2", "queued-before-migrate"] {
        let mut ev = NotifyEvent::new(EventKind::Test);
        ev.reason = Some(reason.into());
        ids.extend(o.enqueue(&ev, &["pager".to_string()]).unwrap());
    }
    for id in &ids[..2] {
        assert!(o.claim(*id).unwrap());
        o.sent(*id).unwrap();
    }
    o.export_outcome("API", false).unwrap();
    ids
}

/// Rows of every copied table: what a refused second copy must leave as it was.
fn counts(db: &pg::Database) -> Vec<i64> {
    let mut c = db.connect();
    [
        "releases",
        "audit",
        "runs",
        "attempts",
        "notify_events",
        "notify_deliveries",
        "notify_export_groups",
        "tokens",
    ]
    .iter()
    .map(|t| {
        c.query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .unwrap()
            .get(0)
    })
    .collect()
}

/// `curl` over the TCP listener with a bearer token: the HTTP status.
fn status_with_token(port: u16, token: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://127.0.0.1:{port}/v1/releases"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_data_dir_copied_whole_a_server_on_the_copy_serves_the_same_state() {
    let Some(db) = pg::database() else { return };
    let port = server::free_port();
    let mut s = TestServer::new("0.1", &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    let data = s.data.clone();
    std::fs::create_dir_all(&data).unwrap();
    sqlite_ledger(&data.join("releases.db"), 10_000);
    sqlite_history(&data.join("history.db"), 30);
    let deliveries = sqlite_outbox(&data.join("notify.db"));
    let (_, token) = TokenStore::open(&data.join("tokens.db"))
        .unwrap()
        .create("ci-bot", Role::Viewers, "root")
        .unwrap();
    let token = token.expose_secret().to_string();

    // The state as a server on the SQLite files serves it (no sink configured: the queued
    // message stays queued).
    s.start();
    let before_exports = s.json("/v1/exports")["history"].clone();
    assert_eq!(before_exports["saved"].as_array().unwrap().len(), 60);
    assert_eq!(status_with_token(port, &token), "200");
    let before = s.ok(&["release", "verify"]);
    assert!(
        before.starts_with("ledger ok: 25000 audit rows, 10000 releases, head row 25000 sha256 "),
        "{before}"
    );
    assert!(s.stop().success());

    let dir = tempfile::tempdir().unwrap();
    let pg_cfg = format!("[storage]\nurl = {:?}\n", db.url);
    let from = format!("sqlite:{}", data.display());
    let (code, out, err) = opsdeck(
        dir.path(),
        &pg_cfg,
        &["storage", "migrate", "--from", &from],
    );
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "ledger: 10000 releases, 25000 audit rows copied, verified\n",
        "history: 31 runs, 61 attempts copied, verified\n",
        "outbox: 3 events, 3 deliveries (1 queued, 2 sent), 1 export group copied, verified\n",
        "tokens: 1 token copied, verified\n",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(out.ends_with(&before), "{out}");
    assert!(!format!("{out}{err}").contains(&token));

    // Ids kept; the queued message still queued, the sent ones sent.
    let mut c = db.connect();
    let states: Vec<(i64, String)> = c
        .query("SELECT id, state FROM notify_deliveries ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want: Vec<(i64, String)> = deliveries
        .iter()
        .zip(["sent", "sent", "queued"])
        .map(|(id, s)| (*id, s.to_string()))
        .collect();
    assert_eq!(states, want);

    // `release verify` on the copy: the same rows and the same chain head, to the byte.
    let (code, after, err) = opsdeck(dir.path(), &pg_cfg, &["--local", "release", "verify"]);
    assert_eq!(code, 0, "{after}{err}");
    assert_eq!(after, before);

    // A server on the copy: the same exports and history, the token works over TCP (and a
    // wrong one does not), the queued message is delivered, once, and the sent ones are not
    // sent again.
    let got = dir.path().join("got.txt");
    std::fs::write(
        &s.config,
        server::release_config(
            &s.dir,
            "0.1",
            &format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n\n{pg_cfg}\n[[notify]]\nkind = \"command\"\n\
                 name = \"pager\"\nargv = [\"sh\", \"-c\", \"cat >> '{}'\"]\n",
                got.display()
            ),
        ),
    )
    .unwrap();
    s.start();
    assert_eq!(s.json("/v1/exports")["history"], before_exports);
    assert_eq!(status_with_token(port, &token), "200");
    assert_eq!(status_with_token(port, "odk_not-a-token"), "401");
    assert_eq!(s.ok(&["release", "verify"]), before);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&got).is_ok_and(|t| t.contains("queued-before-migrate")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the queued message was not delivered"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = std::fs::read_to_string(&got).unwrap();
    // One message (one JSON line), the queued one, under its own delivery id.
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(&format!("\"id\":{},", deliveries[2])),
        "{text}"
    );
    assert!(!text.contains("sent-before"), "{text}");
    assert!(s.stop().success());

    // The sequences are past the copied ids: new rows take the next ones.
    let at = opsdeck::storage::PgConfig::new(&db.url, None).unwrap();
    let history = RunHistory::open_pg(&at).unwrap();
    assert_eq!(history.start_run("export", "manual", None).unwrap(), 32);
    let ids = Outbox::open_pg(&at)
        .unwrap()
        .enqueue(&NotifyEvent::new(EventKind::Test), &["pager".to_string()])
        .unwrap();
    assert_eq!(ids, vec![deliveries[2] + 1]);
    let at = opsdeck::storage::LedgerAt::Postgres(std::sync::Arc::new(at));
    let mut copy = Ledger::open_at(&at).unwrap();
    let src = Ledger::open(&data.join("releases.db")).unwrap();
    assert_eq!(copy.get(8).unwrap(), src.get(8).unwrap());
    assert_eq!(copy.audit(11).unwrap(), src.audit(11).unwrap());
    let r = copy
        .create(
            &NewRelease {
                service_name: "api".into(),
                release_tag: "v10000".into(),
                ..Default::default()
            },
            &actor("ci"),
        )
        .unwrap();
    assert_eq!(r.id, 10_001);
    assert_eq!(copy.verify().unwrap().audit_rows, 25_001);

    // A second copy into the now non-empty database is refused; nothing changes.
    let held = counts(&db);
    let (code, out, err) = opsdeck(
        dir.path(),
        &pg_cfg,
        &["storage", "migrate", "--from", &from],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(
            "is not empty (releases holds 10001 rows, audit holds 25001 rows, runs holds 32 rows"
        ) && err.contains("tokens holds 1 rows")
            && err.contains("nothing copied"),
        "{err}"
    );
    assert_eq!(counts(&db), held);
    assert_eq!(copy.verify().unwrap().audit_rows, 25_001);
}

#[test]
fn a_tampered_source_is_not_copied_and_bad_arguments_exit_2() {
    let Some(db) = pg::database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("releases.db");
    sqlite_ledger(&source, 3);
    rusqlite::Connection::open(&source)
        .unwrap()
        .execute_batch("UPDATE releases SET release_tag = 'evil' WHERE id = 2")
        .unwrap();
    let from = format!("sqlite:{}", source.display());
    let (code, _, err) = opsdeck(
        dir.path(),
        "",
        &["storage", "migrate", "--from", &from, "--to", &db.url],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("does not verify, nothing copied") && err.contains("release 2"),
        "{err}"
    );
    // Refused before the database was touched at all.
    let n: i64 = db
        .connect()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('releases', 'audit')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    for (args, says) in [
        (
            vec!["--from", "releases.db", "--to", db.url.as_str()],
            "sqlite:PATH",
        ),
        (vec!["--from", from.as_str()], "storage.url"),
        (
            vec![
                "--from",
                from.as_str(),
                "--to",
                "postgres://u:pw-in-url@h/db",
            ],
            "password_file",
        ),
    ] {
        let mut all = vec!["storage", "migrate"];
        all.extend(args);
        let (code, _, err) = opsdeck(dir.path(), "", &all);
        assert_eq!(code, 2, "{all:?}: {err}");
        assert!(err.contains(says), "{all:?}: {err}");
        assert!(!err.contains("pw-in-url"), "{err}");
    }
}

#[test]
fn a_lone_ledger_file_copies_with_the_rest_skipped_and_a_copy_that_reads_back_different_is_rolled_back()
 {
    let Some(db) = pg::database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger").join("releases.db");
    std::fs::create_dir_all(ledger.parent().unwrap()).unwrap();
    sqlite_ledger(&ledger, 12);
    let from = format!("sqlite:{}", ledger.display());
    let (code, out, err) = opsdeck(
        dir.path(),
        "",
        &["storage", "migrate", "--from", &from, "--to", &db.url],
    );
    assert_eq!(code, 0, "{out}{err}");
    let beside = ledger.parent().unwrap();
    for line in [
        "ledger: 12 releases, 34 audit rows copied, verified\n".to_string(),
        format!(
            "history: skipped, no {}\n",
            beside.join("history.db").display()
        ),
        format!(
            "outbox: skipped, no {}\n",
            beside.join("notify.db").display()
        ),
        format!(
            "tokens: skipped, no {}\n",
            beside.join("tokens.db").display()
        ),
    ] {
        assert!(out.contains(&line), "{line}: {out}");
    }

    // An outbox value PostgreSQL stores differently (`failing` = 'yes' in SQLite reads back
    // as true, "1"): the digests differ and the whole copy is rolled back, ledger included.
    let db = pg::database().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    sqlite_ledger(&data.join("releases.db"), 3);
    sqlite_outbox(&data.join("notify.db"));
    rusqlite::Connection::open(data.join("notify.db"))
        .unwrap()
        .execute_batch("UPDATE export_groups SET failing = 'yes'")
        .unwrap();
    let from = format!("sqlite:{}", data.display());
    let (code, out, err) = opsdeck(
        dir.path(),
        "",
        &["storage", "migrate", "--from", &from, "--to", &db.url],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("outbox: the copy of export_groups differs from the source")
            && err.contains("nothing copied"),
        "{err}"
    );
    let mut c = db.connect();
    for t in [
        "releases",
        "audit",
        "notify_events",
        "notify_deliveries",
        "notify_export_groups",
    ] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{t}");
    }
}
