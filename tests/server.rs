//! `opsdeck run` as the server, through the real binary: the socket, every endpoint's bad
//! input, lost races, the CLI as a client with the same output as local mode, and events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/server.rs"]
mod server;

use server::{TestServer, expect_event, text};

#[test]
fn one_server_per_socket_and_a_stale_socket_is_replaced() {
    let mut s = TestServer::new("0.1", "");
    s.start();
    let first = s.pid();
    // A second server on the same socket refuses, naming the first.
    let out = std::process::Command::new(&s.bin)
        .arg("run")
        .env("OPSDECK_CONFIG", &s.config)
        .env("OPSDECK_DATA_DIR", s.dir.join("other"))
        .env("OPSDECK_SOCKET", &s.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("already running (pid {first})")),
        "{}",
        text(&out.stderr)
    );
    // Killed without clean-up: the socket file stays, and the next server replaces it.
    s.kill9();
    assert!(s.socket.exists(), "a killed server leaves its socket");
    assert!(!s.client(&["health"]).output().unwrap().status.success());
    s.start();
    assert_ne!(s.pid(), first);
    let h = s.json("/v1/health");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    // A clean stop removes the socket.
    assert!(s.stop().success());
    assert!(!s.socket.exists());
}

#[test]
fn every_endpoint_refuses_bad_input_with_400_and_writes_nothing() {
    let mut s = TestServer::new("0.1", "");
    s.start();
    let id = s.create("api", "v1");
    let before = s.snapshot();
    let cases: &[(&str, String, Option<&str>, u16)] = &[
        ("POST", "/v1/releases".into(), Some("{not json"), 400),
        (
            "POST",
            "/v1/releases".into(),
            Some(r#"{"service_name":"nope","release_tag":"v1"}"#),
            400,
        ),
        (
            "POST",
            "/v1/releases".into(),
            Some(r#"{"service_name":"api","release_tag":"-rf"}"#),
            400,
        ),
        (
            "POST",
            "/v1/releases".into(),
            Some(r#"{"service_name":"api","release_tag":"v2","status":"deployed"}"#),
            400,
        ),
        (
            "POST",
            format!("/v1/releases/{id}/status"),
            Some(r#"{"status":"shipped"}"#),
            400,
        ),
        (
            "POST",
            format!("/v1/releases/{id}/status"),
            Some(r#"{"status":"deployed"}"#),
            400,
        ),
        (
            "POST",
            format!("/v1/releases/{id}/reject"),
            Some(r#"{"reason":"  "}"#),
            400,
        ),
        (
            "POST",
            format!("/v1/releases/{id}/reject"),
            Some(r#"{}"#),
            400,
        ),
        (
            "POST",
            format!("/v1/releases/{id}/rollback"),
            Some(r#"{"to":"bad tag!"}"#),
            400,
        ),
        ("POST", "/v1/releases/999/approve".into(), None, 404),
        ("GET", "/v1/releases/999".into(), None, 404),
        ("GET", "/v1/releases?status=nonsense".into(), None, 400),
        (
            "POST",
            "/v1/exports".into(),
            Some(r#"{"groups":["NOPE"]}"#),
            400,
        ),
        (
            "PUT",
            "/v1/schedules/export".into(),
            Some(r#"{"cron":"61 * * * *"}"#),
            400,
        ),
        (
            "PUT",
            "/v1/schedules/nope".into(),
            Some(r#"{"cron":"0 7 * * *"}"#),
            404,
        ),
        ("POST", "/v1/schedules/export/explode".into(), None, 400),
        ("GET", "/v1/nothing-here".into(), None, 404),
    ];
    for (method, path, body, want) in cases {
        let (code, reply) = s.curl(method, path, *body);
        assert_eq!(code, *want, "{method} {path} {body:?}: {reply}");
        let v: serde_json::Value = serde_json::from_str(&reply)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {reply}"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()) && v["code"].is_string(),
            "{method} {path}: {reply}"
        );
    }
    assert_eq!(s.snapshot(), before, "a refused request changed the ledger");
    let config = std::fs::read_to_string(&s.config).unwrap();
    assert!(!config.contains("61 * * * *"));
}

#[test]
fn a_lost_race_is_a_409_that_says_who_won_and_when() {
    let mut s = TestServer::new("0.3", "");
    s.start();
    let id = s.create("api", "v1");
    // Eight approvals at once: one wins, the others are told the status and who set it.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let cmd = s.client(&["release", "approve", &id.to_string()]);
            std::thread::spawn(move || {
                let mut cmd = cmd;
                cmd.output().unwrap()
            })
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        outs.iter().map(|o| text(&o.stderr)).collect::<Vec<_>>()
    );
    let who_won = regex::Regex::new(r"\(root (approved it|set it to \w+) \d+ s ago, at ").unwrap();
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        let e = text(&o.stderr);
        // The loser is told plainly who won and how long ago.
        assert!(who_won.is_match(&e), "{e}");
    }
    s.wait_status(id, "deployed");
    let (code, body) = s.curl("POST", &format!("/v1/releases/{id}/approve"), None);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("(root set it to deployed "), "{body}");
}

#[test]
fn the_cli_gives_the_same_output_through_the_server_as_in_process() {
    let mut s = TestServer::new("0.1", "");
    s.start();
    let id = s.create("api", "v1.5.0");
    let approve = s
        .client(&["release", "approve", &id.to_string()])
        .output()
        .unwrap();
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    // Progress comes as it happens, then the final line.
    let err = text(&approve.stderr);
    assert!(
        err.contains("deploying registry.example.com/team/api:v1.5.0"),
        "{err}"
    );
    assert!(
        text(&approve.stdout).contains("deployed"),
        "{}",
        text(&approve.stdout)
    );
    let remote_list = s.ok(&["release", "list", "--json"]);
    let remote_show = s.ok(&["release", "show", &id.to_string(), "--json"]);
    let remote_table = s.ok(&["release", "list"]);
    s.stop();
    // The same ledger read in-process.
    let local = |args: &[&str]| {
        let out = std::process::Command::new(&s.bin)
            .arg("--local")
            .args(args)
            .env("OPSDECK_CONFIG", &s.config)
            .env("OPSDECK_DATA_DIR", &s.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(local(&["release", "list", "--json"]), remote_list);
    assert_eq!(
        local(&["release", "show", &id.to_string(), "--json"]),
        remote_show
    );
    assert_eq!(local(&["release", "list"]), remote_table);
    // A failed deploy is exit 1 in both modes.
    s.start();
    std::fs::write(s.dir.join("fail"), "").unwrap();
    let id2 = s.create("api", "v1.6.0");
    let out = s
        .client(&["release", "approve", &id2.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(s.status_of(id2), "production_failed");
}

#[test]
fn every_change_reaches_event_streams_with_who_made_it() {
    let mut s = TestServer::new("0.1", "");
    s.start();
    let (mut a, rx_a) = s.events();
    let (mut b, rx_b) = s.events();
    for rx in [&rx_a, &rx_b] {
        expect_event(rx, "hello", |v| v["type"] == "hello");
    }
    // Both streams are sessions; the server lists them.
    let sessions = s.json("/v1/sessions");
    assert_eq!(sessions.as_array().unwrap().len(), 2, "{sessions}");
    let id = s.create("api", "v2.0.0");
    s.ok(&["release", "approve", &id.to_string()]);
    for rx in [&rx_a, &rx_b] {
        let v = expect_event(rx, "approved", |v| {
            v["type"] == "release" && v["release"]["status"] == "manual_test_passed"
        });
        assert_eq!(v["actor"], "root");
        assert_eq!(v["summary"], "root approved api v2.0.0");
        assert!(v["at"].is_string() && v["seq"].as_u64().unwrap() > 0);
        expect_event(rx, "deployed", |v| {
            v["type"] == "release" && v["release"]["status"] == "deployed"
        });
    }
    let _ = a.kill();
    let _ = a.wait();
    // The server notices a stream that went away.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.json("/v1/sessions").as_array().unwrap().len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "a closed stream stayed a session"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let metrics = s.curl("GET", "/metrics", None).1;
    assert!(
        metrics.contains("opsdeck_release_transitions_total{status=\"deployed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("opsdeck_sessions 1"), "{metrics}");
    assert!(
        metrics.contains("opsdeck_deploy_duration_seconds_count 1"),
        "{metrics}"
    );
    let _ = b.kill();
    let _ = b.wait();
}

#[test]
fn a_second_approval_of_a_service_waits_its_turn_and_can_be_cancelled() {
    let mut s = TestServer::new("1.5", "");
    s.start();
    let first = s.create("api", "v1");
    let second = s.create("api", "v2");
    let third = s.create("api", "v3");
    for id in [first, second, third] {
        let (code, body) = s.curl("POST", &format!("/v1/releases/{id}/approve"), None);
        assert_eq!(code, 202, "{body}");
    }
    // The third waits behind the others: cancel it; it stays approved and deployable.
    let out = s.ok(&["release", "cancel", &third.to_string()]);
    assert!(out.contains("cancelled"), "{out}");
    s.wait_status(first, "deployed");
    s.wait_status(second, "deployed");
    assert_eq!(s.status_of(third), "manual_test_passed");
    // Deployed in order: the first finished before the second started deploying.
    let audit = |id: i64| s.json(&format!("/v1/releases/{id}"))["audit"].clone();
    let at = |id: i64, to: &str| {
        audit(id)
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["to"] == to)
            .map(|a| a["at"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(at(first, "deployed") <= at(second, "deploying"));
    // `release deploy` starts it again.
    let out = s.ok(&["release", "deploy", &third.to_string()]);
    assert!(out.contains("deployed"), "{out}");
    assert_eq!(s.status_of(third), "deployed");
    // Nothing is queued any more: a cancel says so and exits 2.
    let out = s
        .client(&["release", "cancel", &third.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no queued deploy"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn log_sources_stream_from_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(
        &log,
        "2026-11-28T10:00:00Z INFO one\n2026-11-28T10:00:01Z WARN two\n2026-11-28T10:00:02Z ERROR three\n",
    )
    .unwrap();
    let mut s = TestServer::new(
        "0.1",
        &format!(
            "[[logs.sources]]\nname = \"app\"\npath = \"{}\"\n",
            log.display()
        ),
    );
    s.start();
    let (code, body) = s.curl("GET", "/v1/logs/app?tail=2", None);
    assert_eq!(code, 200, "{body}");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[0]["text"], "2026-11-28T10:00:01Z WARN two");
    assert_eq!(lines[0]["level"], "warn");
    assert_eq!(lines[1]["level"], "error");
    assert_eq!(lines[1]["ts"], "2026-11-28T10:00:02Z");
    assert_eq!(lines[1]["source"], "app");
    let (code, body) = s.curl("GET", "/v1/logs/nope", None);
    assert_eq!(code, 404);
    assert!(body.contains("app"), "the known sources are named: {body}");
    // Follow: a line appended later arrives on the open stream.
    let mut follow = std::process::Command::new("curl")
        .args(["-sN", "--unix-socket"])
        .arg(&s.socket)
        .arg("http://opsdeck/v1/logs/app?tail=0&follow=1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "2026-11-28T10:00:03Z ERROR four").unwrap();
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the appended line");
    assert!(got.contains("ERROR four"), "{got}");
    let _ = follow.kill();
    let _ = follow.wait();
}
