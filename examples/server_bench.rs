//! Server benchmarks (numbers quoted in the README), side by side in one run:
//! 1. 20 clients on `/v1/events`: from a ledger change (the event's `at`, stamped when the
//!    server publishes it) to the last of the 20 clients having it: p50 and p99 over 300
//!    changes.
//! 2. `opsdeck release list --json` as a client of the server vs in-process (`--local`),
//!    same ledger of 500 releases (200 made first, 300 by step 1): median wall time of 30
//!    runs each, and the ratio.
//! 3. 1 000 sequential `GET /v1/releases?limit=50`: median and p99.
//!
//! The server idle (RSS, wake-ups) is `scripts/server_idle.sh`.
//!
//! Run: `cargo build --release && cargo run --release --example server_bench`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use opsdeck::client::UnixHttp;
use opsdeck::release::{Actor, Ledger, NewRelease, Status};

const CLIENTS: usize = 20;
const CHANGES: usize = 300;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

fn bin() -> PathBuf {
    // target/release/examples/server_bench -> target/release/opsdeck
    let exe = std::env::current_exe().unwrap();
    let b = exe.parent().unwrap().parent().unwrap().join("opsdeck");
    assert!(b.exists(), "build the binary first: cargo build --release");
    b
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn run() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[releases]\ndeployer = \"command\"\n[[releases.services]]\nname = \"api\"\n\
             [releases.command]\ndeploy = [\"true\"]\n[export]\ndir = \"{}\"\n",
            dir.join("exports").display()
        ),
    )
    .unwrap();
    let data = dir.join("state");
    std::fs::create_dir_all(&data).unwrap();
    {
        let mut l = Ledger::open(&data.join("releases.db")).unwrap();
        let actor = Actor::current();
        for i in 0..200 {
            l.create(
                &NewRelease {
                    service_name: "api".into(),
                    release_tag: format!("v{i}"),
                    status: Some(Status::ManualTesting),
                    ..Default::default()
                },
                &actor,
            )
            .unwrap();
        }
    }
    let socket = dir.join("opsdeck.sock");
    let mut server = Command::new(bin())
        .arg("run")
        .env("OPSDECK_CONFIG", &config)
        .env("OPSDECK_DATA_DIR", &data)
        .env("OPSDECK_SOCKET", &socket)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = UnixHttp::new(socket.clone());
    let t = Instant::now();
    while http
        .get_json::<serde_json::Value>("/v1/health")
        .await
        .is_err()
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    events_latency(&http).await;
    cli_ratio(&config, &data, &socket);
    sequential_gets(&http).await;

    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
}

async fn events_latency(http: &UnixHttp) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, i64, f64)>();
    let mut ready = Vec::new();
    for c in 0..CLIENTS {
        let mut lines = Box::pin(
            http.lines(hyper::Method::GET, "/v1/events", None)
                .await
                .unwrap(),
        );
        let tx = tx.clone();
        let (rtx, rrx) = tokio::sync::oneshot::channel();
        ready.push(rrx);
        tokio::spawn(async move {
            let mut rtx = Some(rtx);
            while let Some(Ok(line)) = lines.next().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                if v["type"] == "hello" {
                    if let Some(r) = rtx.take() {
                        let _ = r.send(());
                    }
                    continue;
                }
                if v["type"] != "release" {
                    continue;
                }
                let at = chrono::DateTime::parse_from_rfc3339(v["at"].as_str().unwrap()).unwrap();
                let lat = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
                    .num_microseconds()
                    .unwrap() as f64
                    / 1000.0;
                let _ = tx.send((c, v["release"]["id"].as_i64().unwrap(), lat));
            }
        });
    }
    for r in ready {
        r.await.unwrap();
    }
    let mut worst = std::collections::HashMap::<i64, (usize, f64)>::new();
    for i in 0..CHANGES {
        let r: serde_json::Value = http
            .post_json(
                "/v1/releases",
                &serde_json::json!({"service_name": "api", "release_tag": format!("e{i}")}),
            )
            .await
            .unwrap();
        let id = r["id"].as_i64().unwrap();
        while worst.get(&id).is_none_or(|w| w.0 < CLIENTS) {
            let (_, rid, lat) = rx.recv().await.unwrap();
            let e = worst.entry(rid).or_insert((0, 0.0));
            e.0 += 1;
            e.1 = e.1.max(lat);
        }
    }
    let mut lats: Vec<f64> = worst.values().map(|w| w.1).collect();
    println!(
        "events: {CLIENTS} clients, {CHANGES} changes: change -> all {CLIENTS} have it: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&mut lats, 0.5),
        pct(&mut lats, 0.99),
        pct(&mut lats, 1.0)
    );
}

fn cli_ratio(config: &Path, data: &Path, socket: &Path) {
    let time = |local: bool| {
        let mut c = Command::new(bin());
        if local {
            c.arg("--local");
        } else {
            c.arg("--server").arg(socket);
        }
        c.args(["release", "list", "--json"])
            .env("OPSDECK_CONFIG", config)
            .env("OPSDECK_DATA_DIR", data)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t = Instant::now();
        assert!(c.status().unwrap().success());
        t.elapsed().as_secs_f64() * 1000.0
    };
    let (mut remote, mut local) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        remote.push(time(false));
        local.push(time(true));
    }
    let (r, l) = (pct(&mut remote, 0.5), pct(&mut local, 0.5));
    println!(
        "release list --json (500 releases): through the server {r:.2} ms, in-process {l:.2} ms (median of 30): {:.2}x",
        r / l
    );
}

async fn sequential_gets(http: &UnixHttp) {
    let mut t = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let s = Instant::now();
        let v: serde_json::Value = http.get_json("/v1/releases?limit=50").await.unwrap();
        assert_eq!(v.as_array().unwrap().len(), 50);
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "1000 sequential GET /v1/releases?limit=50: median {:.3} ms, p99 {:.3} ms",
        pct(&mut t, 0.5),
        pct(&mut t, 0.99)
    );
}
