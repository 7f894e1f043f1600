//! Benchmarks of the shared-state setup (numbers quoted in the README), against a throwaway
//! PostgreSQL cluster (as the tests make one: Debian's `postgresql` package, `initdb`):
//!
//! 1. Approve round trip through the server: `POST /v1/releases/{id}/approve` over the Unix
//!    socket (connect, request, 202 after the compare-and-set), one server on SQLite and one
//!    on PostgreSQL, 200 approvals each, alternating; median and p99, and the ratio.
//! 2. Failover: two servers on one database with an export scheduled every second; `kill -9`
//!    of the leader, then the time until the new leader starts its first scheduled run (the
//!    `started_at` it records in the shared run history, minus the moment of the kill). Five rounds
//!    (a fresh server replaces the killed one each time); the median.
//!
//! Run: `cargo build --bin opsdeck && cargo run --example ha_bench` (debug build: the
//! numbers are dominated by PostgreSQL and the election's 2 s retry, not by our code), or
//! `cargo build --release && cargo run --release --example ha_bench`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "../tests/support/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APPROVALS: usize = 200;
const ROUNDS: usize = 5;

fn main() {
    // The harness uses the synchronous client: set up outside the runtime.
    let cluster = pg::cluster().expect("a PostgreSQL cluster (apt-get install postgresql)");
    let dbs = (cluster.database(), cluster.database());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(dbs));
}

