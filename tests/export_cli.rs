//! `opsdeck export` against the simulated TestOps over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

mod support;

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use support::*;

async fn sim() -> SimTestOps {
    SimTestOps::start(SimOptions::default()).await.unwrap()
}

#[tokio::test]
async fn exports_every_group_prints_paths_and_applies_retention() {
    let sim = sim().await;
    let api = sample_csv("API", 50, 1);
    sim.set_body(101, Body::Bytes(Bytes::from(api.clone())));
    // A group with zero test cases: a header-only file is a valid export.
    sim.set_body(102, Body::Bytes(Bytes::from_static(b"allure_id;name\n")));
    let ws = Workspace::new(&sim.base_url(), "retention_days = 30");
    std::fs::create_dir_all(&ws.export_dir).unwrap();
    let old = "testops_export_17_API_2020-01-01_07-00-00.csv";
    for keep in [
        "notes.txt",
        "testops_export_17_API_2020-01-01_07-00-00.csv.bak",
    ] {
        std::fs::write(ws.export_dir.join(keep), "x").unwrap();
    }
    std::fs::write(ws.export_dir.join(old), "a;b\n").unwrap();

    let out = ws.run(&["export"]).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_no_secret(&out);
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(printed.len(), 2, "{printed:?}");
    for p in &printed {
        assert!(std::path::Path::new(p).starts_with(&ws.export_dir), "{p}");
    }
    let files = exports_only(&ws.export_files());
    assert_eq!(files.len(), 2, "{files:?}");
    let api_file = files
        .iter()
        .find(|f| f.starts_with("testops_export_17_API_"))
        .unwrap();
    let ui_file = files
        .iter()
        .find(|f| f.starts_with("testops_export_17_UI_"))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.export_dir.join(api_file)).unwrap(),
        api
    );
    assert_eq!(
        std::fs::read_to_string(ws.export_dir.join(ui_file)).unwrap(),
        "allure_id;name\n"
    );
    // Retention removed the old export and nothing else; no temporary file is left.
    let all = ws.export_files();
    assert!(!all.contains(&old.to_string()));
    assert!(all.contains(&"notes.txt".to_string()));
    assert!(all.contains(&"testops_export_17_API_2020-01-01_07-00-00.csv.bak".to_string()));
    assert!(
        !all.iter().any(|f| f.starts_with(".opsdeck-download")),
        "{all:?}"
    );

    // Only the named group when --group is given.
    let out = ws.run(&["export", "--group", "ui"]).await;
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 1);
    assert!(text(&out.stdout).contains("_UI_"));
}

#[tokio::test]
async fn expired_access_token_is_exchanged_again_once() {
    let sim = sim().await;
    sim.fail_export_requests([Fault::Expire]);
    let ws = Workspace::new(&sim.base_url(), "");
    let out = ws.run(&["export", "--group", "API"]).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(sim.counters().exchanges.load(Relaxed), 2);
    assert_eq!(sim.counters().export_requests.load(Relaxed), 2);
    assert_no_secret(&out);
}

#[tokio::test]
async fn server_error_then_success_is_retried_and_recorded() {
    let sim = sim().await;
    sim.fail_export_requests([Fault::Status(503)]);
    let ws = Workspace::new(&sim.base_url(), "");
    let out = ws.run(&["export", "--group", "API"]).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(sim.counters().export_requests.load(Relaxed), 2);
    assert_eq!(exports_only(&ws.export_files()).len(), 1);
    // The run history records both attempts.
    let h = opsdeck::export::RunHistory::open(&ws.data_dir.join("history.db")).unwrap();
    let last = h.last_attempt("API").unwrap().unwrap();
    assert_eq!(
        (last.attempt, last.max_attempts, last.outcome.as_str()),
        (2, 3, "saved")
    );
    let attempts = h.attempts_of_run(last.run_id).unwrap();
    assert_eq!(attempts[0].outcome, "retrying");
    assert!(attempts[0].error.as_deref().unwrap().contains("503"));
    assert!(last.rows.unwrap() > 0 && last.bytes.unwrap() > 0 && last.file.is_some());
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let sim = sim().await;
    sim.fail_export_requests([Fault::RetryAfter(429, 1)]);
    let ws = Workspace::new(&sim.base_url(), "");
    let out = ws.run(&["export", "--group", "API"]).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|(_, r)| r.starts_with("POST /api/v2/test-case/bulk/export/csv"))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(posts.len(), 2);
    // The configured delay is 20 ms; the server asked for 1 s, and was obeyed.
    assert!(
        posts[1] - posts[0] >= std::time::Duration::from_millis(990),
        "{:?}",
        posts[1] - posts[0]
    );
}

