//! `opsdeck storage migrate --from sqlite:PATH --to postgres://…`: 10 000 releases copied
//! with their audit chain, and `release verify` on the copy printing the source's head; a
//! tampered source or a database that already holds a ledger is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/postgres.rs"]
mod pg;

use std::path::Path;
use std::process::Command;

use opsdeck::release::{Actor, Ledger, NewRelease, Status};

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

#[test]
fn ten_thousand_releases_copied_and_verified_with_the_same_head() {
    let Some(db) = pg::database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("releases.db");
    sqlite_ledger(&source, 10_000);
    let sqlite_cfg = format!("[releases]\nledger = {:?}\n", source.display().to_string());
    let (code, before, err) = opsdeck(dir.path(), &sqlite_cfg, &["--local", "release", "verify"]);
    assert_eq!(code, 0, "{before}{err}");
    // 10 000 created + 10 000 built + 1 000 × (4 moves + 1 refusal).
    assert!(
        before.starts_with("ledger ok: 25000 audit rows, 10000 releases, head row 25000 sha256 "),
        "{before}"
    );

    let pg_cfg = format!("[storage]\nurl = {:?}\n", db.url);
    let from = format!("sqlite:{}", source.display());
    let (code, out, err) = opsdeck(
        dir.path(),
        &pg_cfg,
        &["storage", "migrate", "--from", &from],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("copied 10000 releases and 25000 audit rows"),
        "{out}"
    );
    // `release verify` on the copy: the same rows and the same chain head, to the byte.
    let (code, after, err) = opsdeck(dir.path(), &pg_cfg, &["--local", "release", "verify"]);
    assert_eq!(code, 0, "{after}{err}");
    assert_eq!(after, before);

    // The copy is a working ledger: the same answers, and writes chain on.
    let at = opsdeck::storage::LedgerAt::Postgres(std::sync::Arc::new(
        opsdeck::storage::PgConfig::new(&db.url, None).unwrap(),
    ));
    let mut copy = Ledger::open_at(&at).unwrap();
    let src = Ledger::open(&source).unwrap();
    assert_eq!(copy.get(8).unwrap(), src.get(8).unwrap());
    assert_eq!(copy.audit(11).unwrap(), src.audit(11).unwrap());
    assert_eq!(
        copy.deployed_tags("api").unwrap(),
        src.deployed_tags("api").unwrap()
    );
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

    // A second copy into the same database is refused; nothing changes.
    let (code, _, err) = opsdeck(
        dir.path(),
        &pg_cfg,
        &["storage", "migrate", "--from", &from],
    );
    assert_eq!(code, 1);
    assert!(err.contains("already holds a ledger"), "{err}");
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
