//! The PostgreSQL store itself: the password from `storage.password_file`, migrations applied
//! once under their lock, a database from a newer opsdeck refused, change detection, and the
//! synchronous ledger called from async code (as the desk does).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/postgres.rs"]
mod pg;

use std::sync::Arc;

use opsdeck::release::{Actor, Ledger, NewRelease, Status};
use opsdeck::storage::{LedgerAt, PgConfig};

fn actor() -> Actor {
    Actor {
        user: "ci".into(),
        sudo_user: None,
        ssh_client: None,
    }
}

fn new(tag: &str) -> NewRelease {
    NewRelease {
        service_name: "api".into(),
        release_tag: tag.into(),
        ..Default::default()
    }
}

fn at(url: &str, password: Option<&str>) -> LedgerAt {
    LedgerAt::Postgres(Arc::new(
        PgConfig::new(url, password.map(str::to_string)).unwrap(),
    ))
}

#[test]
fn the_password_file_opens_the_ledger_and_errors_never_show_it() {
    let Some(c) = pg::cluster() else { return };
    let (_db, url) = c.password_database();
    // Through the config, as the server reads it.
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pg_password");
    std::fs::write(&pw, format!("{}\n", pg::PASSWORD)).unwrap();
    let cfg_text = format!(
        "[storage]\nurl = \"{url}\"\npassword_file = \"{}\"\n",
        pw.display()
    );
    let cfg = opsdeck::config::Config::from_parts(None, &cfg_text, &|_: &str| None).unwrap();
    let ledger_at = LedgerAt::of(&cfg, dir.path());
    let mut l = Ledger::open_at(&ledger_at).unwrap();
    let r = l.create(&new("v1"), &actor()).unwrap();
    assert_eq!(r.id, 1);
    assert!(l.verify().is_ok());
    assert!(!format!("{ledger_at} {ledger_at:?}").contains(pg::PASSWORD));

    // Without it, or with a wrong one: refused, and the message says what to do.
    let e = Ledger::open_at(&at(&url, None)).err().unwrap().to_string();
    assert!(e.contains("storage.password_file"), "{e}");
    let e = Ledger::open_at(&at(&url, Some("wrong-pw-Q7")))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(
        !e.contains("wrong-pw-Q7") && !e.contains(pg::PASSWORD),
        "{e}"
    );
}

#[test]
fn servers_starting_together_migrate_once() {
    let Some(db) = pg::database() else { return };
    // Separate processes would each migrate: the schema lock must hold across connections.
    // (One process remembers a migrated database, so race plain connections instead.)
    let barrier = std::sync::Barrier::new(6);
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
                    barrier.wait();
                    opsdeck::storage::pg::migrate(
                        &mut c,
                        "ledger",
                        &opsdeck::release::ledger::pg::migrations(),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut c = db.connect();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM opsdeck_migrations WHERE component = 'ledger'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // The ledger works on the migrated database.
    let mut l = Ledger::open_at(&at(&db.url, None)).unwrap();
    l.create(&new("v1"), &actor()).unwrap();

    // A database a newer opsdeck migrated is refused, not misread.
    c.batch_execute(
        "INSERT INTO opsdeck_migrations (component, version, applied_at) VALUES ('ledger', 99, 'later')",
    )
    .unwrap();
    let e = opsdeck::storage::pg::migrate(
        &mut c,
        "ledger",
        &opsdeck::release::ledger::pg::migrations(),
    )
    .unwrap_err();
    assert!(
        e.contains("version 99, newer than this opsdeck knows"),
        "{e}"
    );
}

#[test]
fn any_commit_changes_the_data_version() {
    let Some(db) = pg::database() else { return };
    let ledger_at = at(&db.url, None);
    let mut l = Ledger::open_at(&ledger_at).unwrap();
    let watcher = Ledger::open_at(&ledger_at).unwrap();
    let v0 = watcher.data_version().unwrap();
    let r = l.create(&new("v1"), &actor()).unwrap();
    let v1 = watcher.data_version().unwrap();
    assert_ne!(v0, v1);
    // Reads change nothing.
    l.list(None, None).unwrap();
    assert_eq!(watcher.data_version().unwrap(), v1);
    // A write behind opsdeck's back (no audit row) is seen too.
    db.connect()
        .batch_execute(&format!(
            "UPDATE releases SET release_tag = 'evil' WHERE id = {}",
            r.id
        ))
        .unwrap();
    assert_ne!(watcher.data_version().unwrap(), v1);
    assert!(watcher.verify().is_err());
}

#[test]
fn the_ledger_works_from_async_code_on_any_runtime() {
    let Some(db) = pg::database() else { return };
    for rt in [
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap(),
    ] {
        rt.block_on(from_async(&db));
    }
}

async fn from_async(db: &pg::Database) {
    // The desk calls the ledger inside async fns; the client's own runtime must not clash
    // with this one (open, write, read, drop: all on this runtime's thread).
    let mut l = Ledger::open_at(&at(&db.url, None)).unwrap();
    let r = l
        .create(
            &NewRelease {
                status: Some(Status::ManualTesting),
                ..new("v2")
            },
            &actor(),
        )
        .unwrap();
    l.transition(r.id, Status::ManualTestPassed, &actor(), None, None)
        .unwrap();
    assert_eq!(l.audit(r.id).unwrap().len(), 2);
    drop(l);
    tokio::task::yield_now().await;
}

#[test]
fn check_reaches_the_database_and_names_it_without_the_password() {
    let Some(c) = pg::cluster() else { return };
    let (_db, url) = c.password_database();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pg_password");
    let config = dir.path().join("config.toml");
    let check = |password: &str| {
        std::fs::write(&pw, password).unwrap();
        std::fs::write(
            &config,
            format!(
                "[storage]\nurl = \"{url}\"\npassword_file = \"{}\"\n",
                pw.display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"))
            .arg("check")
            .env("OPSDECK_CONFIG", &config)
            .env("OPSDECK_DATA_DIR", dir.path().join("data"))
            .env_remove("OPSDECK_SERVER")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text
            .lines()
            .find(|l| l.contains("storage.url"))
            .unwrap_or_else(|| panic!("no storage line: {text}"))
            .to_string();
        assert!(!text.contains(pg::PASSWORD), "{text}");
        line
    };
    let ok = check(pg::PASSWORD);
    assert!(
        ok.contains("ledger ok: 0 audit rows") && ok.contains(&url),
        "{ok}"
    );
    let bad = check("not-the-password");
    assert!(bad.contains("password authentication failed"), "{bad}");
    assert!(!bad.contains("not-the-password"), "{bad}");
}
