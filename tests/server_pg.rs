//! Two real servers (`opsdeck run`, each its own socket and data dir) on one PostgreSQL
//! ledger: a release created through one is seen by the other, and approvals sent to both at
//! once give one winner and one 409 that says who won.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/server.rs"]
mod server;

#[path = "support/postgres.rs"]
mod pg;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use server::{TestServer, expect_event};

#[test]
fn two_servers_on_one_ledger_one_approval_wins_the_other_is_a_409() {
    let Some(db) = pg::database() else { return };
    let storage = format!("[storage]\nurl = {:?}\n", db.url);
    let mut a = TestServer::new("0.1", &storage);
    let mut b = TestServer::new("0.1", &storage);
    a.start();
    b.start();
    for round in 0..3 {
        let id = a.create("api", &format!("v{round}"));
        // Seen at once through the other server: there is one ledger.
        assert_eq!(b.status_of(id), "manual_testing");
        let path = format!("/v1/releases/{id}/approve");
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| a.curl("POST", &path, None));
            let hb = s.spawn(|| b.curl("POST", &path, None));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let mut codes = [ra.0, rb.0];
        codes.sort();
        assert!(
            (200..300).contains(&codes[0]) && codes[1] == 409,
            "round {round}: {ra:?} {rb:?}"
        );
        let lost = if ra.0 == 409 { &ra.1 } else { &rb.1 };
        assert!(
            lost.contains("(root approved it ") || lost.contains("(root set it to "),
            "{lost}"
        );
        // Whichever server won deploys it; both read the outcome.
        a.wait_status(id, "deployed");
        assert_eq!(b.status_of(id), "deployed");
        let audit = b.json(&format!("/v1/releases/{id}"))["audit"].clone();
        let approvals = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["to"] == "manual_test_passed" && e["from"] == "manual_testing")
            .count();
        assert_eq!(approvals, 1, "{audit}");
    }
    // One chain, whole, from either side.
    for s in [&a, &b] {
        let out = s.ok(&["release", "verify"]);
        assert!(out.starts_with("ledger ok: "), "{out}");
    }
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// `/v1/health` of a server, or `None` when it does not answer.
fn health(s: &TestServer) -> Option<serde_json::Value> {
    let (code, body) = s.curl("GET", "/v1/health", None);
    (code == 200).then(|| serde_json::from_str(&body).unwrap())
}

/// Waits until exactly one of `servers` says it leads and the others name it; its index.
fn one_leader(servers: &[&TestServer]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h: Vec<serde_json::Value> = servers.iter().map(|s| health(s).unwrap()).collect();
        let leaders: Vec<usize> = (0..h.len()).filter(|i| h[*i]["leader"] == true).collect();
        if let [l] = leaders[..] {
            let pid = format!("pid {} on", h[l]["pid"]);
            if (0..h.len()).filter(|i| *i != l).all(|i| {
                h[i]["leader_holder"]
                    .as_str()
                    .is_some_and(|x| x.starts_with(&pid))
            }) {
                return l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never exactly one leader named by the others: {h:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The scheduled (and caught-up) export runs a server recorded in the shared history:
/// (instant, started).
fn scheduled_runs(db: &pg::Database, pid: i64) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    db.connect()
        .query(
            "SELECT scheduled_for, started_at FROM runs
             WHERE job = 'export' AND pid = $1 AND scheduled_for IS NOT NULL",
            &[&pid],
        )
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let t = |i| {
                DateTime::parse_from_rfc3339(r.get::<_, &str>(i))
                    .unwrap()
                    .with_timezone(&Utc)
            };
            (t(0), t(1))
        })
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_of_the_leader_the_other_takes_over_fires_each_instant_once_and_reconciles_once() {
    let Some(db) = pg::database() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt
        .block_on(opsdeck::testops_sim::SimTestOps::start(Default::default()))
        .unwrap();
    // An export every 3 s (allowed for the test), the deploy command sleeping 20 s so one
    // is in flight when the leader dies.
    let extra = format!(
        r#"schedule = "*/3 * * * * *"
allow_sub_minute = true
retry_delays = ["20ms"]

[testops]
base_url = "{}"
token = "sim-api-token"
project_id = 17
tree_id = 937
poll_interval = "500ms"
poll_timeout = "5s"

[[testops.groups]]
name = "API"
id = 101

[[testops.groups]]
name = "UI"
id = 102

[storage]
url = {:?}
"#,
        sim.base_url(),
        db.url
    );
    let mut a = TestServer::new("20", &extra);
    let mut b = TestServer::new("20", &extra);
    // One export dir and one deploy command for both, as on a shared volume.
    std::fs::copy(&a.config, &b.config).unwrap();
    a.start();
    b.start();
    let (leader, follower) = match one_leader(&[&a, &b]) {
        0 => (&mut a, &mut b),
        _ => (&mut b, &mut a),
    };
    let (lp, fp) = (leader.pid(), follower.pid());
    wait_until("two scheduled exports", Duration::from_secs(30), || {
        scheduled_runs(&db, lp).len() >= 2
    });
    assert!(
        scheduled_runs(&db, fp).is_empty(),
        "a follower ran the scheduler"
    );

    // A deploy in flight on the leader when it dies.
    let id = leader.create("api", "v1");
    let (code, body) = leader.curl("POST", &format!("/v1/releases/{id}/approve"), None);
    assert!((200..300).contains(&code), "{code} {body}");
    leader.wait_status(id, "deploying");

    let killed_at = Utc::now();
    let t0 = Instant::now();
    leader.kill9();
    loop {
        if health(follower).is_some_and(|h| h["leader"] == true) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no takeover before the 15 s deadline: {:?}",
            health(follower)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("takeover after {:?}", t0.elapsed());

    // The new leader settles the deploy the dead one left, once.
    follower.wait_status(id, "production_failed");
    wait_until(
        "two scheduled exports on the new leader",
        Duration::from_secs(30),
        || scheduled_runs(&db, fp).len() >= 2,
    );
    let audit = follower.json(&format!("/v1/releases/{id}"))["audit"].clone();
    let reconciled = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("reconciled"))
        })
        .count();
    assert_eq!(reconciled, 1, "{audit}");

    let log = follower.stop_and_log();
    // Every instant ran once across both servers; the follower ran none before the kill.
    let mut all: Vec<DateTime<Utc>> = scheduled_runs(&db, lp)
        .into_iter()
        .chain(scheduled_runs(&db, fp))
        .map(|r| r.0)
        .collect();
    assert!(
        scheduled_runs(&db, fp)
            .iter()
            .all(|(_, started)| *started >= killed_at),
        "{:?}",
        scheduled_runs(&db, fp)
    );
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an instant ran twice: {all:?}");
    assert!(log.contains("this server is the leader"), "{log}");
}