fn bin() -> PathBuf {
    // target/<profile>/examples/ha_bench -> target/<profile>/opsdeck
    let exe = std::env::current_exe().unwrap();
    let b = exe.parent().unwrap().parent().unwrap().join("opsdeck");
    assert!(
        b.exists(),
        "build the binary first: cargo build --bin opsdeck"
    );
    b
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// One HTTP/1.1 request over the socket: (status, body).
async fn http(sock: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: opsdeck\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|b| b.1.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A server: its dir, socket and process.
struct Server {
    sock: PathBuf,
    child: Child,
}

impl Server {
    fn start(root: &Path, name: &str, config: &str) -> Server {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("config.toml");
        std::fs::write(&cfg, config).unwrap();
        let sock = dir.join("opsdeck.sock");
        let child = Command::new(bin())
            .arg("run")
            .env("OPSDECK_CONFIG", &cfg)
            .env("OPSDECK_DATA_DIR", dir.join("state"))
            .env("OPSDECK_SOCKET", &sock)
            .env_remove("OPSDECK_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server { sock, child }
    }

    async fn health(&self) -> Option<serde_json::Value> {
        if !self.sock.exists() {
            return None;
        }
        let s = tokio::net::UnixStream::connect(&self.sock).await.ok()?;
        drop(s);
        let (code, body) = http(&self.sock, "GET", "/v1/health", "").await;
        (code == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.health().await.is_none() {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(mut self) {
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    /// When this server's first scheduled run after `after` started, from the run history
    /// the servers share in the database.
    fn first_run_after(
        &self,
        pg: &opsdeck::storage::PgConfig,
        after: chrono::DateTime<Utc>,
    ) -> Option<chrono::DateTime<Utc>> {
        let pid = i64::from(self.child.id());
        let rows = pg.connect().ok()?.with(|c| {
            c.query(
                "SELECT started_at FROM runs
                 WHERE job = 'export' AND scheduled_for IS NOT NULL AND pid = $1",
                &[&pid],
            )
        });
        rows.ok()?
            .iter()
            .filter_map(|r| chrono::DateTime::parse_from_rfc3339(r.get::<_, &str>(0)).ok())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t >= after)
            .min()
    }
}

fn release_config(dir: &Path, extra: &str) -> String {
    format!(
        "[releases]\ndeployer = \"command\"\n[[releases.services]]\nname = \"api\"\n\
         [releases.command]\ndeploy = [\"true\"]\n[export]\ndir = \"{}\"\n{extra}",
        dir.join("exports").display()
    )
}

async fn approvals(s: &Server, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (code, body) = http(
            &s.sock,
            "POST",
            "/v1/releases",
            &format!(r#"{{"service_name":"api","release_tag":"v{i}","status":"manual_testing"}}"#),
        )
        .await;
        assert_eq!(code, 201, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        ids.push(v["id"].as_i64().unwrap());
    }
    ids
}

async fn run((db, db2): (pg::Database, pg::Database)) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();

    // 1. Approve round trip.
    let sqlite = Server::start(root, "sqlite", &release_config(&root.join("sqlite"), ""));
    let postgres = Server::start(
        root,
        "postgres",
        &release_config(
            &root.join("postgres"),
            &format!("[storage]\nurl = {:?}\n", db.url),
        ),
    );
    sqlite.wait_up().await;
    postgres.wait_up().await;
    let ids_s = approvals(&sqlite, APPROVALS).await;
    let ids_p = approvals(&postgres, APPROVALS).await;
    let (mut ts, mut tp) = (Vec::new(), Vec::new());
    for i in 0..APPROVALS {
        for (s, id, t) in [(&sqlite, ids_s[i], &mut ts), (&postgres, ids_p[i], &mut tp)] {
            let start = Instant::now();
            let (code, body) =
                http(&s.sock, "POST", &format!("/v1/releases/{id}/approve"), "").await;
            t.push(start.elapsed().as_secs_f64() * 1e3);
            assert!((200..300).contains(&code), "{code} {body}");
        }
    }
    let (ms, mp) = (pct(&mut ts, 0.5), pct(&mut tp, 0.5));
    println!(
        "approve round trip ({APPROVALS} each): SQLite median {ms:.2} ms (p99 {:.2}), \
         PostgreSQL median {mp:.2} ms (p99 {:.2}); PostgreSQL/SQLite = {:.2}",
        pct(&mut ts, 0.99),
        pct(&mut tp, 0.99),
        mp / ms
    );
    sqlite.stop();
    postgres.stop();

    // 2. Failover.
    let sim = opsdeck::testops_sim::SimTestOps::start(Default::default())
        .await
        .unwrap();
    let db = db2;
    let exports = root.join("shared-exports");
    let config = format!(
        "[export]\ndir = \"{}\"\nschedule = \"* * * * * *\"\nallow_sub_minute = true\n\
         [testops]\nbase_url = \"{}\"\ntoken = \"sim-api-token\"\nproject_id = 17\n\
         tree_id = 937\npoll_interval = \"500ms\"\n[[testops.groups]]\nname = \"API\"\nid = 101\n\
         [storage]\nurl = {:?}\n",
        exports.display(),
        sim.base_url(),
        db.url
    );
    let pg = opsdeck::storage::PgConfig::new(&db.url, None).unwrap();
    let mut servers = vec![
        Server::start(root, "ha-0", &config),
        Server::start(root, "ha-1", &config),
    ];
    for s in &servers {
        s.wait_up().await;
    }
    let mut failovers = Vec::new();
    for round in 0..ROUNDS {
        // Wait for a leader that has run the schedule.
        let leader = loop {
            let mut found = None;
            for (i, s) in servers.iter().enumerate() {
                if s.health().await.is_some_and(|h| h["leader"] == true)
                    && s.first_run_after(&pg, chrono::DateTime::<Utc>::MIN_UTC)
                        .is_some()
                {
                    found = Some(i);
                }
            }
            if let Some(i) = found {
                break i;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let killed_at = Utc::now();
        servers[leader].kill9();
        let other = 1 - leader;
        let deadline = Instant::now() + Duration::from_secs(60);
        let first = loop {
            if let Some(t) = servers[other].first_run_after(&pg, killed_at) {
                break t;
            }
            assert!(Instant::now() < deadline, "no failover");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let secs = (first - killed_at).num_milliseconds() as f64 / 1e3;
        println!("failover round {}: {secs:.2} s", round + 1);
        failovers.push(secs);
        servers[leader] = Server::start(root, &format!("ha-{}", round + 2), &config);
        servers[leader].wait_up().await;
    }
    println!(
        "failover, kill -9 of the leader to the new leader's first scheduled run: median {:.2} s \
         of {ROUNDS} (min {:.2}, max {:.2})",
        pct(&mut failovers, 0.5),
        pct(&mut failovers, 0.0),
        pct(&mut failovers, 1.0)
    );
    for s in servers {
        s.stop();
    }
}
