//! Hostile TestOps servers (real HTTP on 127.0.0.1, written here) and bad values: each
//! finding of the hardening issue, against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use support::hostile::{Hostile, reply, testops_basics};
use support::*;
use tokio::io::AsyncWriteExt;

/// Terminal escapes and bidi overrides a hostile text may carry.
const HOSTILE: &str = "\x1b]52;c;aGk=\x07\x1b[2J\x1b]0;pwned\x07\u{202e}";

fn all(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

fn assert_inert(what: &str, s: &str) {
    for bad in ['\x1b', '\x07', '\u{202e}', '\u{9b}'] {
        assert!(!s.contains(bad), "{what} holds {bad:?}:\n{s}");
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn an_echoed_token_and_terminal_escapes_reach_no_output_log_or_history() {
    // A proxy that echoes the request body (the token exchange's holds the API token) with
    // escapes, on every call.
    let server = Hostile::start(|req, sock| async move {
        let body = format!("echo: {} {HOSTILE}", String::from_utf8_lossy(&req.body));
        reply(sock, 500, &[], body.as_bytes()).await;
    })
    .await;
    let ws = Workspace::new(&server.base_url(), "max_attempts = 1");

    let check = ws.run(&["check"]).await;
    let out = all(&check);
    assert!(out.contains("HTTP 500"), "{out}");
    assert!(
        out.contains("token=***"),
        "the echo is shown, masked:\n{out}"
    );
    assert_no_secret(&check);
    assert_inert("check output", &out);

    let export = ws.run(&["export"]).await;
    assert_eq!(export.status.code(), Some(1), "{}", all(&export));
    assert_no_secret(&export);
    assert_inert("export output", &all(&export));

    let history = ws.history_dump();
    assert!(history.contains("HTTP 500"), "{history}");
    assert!(
        !history.contains(TOKEN),
        "history.db holds the token:\n{history}"
    );
    assert_inert("history.db", &history);
    let log = ws.log_text();
    assert!(log.contains("HTTP 500"), "{log}");
    assert!(!log.contains(TOKEN), "the log holds the token:\n{log}");
    assert_inert("the log", &log);
    assert_eq!(mode(&ws.data_dir.join("history.db")), 0o600);
    assert_eq!(mode(&ws.data_dir.join("logs")), 0o700);
}

#[tokio::test]
async fn the_token_never_follows_a_redirect_to_another_origin() {
    let elsewhere = Hostile::start(|req, sock| async move {
        let _ = testops_basics(&req, sock).await;
    })
    .await;
    let target = format!("{}/api/uaa/oauth/token", elsewhere.base_url());
    let server = Hostile::start(move |_req, sock| {
        let target = target.clone();
        async move { reply(sock, 307, &[("Location", target.as_str())], b"").await }
    })
    .await;
    let ws = Workspace::new(&server.base_url(), "");
    let check = ws.run(&["check"]).await;
    let out = all(&check);
    assert!(!check.status.success(), "{out}");
    assert!(out.contains("redirect"), "{out}");
    assert_eq!(elsewhere.count(), 0, "the other origin was contacted");
    assert_no_secret(&check);

    // Within the same origin a redirect is followed.
    let same = Hostile::start(|req, sock| async move {
        if req.path == "/api/uaa/oauth/token" {
            reply(sock, 307, &[("Location", "/api/uaa/oauth/token2")], b"").await;
        } else {
            let body = br#"{"access_token":"hostile-access-token-2","expires_in":60}"#;
            reply(sock, 200, &[("Content-Type", "application/json")], body).await;
        }
    })
    .await;
    let ws = Workspace::new(&same.base_url(), "");
    let out = all(&ws.run(&["check"]).await);
    assert!(out.contains("token exchange succeeded"), "{out}");
}

/// A download that never ends: headers without a length, then CSV rows until the client
/// goes away.
async fn endless(mut sock: tokio::net::TcpStream, pause: Option<Duration>, chunk: &[u8]) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nConnection: close\r\n\r\na;b\n";
    if sock.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    loop {
        if sock.write_all(chunk).await.is_err() {
            return;
        }
        if let Some(p) = pause {
            tokio::time::sleep(p).await;
        }
    }
}

#[tokio::test]
async fn an_endless_body_stops_at_max_bytes_and_leaves_no_file() {
    let server = Hostile::start(|req, sock| async move {
        if let Some(sock) = testops_basics(&req, sock).await {
            endless(sock, None, &b"1;2\n".repeat(16 << 10)).await;
        }
    })
    .await;
    let ws = Workspace::new(&server.base_url(), "max_attempts = 1\nmax_bytes = \"1MiB\"");
    let out = ws.run(&["export", "--group", "API"]).await;
    let msg = all(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("export.max_bytes"), "{msg}");
    assert_eq!(ws.export_files(), Vec::<String>::new());
}

#[tokio::test]
async fn a_dripping_body_fails_the_minimum_rate() {
    // One byte every 300 ms: within any read timeout, yet it would take hours.
    let server = Hostile::start(|req, sock| async move {
        if let Some(sock) = testops_basics(&req, sock).await {
            endless(sock, Some(Duration::from_millis(300)), b"1").await;
        }
    })
    .await;
    let ws = Workspace::new(
        &server.base_url(),
        "max_attempts = 1\nmin_rate = \"1KiB/1s\"",
    );
    let out = ws.run(&["export", "--group", "API"]).await;
    let msg = all(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("export.min_rate"), "{msg}");
    assert_eq!(ws.export_files(), Vec::<String>::new());
}

#[tokio::test]
async fn a_steady_but_endless_body_ends_at_the_attempt_deadline() {
    let server = Hostile::start(|req, sock| async move {
        if let Some(sock) = testops_basics(&req, sock).await {
            endless(sock, Some(Duration::from_millis(50)), &b"1;2\n".repeat(64)).await;
        }
    })
    .await;
    let ws = Workspace::new(
        &server.base_url(),
        "max_attempts = 1\nmin_rate = \"1KiB/1s\"\nattempt_timeout = \"2s\"",
    );
    let out = ws.run(&["export", "--group", "API"]).await;
    let msg = all(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("export.attempt_timeout"), "{msg}");
    assert_eq!(ws.export_files(), Vec::<String>::new());
}

#[tokio::test]
async fn a_huge_token_reply_is_refused_without_reading_it() {
    // 1.5 GB announced; and the same without a length, streamed until the client leaves.
    for announced in [true, false] {
        let server = Hostile::start(move |_req, mut sock| async move {
            let length = if announced {
                "Content-Length: 1500000000\r\n"
            } else {
                "Connection: close\r\n"
            };
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}\r\n");
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(b"{\"access_token\":\"").await;
            let chunk = vec![b'x'; 64 << 10];
            while sock.write_all(&chunk).await.is_ok() {}
        })
        .await;
        let ws = Workspace::new(&server.base_url(), "");
        let out = ws.run(&["check"]).await;
        let msg = all(&out);
        assert!(!out.status.success(), "{msg}");
        assert!(msg.contains("larger than 65536 bytes"), "{msg}");
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[tokio::test]
async fn bad_values_are_refused_with_file_and_line_in_check() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let long = "G".repeat(300);
    // (replace, with, the key named in the error)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "max_attempts = 3",
            "max_attempts = 3\nretention_days = 0".into(),
            "export.retention_days",
        ),
        (
            "max_attempts = 3",
            "max_attempts = 3\nretention_days = 4000000000".into(),
            "export.retention_days",
        ),
        (
            "poll_interval = \"500ms\"",
            "poll_interval = \"0s\"".into(),
            "testops.poll_interval",
        ),
        (
            "read_timeout = \"5s\"",
            "read_timeout = \"0s\"".into(),
            "testops.read_timeout",
        ),
        (
            "max_attempts = 3",
            "max_attempts = 3\nschedule = \"* * * * * *\"".into(),
            "export.schedule",
        ),
        (
            "name = \"API\"",
            format!("name = \"{long}\""),
            "testops.groups.name",
        ),
        (
            "# test config",
            "# test config\n[releases]\ndeploy_timeout = \"0s\"".into(),
            "releases.deploy_timeout",
        ),
    ];
    for (from, to, key) in cases {
        let ws = Workspace::new(&sim.base_url(), "");
        let text0 = std::fs::read_to_string(&ws.config).unwrap();
        let text1 = text0.replacen(from, &to, 1);
        std::fs::write(&ws.config, &text1).unwrap();
        let needle = to.lines().last().unwrap();
        let at = format!("{}:{}", ws.config.display(), line_of(&text1, needle));
        let check = ws.run(&["check"]).await;
        let out = all(&check);
        assert!(!check.status.success(), "{key}: {out}");
        assert!(
            out.contains(key) && out.contains(&at),
            "{key} at {at}:\n{out}"
        );
        let export = ws.run(&["export"]).await;
        assert_eq!(export.status.code(), Some(2), "{key}: {}", all(&export));
    }

    // Sub-minute schedules when asked for.
    let ws = Workspace::new(
        &sim.base_url(),
        "schedule = \"*/30 * * * * *\"\nallow_sub_minute = true",
    );
    let out = all(&ws.run(&["check"]).await);
    assert!(out.contains("ok   export.schedule"), "{out}");
}