#[test]
fn eight_approvers_through_two_servers_one_winner_and_each_stream_sees_every_change_once() {
    let Some(db) = pg::database() else { return };
    let storage = format!("[storage]\nurl = {:?}\n", db.url);
    let mut a = TestServer::new("0.1", &storage);
    let mut b = TestServer::new("0.1", &storage);
    a.start();
    b.start();
    let (mut ca, ra) = a.events();
    let (mut cb, rb) = b.events();
    // Both streams are up once each has said hello.
    for rx in [&ra, &rb] {
        expect_event(rx, "hello", |v| v["type"] == "hello");
    }
    let id = a.create("api", "v1");
    // Made through A, seen on B's stream with its actor and summary.
    let seen = expect_event(&rb, "the creation on B", |v| {
        v["type"] == "release" && v["release"]["id"] == id
    });
    assert!(
        seen["summary"].as_str().unwrap().contains("created api v1"),
        "{seen}"
    );
    assert_eq!(seen["actor"], "root");

    let path = format!("/v1/releases/{id}/approve");
    let codes: Vec<(u16, String)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let server = if i % 2 == 0 { &a } else { &b };
                let path = &path;
                s.spawn(move || server.curl("POST", path, None))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = codes.iter().filter(|c| (200..300).contains(&c.0)).count();
    let lost = codes.iter().filter(|c| c.0 == 409).count();
    assert_eq!((won, lost), (1, 7), "{codes:?}");
    a.wait_status(id, "deployed");

    // Each stream: the creation, the approval, deploying, deployed; each exactly once.
    std::thread::sleep(Duration::from_millis(800));
    for (name, rx) in [("A", &ra), ("B", &rb)] {
        let mut statuses: Vec<String> = rx
            .try_iter()
            .filter(|v| v["type"] == "release" && v["release"]["id"] == id)
            .map(|v| v["release"]["status"].as_str().unwrap().to_string())
            .collect();
        if name == "B" {
            // B's creation event was taken above.
            statuses.insert(0, "manual_testing".into());
        }
        // A lost race changes nothing; the four changes arrive once each, in order.
        assert_eq!(
            statuses,
            [
                "manual_testing",
                "manual_test_passed",
                "deploying",
                "deployed"
            ],
            "stream of {name}"
        );
    }

    // The leader's election connection dies (as when the database restarts or a network cuts
    // it): it steps down, and then one server leads again.
    let servers = [&a, &b];
    let l = one_leader(&servers);
    let mut admin = db.connect();
    let mut killed = 0;
    wait_until(
        "the leader's heartbeat connection",
        Duration::from_secs(10),
        || {
            killed = admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND query ~ '^\\s*(UPDATE|INSERT INTO) opsdeck_leader'",
                    &[],
                )
                .unwrap()
                .len();
            killed > 0
        },
    );
    assert_eq!(killed, 1, "the leader's heartbeat connection");
    wait_until("the leader to step down", Duration::from_secs(15), || {
        servers[l]
            .stderr
            .lock()
            .unwrap()
            .contains("stepping down, the database connection failed")
    });
    one_leader(&servers);

    let _ = ca.kill();
    let _ = cb.kill();
    let _ = ca.wait();
    let _ = cb.wait();
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// The tags the command sink has written, in order.
fn delivered(got: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(got)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["tag"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn one_outbox_one_history_one_token_table_the_leader_delivers_each_message_once_across_a_kill_9() {
    let Some(db) = pg::database() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt
        .block_on(opsdeck::testops_sim::SimTestOps::start(Default::default()))
        .unwrap();
    // One command sink for both servers, as a pager would be: it fails (and the message
    // stays queued, retried every second) while `go` is missing.
    let shared = tempfile::tempdir().unwrap();
    let (go, got) = (shared.path().join("go"), shared.path().join("got.jsonl"));
    std::fs::write(&go, "").unwrap();
    let common = format!(
        r#"[testops]
base_url = "{}"
token = "sim-api-token"
project_id = 17
tree_id = 937
poll_interval = "500ms"

[[testops.groups]]
name = "API"
id = 101

[storage]
url = {:?}

[[notify]]
kind = "command"
name = "pager"
argv = ["sh", "-c", "test -e '{}' && cat >> '{}'"]
events = ["release_waiting"]
retry_max = "1s"
"#,
        sim.base_url(),
        db.url,
        go.display(),
        got.display()
    );
    let ports = [server::free_port(), server::free_port()];
    let mut a = TestServer::new(
        "0.1",
        &format!("[server]\nlisten = \"127.0.0.1:{}\"\n{common}", ports[0]),
    );
    let mut b = TestServer::new(
        "0.1",
        &format!("[server]\nlisten = \"127.0.0.1:{}\"\n{common}", ports[1]),
    );
    a.start();
    b.start();
    let l = one_leader(&[&a, &b]);
    let (leader, follower, fport) = if l == 0 {
        (&mut a, &mut b, ports[1])
    } else {
        (&mut b, &mut a, ports[0])
    };

    // An export through each server: either lists both runs (one history).
    for s in [&*leader, &*follower] {
        let (code, body) = s.curl("POST", "/v1/exports?wait=1", Some(r#"{"groups":["API"]}"#));
        assert_eq!(code, 200, "{body}");
    }
    let (lp, fp) = (leader.pid(), follower.pid());
    for s in [&*leader, &*follower] {
        let runs = s.json("/v1/exports")["history"]["runs"]["export"].clone();
        let mut ids: Vec<i64> = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["trigger"] == "manual")
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        ids.sort();
        let by_pid: Vec<i64> = db
            .connect()
            .query(
                "SELECT id FROM runs WHERE pid = ANY($1) AND trigger = 'manual' ORDER BY id",
                &[&vec![lp, fp]],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ids, by_pid, "{runs}");
        assert_eq!(ids.len(), 2, "{runs}");
    }

    // A token made through the follower's socket authenticates on the leader's listener,
    // and the other way round.
    let token = follower
        .ok(&["token", "create", "dash", "--role", "viewers"])
        .trim()
        .to_string();
    let lport = if fport == ports[0] {
        ports[1]
    } else {
        ports[0]
    };
    for port in [lport, fport] {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("http://127.0.0.1:{port}/v1/releases"))
            .output()
            .unwrap();
        assert_eq!(server::text(&out.stdout), "200", "port {port}");
    }
    leader.ok(&["token", "revoke", "dash"]);
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://127.0.0.1:{fport}/v1/releases"))
        .output()
        .unwrap();
    assert_eq!(
        server::text(&out.stdout),
        "401",
        "revoked through the leader"
    );

    // A release created through the follower: its message is queued there and delivered
    // by the leader, once.
    follower.create("api", "v0");
    wait_until("the first message", Duration::from_secs(30), || {
        !delivered(&got).is_empty()
    });
    // Its log line is read from the pipe by a thread: it may follow the delivery.
    wait_until(
        "the leader's delivery log line",
        Duration::from_secs(30),
        || leader.stderr.lock().unwrap().contains("notify: delivered"),
    );
    assert!(
        !follower
            .stderr
            .lock()
            .unwrap()
            .contains("notify: delivered")
    );

    // The pager is down; three messages queue up (through both servers), then the leader
    // dies with them queued.
    std::fs::remove_file(&go).unwrap();
    for (i, s) in [&*follower, &*leader, &*follower].into_iter().enumerate() {
        s.create("web", &format!("v{}", i + 1));
    }
    wait_until("a failed attempt", Duration::from_secs(30), || {
        leader
            .stderr
            .lock()
            .unwrap()
            .contains("notify: attempt 1 failed")
    });
    leader.kill9();
    wait_until("the takeover", Duration::from_secs(15), || {
        health(follower).is_some_and(|h| h["leader"] == true)
    });
    std::fs::write(&go, "").unwrap();
    wait_until("every message", Duration::from_secs(30), || {
        delivered(&got).len() >= 4
    });
    // Any duplicate would come from a retry after the mark; give it time to show.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(delivered(&got), ["v0", "v1", "v2", "v3"]);
    let (code, body) = follower.curl("GET", "/v1/notify/log?limit=10", None);
    assert_eq!(code, 200, "{body}");
    let log: serde_json::Value = serde_json::from_str(&body).unwrap();
    let states: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["sent"; 4], "{log}");
    assert!(follower.stop().success());
}
