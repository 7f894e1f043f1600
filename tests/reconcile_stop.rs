//! The local dashboard's reconciliation of releases left in deploying is a task the
//! dashboard awaits at shutdown: it ends when cancelled even while the engine does not
//! answer, drops its connection to the engine, and leaves the release where it was for the
//! next start (issue 13: it was detached and never awaited).
//!
//! The engine here is a Unix socket that accepts and never answers (`DOCKER_HOST`), so the
//! reconciliation is held in its first Docker call until the cancel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::time::Duration;

use opsdeck::config::Config;
use opsdeck::release::{Actor, Ledger, NewRelease, Status};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn a_cancelled_reconciliation_ends_drops_the_engine_and_leaves_the_release_for_the_next_start()
 {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    // SAFETY: the only test in this binary, set before anything reads the environment.
    unsafe { std::env::set_var("DOCKER_HOST", format!("unix://{}", sock.display())) };
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();

    let ledger_path = dir.path().join("releases.db");
    let actor = Actor {
        user: "gone".into(),
        sudo_user: None,
        ssh_client: None,
    };
    let id = {
        let mut l = Ledger::open(&ledger_path).unwrap();
        let r = l
            .create(
                &NewRelease {
                    service_name: "app".into(),
                    release_tag: "v2".into(),
                    ..Default::default()
                },
                &actor,
            )
            .unwrap();
        for to in [
            Status::Building,
            Status::ManualTesting,
            Status::ManualTestPassed,
            Status::Deploying,
        ] {
            l.transition(r.id, to, &actor, None, None).unwrap();
        }
        r.id
    };
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[releases]\ndeployer = \"swarm\"\nledger = \"{}\"\n\n[[releases.services]]\nname = \"app\"\nservice = \"app_web\"\nrepository = \"registry.example/app\"\n",
            ledger_path.display()
        ),
    )
    .unwrap();
    let cfg = Config::load(Some(&cfg_path), &|_: &str| None).unwrap();

    let stop = tokio_util::sync::CancellationToken::new();
    let task = opsdeck::release::desk::reconcile_in_background(
        cfg.releases.clone(),
        opsdeck::storage::LedgerAt::of(&cfg, dir.path()),
        dir.path().to_path_buf(),
        stop.clone(),
    );
    // The reconciliation reaches the engine, which never answers.
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("the reconciliation never called the engine")
        .unwrap();
    let mut request = [0u8; 4096];
    let n = conn.read(&mut request).await.unwrap();
    assert!(
        String::from_utf8_lossy(&request[..n]).contains("GET "),
        "{:?}",
        String::from_utf8_lossy(&request[..n])
    );
    assert!(!task.is_finished(), "it should wait on the engine");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("a cancelled reconciliation did not end")
        .unwrap();
    // Its connection to the engine is closed: nothing it started lives on.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut rest))
        .await
        .expect("the engine connection stayed open after the task ended")
        .unwrap();
    assert_eq!(closed, 0, "{:?}", String::from_utf8_lossy(&rest));
    // Nothing was settled half-way: the next start reconciles it.
    let l = Ledger::open(&ledger_path).unwrap();
    assert_eq!(l.get(id).unwrap().unwrap().status, Status::Deploying);
}