#[tokio::test]
async fn urls_passwords_plain_http_and_readable_token_files() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    // A password in base_url is never printed.
    let with_password = sim
        .base_url()
        .replace("http://", "http://bob:hunter2-url-password@");
    let ws = Workspace::new(&with_password, "");
    let out = all(&ws.run(&["check"]).await);
    assert!(out.contains("bob:***@"), "{out}");
    assert!(!out.contains("hunter2-url-password"), "{out}");

    // Plain http to another host is refused unless allowed.
    let ws = Workspace::new("http://testops.invalid", "");
    let out = all(&ws.run(&["check"]).await);
    assert!(out.contains("testops.allow_http"), "{out}");
    ws.testops_extra("allow_http = true");
    let out = all(&ws.run(&["check"]).await);
    assert!(!out.contains("FAIL config"), "{out}");

    // A token file others can read is warned about.
    let ws = Workspace::new(&sim.base_url(), "");
    let token_file = ws.root.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text0 = std::fs::read_to_string(&ws.config).unwrap();
    let text1 = text0.replace(
        &format!("token = \"{TOKEN}\""),
        &format!("token_file = \"{}\"", token_file.display()),
    );
    std::fs::write(&ws.config, text1).unwrap();
    let check = ws.run(&["check"]).await;
    let out = all(&check);
    assert!(out.contains("warn") && out.contains("chmod 600"), "{out}");
    assert!(out.contains("token exchange succeeded"), "{out}");
    assert_no_secret(&check);
}

