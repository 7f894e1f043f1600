//! From a task state change in the engine to the live state the screen draws (issue 10's
//! "< 1 s"): a one-replica service on the local Swarm; its container is killed 15 times,
//! and each time we measure from the kill to `ServicesWatch` publishing the failed task.
//! The dashboard draws `app.releases.services` on the next loop turn; through a server the hop to a
//! client adds the `/v1/events` latency (`server_bench`).
//!
//! Needs a Docker engine (made a single-node swarm for the run if it is not one) and
//! /bin/busybox.
//! Run: `cargo run --release --example services_latency`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opsdeck::release::engine::ServicesWatch;

const ROUNDS: usize = 15;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("opsdeck-latency-{}", std::process::id());
    let image = format!("{name}/app:v1");
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("/bin/busybox");
    let tar = dir.path().join("img.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    docker(&[
        "import",
        "--change",
        r#"CMD ["/bin/busybox", "sleep", "3600"]"#,
        tar.to_str().unwrap(),
        &image,
    ]);
    let joined = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]) != "active";
    if joined {
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    }
    docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &name,
        "--no-resolve-image",
        &image,
    ]);
    let cleanup = scopeguard(&name, &image);

    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[releases]\ndeployer = \"swarm\"\n\n[[releases.services]]\nname = \"{name}\"\n"),
    )
    .unwrap();
    let cfg = opsdeck::config::Config::load(Some(&config), &|_: &str| None).unwrap();
    let ledger = dir.path().join("releases.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ms = rt.block_on(async {
        let watch = ServicesWatch::spawn(
            cfg.releases.clone(),
            Arc::new(move || opsdeck::release::Ledger::open(&ledger).ok()),
            Arc::new(|_, _| {}),
        );
        let mut rx = watch.subscribe();
        let mut ms = Vec::new();
        for _ in 0..ROUNDS {
            // Settled: one task running.
            loop {
                let now = rx.borrow_and_update().clone();
                if now
                    .first()
                    .is_some_and(|s| s.running == 1 && s.desired == 1)
                {
                    break;
                }
                tokio::time::timeout(Duration::from_secs(60), rx.changed())
                    .await
                    .expect("the service never ran")
                    .unwrap();
            }
            let container = docker(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.swarm.service.name={name}"),
            ]);
            let container = container.lines().next().unwrap().to_string();
            let failed_before: Vec<String> = rx.borrow()[0]
                .tasks
                .iter()
                .filter(|t| t.failed())
                .map(|t| t.id.clone())
                .collect();
            let t0 = Instant::now();
            docker(&["kill", &container]);
            loop {
                tokio::time::timeout(Duration::from_secs(30), rx.changed())
                    .await
                    .expect("the watch never saw the kill")
                    .unwrap();
                let now = rx.borrow_and_update().clone();
                let s = &now[0];
                if s.running == 0
                    || s.tasks
                        .iter()
                        .any(|t| t.failed() && !failed_before.contains(&t.id))
                {
                    break;
                }
            }
            ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            watch.poke();
        }
        ms
    });
    drop(cleanup);
    if joined {
        docker(&["swarm", "leave", "--force"]);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "task state change -> live state published, {ROUNDS} container kills: median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        ms[ms.len() / 2],
        ms[ms.len() * 9 / 10],
        ms[ms.len() - 1]
    );
}

/// Removes the service and image when dropped.
fn scopeguard(name: &str, image: &str) -> impl Drop {
    struct G(String, String);
    impl Drop for G {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args(["service", "rm", &self.0])
                .output();
            std::thread::sleep(Duration::from_secs(2));
            let _ = Command::new("docker").args(["rmi", "-f", &self.1]).output();
        }
    }
    G(name.into(), image.into())
}