#[tokio::test]
async fn not_ready_replies_are_polled_through() {
    let sim = sim().await;
    sim.update(|o| o.not_ready_polls = 5);
    let ws = Workspace::new(&sim.base_url(), "");
    let out = ws.run(&["export", "--group", "API"]).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let polls = sim
        .requests()
        .iter()
        .filter(|(_, r)| r.starts_with("GET /api/export/download/"))
        .count();
    assert_eq!(polls, 6);
    let file = exports_only(&ws.export_files()).pop().unwrap();
    let body = std::fs::read_to_string(ws.export_dir.join(file)).unwrap();
    assert!(body.starts_with("allure_id;"), "{body}");
}

#[tokio::test]
async fn html_with_status_200_is_refused_and_nothing_is_saved() {
    let sim = sim().await;
    sim.fail_downloads([Fault::Html200, Fault::Html200, Fault::Html200]);
    let ws = Workspace::new(&sim.base_url(), "");
    let out = ws.run(&["export", "--group", "API"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: group API:") && err.contains("HTML"),
        "{err}"
    );
    assert!(ws.export_files().is_empty(), "{:?}", ws.export_files());
    assert_no_secret(&out);
}

#[tokio::test]
async fn wrong_api_token_fails_at_once_without_retrying() {
    let sim = sim().await;
    // An hour between attempts: retrying would hang the test past its limit.
    let ws = Workspace::with_token(
        &sim.base_url(),
        "wrong-token-value",
        "retry_delays = [\"1h\"]",
    );
    let out = ws.run(&["export"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("refused the API token"), "{err}");
    assert_eq!(err.matches("error: group").count(), 2, "{err}");
    assert!(!err.contains("wrong-token-value"), "{err}");
    assert_eq!(sim.counters().export_requests.load(Relaxed), 0);
}

#[tokio::test]
async fn connection_cut_mid_body_leaves_no_file_then_retry_saves_one() {
    let sim = sim().await;
    sim.set_body(101, Body::Bytes(Bytes::from(sample_csv("API", 2000, 3))));
    sim.fail_downloads([Fault::CutAfter(10_000)]);
    let ws = Workspace::new(&sim.base_url(), "max_attempts = 1");
    let out = ws.run(&["export", "--group", "API"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("broke off"),
        "{}",
        text(&out.stderr)
    );
    assert!(ws.export_files().is_empty(), "{:?}", ws.export_files());

    // The next export of the same group goes through and leaves exactly one file.
    let out = ws.run(&["export", "--group", "API"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(ws.export_files().len(), 1);
}

#[tokio::test]
async fn unknown_group_and_unreachable_server_are_clear_errors() {
    let sim = sim().await;
    let ws = Workspace::new(&sim.base_url(), "");
    let out = ws.run(&["export", "--group", "WEB"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown group `WEB`; configured groups: API, UI"));

    // Nothing listens on port 9 of 127.0.0.1.
    let ws = Workspace::new("http://127.0.0.1:9", "max_attempts = 1");
    let out = ws.run(&["export", "--group", "API"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach TestOps") && err.contains("refused"),
        "{err}"
    );
    assert_no_secret(&out);
}