#[tokio::test]
async fn a_corrupt_history_is_moved_aside_and_exports_go_on() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "");
    std::fs::create_dir_all(&ws.data_dir).unwrap();
    std::fs::write(ws.data_dir.join("history.db"), vec![b'#'; 8192]).unwrap();

    let out = all(&ws.run(&["check"]).await);
    assert!(out.contains("FAIL history"), "check must see it:\n{out}");

    let export = ws.run(&["export", "--group", "API"]).await;
    let msg = all(&export);
    assert!(export.status.success(), "{msg}");
    assert!(
        msg.contains("corrupt") && msg.contains("history.db.corrupt-"),
        "{msg}"
    );
    let names = list(&ws.data_dir);
    assert!(
        names.iter().any(|n| n.starts_with("history.db.corrupt-")),
        "{names:?}"
    );
    assert!(ws.history_dump().contains("saved"));
    let out = all(&ws.run(&["check"]).await);
    assert!(out.contains("ok   history"), "{out}");
}

#[tokio::test]
async fn after_kill_9_the_temp_file_goes_and_the_run_is_marked_interrupted() {
    let sim = slow_sim(4000, 1).await;
    let ws = Workspace::new(&sim.base_url(), "");
    let mut child = ws.command(&["export", "--group", "API"]).spawn().unwrap();
    let dir = ws.export_dir.clone();
    wait_for(Duration::from_secs(30), "the temporary download", || {
        list(&dir)
            .iter()
            .any(|n| n.starts_with(".opsdeck-download-"))
    })
    .await;
    child.start_kill().unwrap(); // SIGKILL: no clean-up code runs
    child.wait().await.unwrap();
    assert!(
        list(&dir)
            .iter()
            .any(|n| n.starts_with(".opsdeck-download-"))
    );
    assert!(ws.history_dump().contains("|running|"));

    let out = ws.run(&["export", "--group", "UI"]).await;
    assert!(out.status.success(), "{}", all(&out));
    let left: Vec<_> = list(&dir)
        .into_iter()
        .filter(|n| n.starts_with(".opsdeck-download-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let history = ws.history_dump();
    assert!(history.contains("|interrupted|"), "{history}");
    assert!(!history.contains("|running|"), "{history}");
}

#[tokio::test]
async fn release_fields_set_by_ci_reach_the_terminal_inert() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        "[releases]\ndeployer = \"command\"\n[[releases.services]]\nname = \"api\"\n\
         [releases.command]\ndeploy = [\"true\"]\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"))
            .arg("release")
            .args(args)
            .env("OPSDECK_CONFIG", &config)
            .env("OPSDECK_DATA_DIR", root.path().join("data"))
            .output()
            .unwrap()
    };
    let by = format!("mallory{HOSTILE}");
    let out = run(&[
        "create",
        "--service",
        "api",
        "--tag",
        "v1",
        "--status",
        "manual_testing",
        "--initiated-by",
        &by,
    ]);
    assert!(out.status.success(), "{}", all(&out));
    for args in [&["list"][..], &["show", "1"][..]] {
        let out = run(args);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("mallory"),
            "{stdout}"
        );
        assert_inert("release output", &stdout);
    }
}

