//! Notifications through the real server and CLI, to a fake Telegram Bot API and a fake
//! webhook receiver on 127.0.0.1 (real HTTP): one message per event with the right text, a
//! receiver that is down gets everything in order once back and nothing twice across a
//! restart, the HMAC signature verifies, and a 429's retry_after is honoured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/server.rs"]
mod server;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use server::{TestServer, free_port, text};
use sha2::Sha256;

const TOKEN: &str = "123456:AAFakeBotTokenSecretValue";
const HOOK_PATH: &str = "/hooks/T000SECRETHOOKPATH";
const HMAC_KEY: &str = "hmac-shared-secret-42";

/// One request a fake received, and the status it answered.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    raw: Vec<u8>,
    at: Instant,
    status: u16,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.raw).unwrap()
    }
}

/// A scripted reply: status, body, Retry-After header.
type Reply = (u16, String, Option<u64>);

/// A fake receiver: records every request; answers from a script, then 200 with Telegram's
/// `{"ok":true}`.
#[derive(Clone, Default)]
struct Fake {
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

/// A fake being served on a port until dropped.
struct Serving {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(
    axum::extract::State(f): axum::extract::State<Fake>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let raw = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default()
        .to_vec();
    let (status, body, after) = f.script.lock().unwrap().pop_front().unwrap_or((
        200,
        r#"{"ok":true,"result":{"message_id":1}}"#.into(),
        None,
    ));
    f.log.lock().unwrap().push(Received {
        path,
        headers,
        raw,
        at: Instant::now(),
        status,
    });
    let mut resp = (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(a) = after {
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            a.to_string().parse().unwrap(),
        );
    }
    resp
}

impl Fake {
    /// Serves on `port` until the returned guard drops.
    fn serve(&self, port: u16) -> Serving {
        let me = self.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                ready_tx.send(()).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(me);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        ready.recv_timeout(Duration::from_secs(10)).unwrap();
        Serving {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The requests it accepted (2xx).
    fn accepted(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status < 300)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until it has accepted `n` requests (bounded).
    fn wait_accepted(&self, n: usize, what: &str) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {n} messages arrived: {:?}",
                got.len(),
                got.iter()
                    .map(|r| String::from_utf8_lossy(&r.raw).into_owned())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn write_secret(s: &TestServer, name: &str, value: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = s.dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// A server whose config is written after the secrets (they live in its temp dir).
fn server_with(sinks: impl FnOnce(&TestServer) -> String) -> TestServer {
    let mut s = TestServer::new("0.1", "");
    let extra = sinks(&s);
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("{cfg}\n{extra}\n")).unwrap();
    s.start();
    s
}

/// `opsdeck notify log --json` through the server.
fn notify_log(s: &TestServer) -> serde_json::Value {
    let out = s.ok(&["notify", "log", "--json", "--limit", "1000"]);
    serde_json::from_str(&out).unwrap()
}

/// Waits until no delivery is queued or sending.
fn wait_settled(s: &TestServer) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let log = notify_log(s);
        let open = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["state"] == "queued" || d["state"] == "sending")
            .count();
        if open == 0 {
            return log;
        }
        assert!(Instant::now() < deadline, "deliveries still open: {log:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn verify(sig: &str, body: &[u8]) -> bool {
    let Some(hex) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

#[test]
fn each_event_gives_exactly_one_message_with_the_right_text() {
    let tg = Fake::default();
    let hook = Fake::default();
    let (tg_port, hook_port) = (free_port(), free_port());
    let _tg = tg.serve(tg_port);
    let _hook = hook.serve(hook_port);
    let mut s = server_with(|s| {
        format!(
            r#"
[[notify]]
kind = "telegram"
name = "tg"
chat_id = "-1001234567890"
bot_token_file = "{token}"
api_url = "http://127.0.0.1:{tg_port}"
events = ["release_waiting", "release_failed", "export_failed"]

[[notify]]
kind = "webhook"
url_file = "{url}"
secret_file = "{key}"
services = ["api"]
retry_max = "1s"
"#,
            token = write_secret(s, "tg_token", TOKEN),
            url = write_secret(
                s,
                "hook_url",
                &format!("http://127.0.0.1:{hook_port}{HOOK_PATH}")
            ),
            key = write_secret(s, "hook_hmac", HMAC_KEY),
        )
    });
    let id1 = s.create("api", "v1");
    s.ok(&["release", "approve", &id1.to_string()]);
    s.wait_status(id1, "deployed");
    let id2 = s.create("api", "v2");
    s.ok(&[
        "release",
        "reject",
        &id2.to_string(),
        "--reason",
        "checkout <b>broken</b> & slow",
    ]);
    let w = s.create("web", "w1");
    std::fs::write(s.dir.join("fail"), "").unwrap();
    let id3 = s.create("api", "v3");
    let _ = s.client(&["release", "approve", &id3.to_string()]).output();
    s.wait_status(id3, "production_failed");

    // Telegram: waiting (4) and failed (1), every service, in order.
    let got = tg.wait_accepted(5, "telegram");
    let log = wait_settled(&s);
    let got_after = tg.accepted();
    assert_eq!(got_after.len(), 5, "one message per event, none twice");
    assert_eq!(got.len(), 5);
    let texts: Vec<String> = got
        .iter()
        .map(|r| {
            assert_eq!(r.path, format!("/bot{TOKEN}/sendMessage"));
            let b = r.json();
            assert_eq!(b["chat_id"], "-1001234567890");
            assert_eq!(b["parse_mode"], "HTML");
            b["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        texts[0].starts_with("<b>api v1 waits for approval (manual testing)</b>"),
        "{}",
        texts[0]
    );
    assert!(
        texts[0].contains(&format!("opsdeck release approve {id1}")),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].contains("<b>api v2 waits for approval"),
        "{}",
        texts[1]
    );
    assert!(texts[2].contains("<b>web w1 waits"), "{}", texts[2]);
    assert!(texts[2].contains(&format!("approve {w}")), "{}", texts[2]);
    assert!(texts[3].contains("<b>api v3 waits"), "{}", texts[3]);
    assert!(texts[4].starts_with("<b>api v3 failed</b>"), "{}", texts[4]);
    assert!(
        texts[4].contains(&format!("opsdeck release rollback {id3}")),
        "{}",
        texts[4]
    );

    // The webhook: every event of api only, signed, with the delivery id.
    let got = hook.accepted();
    assert_eq!(
        got.len(),
        8,
        "{:?}",
        got.iter().map(Received::json).collect::<Vec<_>>()
    );
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "release_waiting",
            "release_approved",
            "release_deployed",
            "release_waiting",
            "release_rejected",
            "release_waiting",
            "release_approved",
            "release_failed"
        ]
    );
    let mut ids = Vec::new();
    for r in &got {
        assert_eq!(r.path, HOOK_PATH);
        assert!(
            verify(&r.headers["x-opsdeck-signature"], &r.raw),
            "the signature verifies"
        );
        let b = r.json();
        assert_eq!(b["service"], "api");
        assert_eq!(r.headers["x-opsdeck-delivery"], b["id"].to_string());
        ids.push(b["id"].as_i64().unwrap());
    }
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids are distinct");
    // A tampered body does not verify.
    let mut bad = got[0].raw.clone();
    bad[1] ^= 1;
    assert!(!verify(&got[0].headers["x-opsdeck-signature"], &bad));
    let rejected = got[4].json();
    assert_eq!(rejected["reason"], "checkout <b>broken</b> & slow");
    assert_eq!(rejected["release_id"], id2);
    assert!(
        rejected["text"]
            .as_str()
            .unwrap()
            .contains("reason: checkout <b>broken</b> & slow"),
        "{rejected}"
    );
    assert!(rejected["actor"].is_string());

    // The log lists them all as sent, and never shows a secret.
    let sent = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["state"] == "sent")
        .count();
    assert_eq!(sent, 13);
    let human = s.ok(&["notify", "log"]);
    let check = s.client(&["check"]).output().unwrap();
    for out in [log.to_string(), human.clone(), text(&check.stdout)] {
        assert!(!out.contains("AAFakeBotToken"), "{out}");
        assert!(!out.contains("SECRETHOOKPATH"), "{out}");
        assert!(!out.contains(HMAC_KEY), "{out}");
    }
    assert!(
        human.contains("tg (telegram), webhook-2 (webhook)"),
        "{human}"
    );
    assert!(
        text(&check.stdout).contains("ok   notify tg: telegram"),
        "{}",
        text(&check.stdout)
    );
    s.stop();
}

#[test]
fn a_receiver_that_was_down_gets_every_message_in_order_and_none_twice_across_restarts() {
    let hook = Fake::default();
    let port = free_port();
    let mut s = server_with(|s| {
        format!(
            r#"
[[notify]]
kind = "webhook"
name = "hook"
url_file = "{url}"
retry_max = "1s"
"#,
            url = write_secret(s, "hook_url", &format!("http://127.0.0.1:{port}/in")),
        )
    });
    // Down: nothing listens. Three releases wait.
    let ids: Vec<i64> = ["v1", "v2", "v3"]
        .iter()
        .map(|t| s.create("api", t))
        .collect();
    // It keeps failing: the log, `check` and the event stream say so.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = notify_log(&s);
        if log["failing"].as_array().is_some_and(|f| !f.is_empty()) {
            assert_eq!(log["failing"][0]["sink"], "hook");
            break;
        }
        assert!(Instant::now() < deadline, "never reported failing: {log:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let check = s.client(&["check"]).output().unwrap();
    assert!(
        text(&check.stdout).contains("FAIL notify hook: keeps failing"),
        "{}",
        text(&check.stdout)
    );
    let (mut ev, rx) = s.events();
    server::expect_event(&rx, "notify failing", |v| {
        v["type"] == "notify" && v["failing"][0]["sink"] == "hook"
    });
    let _ = ev.kill();
    let _ = ev.wait();
    // The server stops while the receiver is down; the messages wait in the outbox.
    assert!(s.stop().success());
    let serving = hook.serve(port);
    s.start();
    let got = hook.wait_accepted(3, "after the restart");
    let tags: Vec<String> = got
        .iter()
        .map(|r| r.json()["tag"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    let rids: Vec<i64> = got
        .iter()
        .map(|r| r.json()["release_id"].as_i64().unwrap())
        .collect();
    assert_eq!(rids, ids);
    let v4 = s.create("api", "v4");
    hook.wait_accepted(4, "a new message");
    wait_settled(&s);
    // Another restart: nothing accepted before is sent again.
    assert!(s.stop().success());
    s.start();
    let v5 = s.create("api", "v5");
    let got = hook.wait_accepted(5, "after the second restart");
    wait_settled(&s);
    let got_all = hook.accepted();
    assert_eq!(got_all.len(), 5, "none twice");
    let rids: Vec<i64> = got
        .iter()
        .map(|r| r.json()["release_id"].as_i64().unwrap())
        .collect();
    assert_eq!(rids, [ids[0], ids[1], ids[2], v4, v5]);
    let log = notify_log(&s);
    assert!(log["failing"].as_array().unwrap().is_empty(), "{log:#}");
    // The first message needed several attempts; all are sent.
    let first = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event"]["release_id"] == ids[0])
        .unwrap();
    assert_eq!(first["state"], "sent");
    assert!(first["attempts"].as_u64().unwrap() >= 3, "{first}");
    drop(serving);
    s.stop();
}

#[test]
fn a_429_retry_after_is_honoured_by_telegram_and_webhook_sinks() {
    let tg = Fake::default();
    let hook = Fake::default();
    tg.script.lock().unwrap().push_back((
        429,
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#.into(),
        None,
    ));
    hook.script
        .lock()
        .unwrap()
        .push_back((429, "slow down".into(), Some(3)));
    let (tg_port, hook_port) = (free_port(), free_port());
    let _a = tg.serve(tg_port);
    let _b = hook.serve(hook_port);
    let mut s = server_with(|s| {
        format!(
            r#"
[[notify]]
kind = "telegram"
chat_id = -100777
bot_token_file = "{token}"
api_url = "http://127.0.0.1:{tg_port}"
retry_max = "1s"

[[notify]]
kind = "webhook"
url_file = "{url}"
format = "slack"
retry_max = "1s"
"#,
            token = write_secret(s, "tg_token", TOKEN),
            url = write_secret(s, "hook_url", &format!("http://127.0.0.1:{hook_port}/x")),
        )
    });
    s.create("api", "v1");
    tg.wait_accepted(1, "telegram after its 429");
    hook.wait_accepted(1, "webhook after its 429");
    for (name, f) in [("telegram", &tg), ("webhook", &hook)] {
        let all = f.all();
        assert_eq!(all.len(), 2, "{name}: one refused, one accepted");
        assert_eq!((all[0].status, all[1].status), (429, 200));
        // Lower bound only: the sink's own backoff (retry_max = 1s) would have come sooner.
        let gap = all[1].at - all[0].at;
        assert!(
            gap >= Duration::from_millis(2900),
            "{name}: retried after {gap:?}, before the 3 s asked"
        );
        assert_eq!(all[0].raw, all[1].raw, "{name}: the same message again");
    }
    assert_eq!(tg.accepted()[0].json()["chat_id"], "-100777");
    let slack = hook.accepted()[0].json();
    assert_eq!(slack.as_object().unwrap().len(), 1, "{slack}");
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with("api v1 waits for approval")
    );
    let log = wait_settled(&s);
    for d in log["deliveries"].as_array().unwrap() {
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_u64()),
            (Some("sent"), Some(2)),
            "{d}"
        );
    }
    s.stop();
}

#[test]
fn notify_test_sends_through_the_server_and_locally_and_bad_config_names_the_line() {
    let hook = Fake::default();
    let port = free_port();
    let _h = hook.serve(port);
    let mut s = server_with(|s| {
        format!(
            r#"
[[notify]]
kind = "command"
name = "pager"
argv = ["sh", "-c", "cat >> '{out}'"]

[[notify]]
kind = "webhook"
name = "hook"
url_file = "{url}"
events = ["release_deployed"]
"#,
            out = s.dir.join("paged.jsonl").display(),
            url = write_secret(s, "hook_url", &format!("http://127.0.0.1:{port}/t")),
        )
    });
    let out = s.ok(&["notify", "test", "hook"]);
    assert!(out.contains("sent a test message through hook"), "{out}");
    let got = hook.wait_accepted(1, "test message");
    assert_eq!(got[0].json()["kind"], "test");
    let out = s.client(&["notify", "test", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no sink `nope`; configured: pager, hook"));
    // The command sink: the event as JSON on stdin.
    s.ok(&["notify", "test", "pager"]);
    let paged = std::fs::read_to_string(s.dir.join("paged.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(paged.lines().next().unwrap()).unwrap();
    assert_eq!(v["kind"], "test");
    assert_eq!(v["sink"], "pager");
    let log = notify_log(&s);
    assert_eq!(
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["state"] == "sent" && d["event"]["kind"] == "test")
            .count(),
        2
    );
    // Local mode: this machine's outbox and sinks.
    let out = s
        .client(&["--local", "notify", "test", "hook"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    hook.wait_accepted(2, "local test message");
    s.stop();

    // A key of another kind: the key, the file and the line.
    let bad = s.dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[notify]]\nkind = \"telegram\"\nchat_id = \"1\"\nurl_file = \"/x\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(&s.bin)
        .args(["--local", "check"])
        .env("OPSDECK_CONFIG", &bad)
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert!(!out.status.success());
    assert!(
        o.contains(&format!("{}:4", bad.display()))
            && o.contains("`url_file` is a key of a webhook sink"),
        "{o}"
    );
}

#[test]
fn local_mode_queues_and_sends_from_the_command_itself() {
    let hook = Fake::default();
    let port = free_port();
    let s = TestServer::new("0.1", "");
    let url = write_secret(&s, "hook_url", &format!("http://127.0.0.1:{port}/local"));
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{cfg}\n[[notify]]\nkind = \"webhook\"\nurl_file = \"{url}\"\nretry_max = \"1s\"\n"
        ),
    )
    .unwrap();
    // The receiver is down: the command still succeeds, and the message stays queued.
    let create = |tag: &str| {
        s.ok(&[
            "--local",
            "release",
            "create",
            "--service",
            "api",
            "--tag",
            tag,
            "--status",
            "manual_testing",
        ])
        .trim()
        .parse::<i64>()
        .unwrap()
    };
    let first = create("v1");
    assert!(hook.all().is_empty());
    let log: serde_json::Value =
        serde_json::from_str(&s.ok(&["--local", "notify", "log", "--json"])).unwrap();
    assert_eq!(log["deliveries"][0]["state"], "queued", "{log:#}");
    assert!(
        log["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("webhook: "),
        "{log:#}"
    );
    // Up again: the next command sends both, in order (after the first's retry time).
    let _up = hook.serve(port);
    std::thread::sleep(Duration::from_millis(1100));
    let second = create("v2");
    let got = hook.wait_accepted(2, "local mode");
    let rids: Vec<i64> = got
        .iter()
        .map(|r| r.json()["release_id"].as_i64().unwrap())
        .collect();
    assert_eq!(rids, [first, second]);
    let local = s.dir.join("client-data").join("notify.db");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&local).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_failed_all_attempts_and_the_next_that_succeeded_through_the_server() {
    use opsdeck::testops_sim::{Fault, SimOptions, SimTestOps};
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    sim.fail_export_requests([Fault::Status(503)]);
    let hook = Fake::default();
    let port = free_port();
    let _h = hook.serve(port);
    let base = sim.base_url();
    let (s, hook) = tokio::task::spawn_blocking(move || {
        let mut s = TestServer::new("0.1", "max_attempts = 1\n");
        let url = write_secret(&s, "hook_url", &format!("http://127.0.0.1:{port}/exports"));
        let cfg = std::fs::read_to_string(&s.config).unwrap();
        std::fs::write(
            &s.config,
            format!(
                r#"{cfg}
[testops]
base_url = "{base}"
token = "sim-api-token"
project_id = 17
tree_id = 937
poll_interval = "500ms"

[[testops.groups]]
name = "API"
id = 101

[[notify]]
kind = "webhook"
url_file = "{url}"
events = ["export_failed", "export_recovered"]
"#
            ),
        )
        .unwrap();
        s.start();
        let out = s.client(&["export", "--group", "API"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        s.ok(&["export", "--group", "API"]);
        s.ok(&["export", "--group", "API"]);
        (s, hook)
    })
    .await
    .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let got = hook.wait_accepted(2, "export notifications");
        wait_settled(&s);
        assert_eq!(
            hook.accepted().len(),
            2,
            "a success after a success says nothing"
        );
        drop(s);
        got
    })
    .await
    .unwrap();
    let (a, b) = (got[0].json(), got[1].json());
    assert_eq!(
        (a["kind"].as_str(), a["group"].as_str()),
        (Some("export_failed"), Some("API"))
    );
    assert!(a["reason"].as_str().unwrap().contains("503"), "{a}");
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .starts_with("export of API failed all its attempts")
    );
    assert_eq!(
        (b["kind"].as_str(), b["group"].as_str()),
        (Some("export_recovered"), Some("API"))
    );
}

/// The ledger failing verification in the server is one `ledger_tampered` message.
#[test]
fn a_tampered_ledger_is_one_message() {
    let hook = Fake::default();
    let port = free_port();
    let _hook = hook.serve(port);
    let s = server_with(|s| {
        format!(
            r#"
[[notify]]
kind = "webhook"
url_file = "{url}"
events = ["ledger_tampered"]
retry_max = "1s"
"#,
            url = write_secret(
                s,
                "hook_url",
                &format!("http://127.0.0.1:{port}{HOOK_PATH}")
            ),
        )
    });
    let id = s.create("api", "v1");
    rusqlite::Connection::open(s.data.join("releases.db"))
        .unwrap()
        .execute(
            "UPDATE releases SET release_tag = 'evil' WHERE id = ?1",
            [id],
        )
        .unwrap();
    let got = hook.wait_accepted(1, "ledger_tampered");
    let v = got[0].json();
    assert_eq!(v["kind"], "ledger_tampered", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("ledger tampered at release {id}")),
        "{v}"
    );
    // A later change does not repeat it.
    s.create("api", "v2");
    wait_settled(&s);
    assert_eq!(hook.accepted().len(), 1);
}