#[tokio::test]
async fn the_deploy_command_gets_no_testops_secret() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        "[releases]\ndeployer = \"command\"\n[[releases.services]]\nname = \"api\"\n\
         [releases.command]\ndeploy = [\"env\"]\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"))
            .arg("release")
            .args(args)
            .env("OPSDECK_CONFIG", &config)
            .env("OPSDECK_DATA_DIR", root.path().join("data"))
            .env("TESTOPS_TOKEN", "leaky-api-token-value")
            .env("OPSDECK_NOTIFY_BOT_TOKEN", "123456:leaky-bot-token")
            .output()
            .unwrap()
    };
    let out = run(&[
        "create",
        "--service",
        "api",
        "--tag",
        "v1",
        "--status",
        "manual_testing",
    ]);
    assert!(out.status.success(), "{}", all(&out));
    let out = run(&["approve", "1"]);
    assert!(out.status.success(), "{}", all(&out));
    let log = root.path().join("data/deployments/api/v1-prod.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("OPSDECK_TAG=v1"),
        "the script printed its env:\n{text}"
    );
    assert!(
        !text.contains("leaky"),
        "a secret reached the deploy log:\n{text}"
    );
    assert_eq!(mode(&log), 0o600);
}

#[tokio::test]
async fn testops_variants_client_auth_string_expiry_bom_preparing_errors_and_delete() {
    // Basic client credentials on the token exchange, and expires_in as a string.
    let sim = SimTestOps::start(SimOptions {
        client_auth: Some(("acme".into(), "acme-client-secret".into())),
        expires_in_as_string: true,
        not_ready_polls: 3,
        preparing_statuses: Some(vec![400, 503]),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let ws = Workspace::new(&sim.base_url(), "max_attempts = 1");
    let out = all(&ws.run(&["check"]).await);
    assert!(out.contains("FAIL testops"), "without client_auth: {out}");
    let text0 = std::fs::read_to_string(&ws.config).unwrap();
    std::fs::write(
        &ws.config,
        format!("{text0}\n[testops.client_auth]\nid = \"acme\"\nsecret = \"acme-client-secret\"\n"),
    )
    .unwrap();
    ws.testops_extra("delete_after_download = true");
    let check = ws.run(&["check"]).await;
    let out = all(&check);
    assert!(out.contains("access token valid for 1h"), "{out}");
    assert!(!out.contains("acme-client-secret"), "{out}");

    // A BOM, and 400/503 while the export is prepared, within one attempt.
    sim.set_body(
        101,
        Body::Bytes(bytes::Bytes::from("\u{feff}allure_id;name\n1;a\n")),
    );
    let export = ws.run(&["export", "--group", "API"]).await;
    let msg = all(&export);
    assert!(export.status.success(), "{msg}");
    let path = text(&export.stdout).trim().to_string();
    let saved = std::fs::read(&path).unwrap();
    assert!(saved.starts_with(b"allure_id;name\n"), "{saved:?}");
    assert_eq!(
        sim.counters()
            .deletes
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the export was not deleted on the server"
    );
    assert!(!msg.contains("acme-client-secret"));
}

#[tokio::test]
async fn the_default_columns_are_the_old_exporters() {
    let server = Hostile::start(|req, sock| async move {
        if let Some(sock) = testops_basics(&req, sock).await {
            reply(
                sock,
                200,
                &[("Content-Type", "text/csv")],
                b"allure_id\n1\n",
            )
            .await;
        }
    })
    .await;
    let ws = Workspace::new(&server.base_url(), "");
    let out = ws.run(&["export", "--group", "API"]).await;
    assert!(out.status.success(), "{}", all(&out));
    let requests = server.requests.lock().unwrap().clone();
    let export = requests
        .iter()
        .find(|r| r.path == "/api/v2/test-case/bulk/export/csv")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&export.body).unwrap();
    let names: Vec<&str> = body["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 26);
    assert_eq!(names[13], "Gitlab");
    assert_eq!(names[14], "Интеграция с WB Youtrack");
}

#[tokio::test]
async fn check_looks_at_the_ledger_and_the_docker_engine() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "");
    let text0 = std::fs::read_to_string(&ws.config).unwrap();
    std::fs::write(
        &ws.config,
        format!("{text0}\n[[releases.services]]\nname = \"api\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(&ws.data_dir).unwrap();
    std::fs::write(ws.data_dir.join("releases.db"), vec![b'#'; 8192]).unwrap();
    let out = all(&ws.run(&["check"]).await);
    assert!(out.contains("FAIL releases.ledger"), "{out}");
    // ok or FAIL depends on the machine; the line must be there.
    assert!(out.contains(" docker: "), "{out}");
}
