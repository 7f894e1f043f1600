//! Approve and roll back on a real Docker Swarm: the engine on this machine, made a
//! single-node swarm if needed, with images built locally (no registry) from Debian's
//! busybox-static. Skips with the reason when no engine is reachable, unless
//! `OPSDECK_REQUIRE_DOCKER=1`, which CI sets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI")
}

fn require(ok: bool, why: &str) -> bool {
    if !ok {
        assert!(
            std::env::var("OPSDECK_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "OPSDECK_REQUIRE_DOCKER=1 but {why}"
        );
        eprintln!("skipped: {why}");
    }
    ok
}

/// What the test created, removed on drop (also when it fails).
struct Fixture {
    service: String,
    repo: String,
    left_swarm: bool,
    root: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        docker(&["service", "rm", &self.service]);
        for tag in ["v0", "v1", "v2", "v3", "v4", "bad", "crash"] {
            // Tasks release their images a moment after the service goes.
            for _ in 0..20 {
                if docker(&["rmi", "-f", &format!("{}:{tag}", self.repo)])
                    .status
                    .success()
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        }
        if self.left_swarm {
            docker(&["swarm", "leave", "--force"]);
        }
        let _ = &self.root;
    }
}

/// A root file system holding busybox, imported as `repo:tag` running `cmd`.
fn import_image(dir: &Path, repo: &str, tag: &str, cmd: &str) {
    let rootfs = dir.join(format!("rootfs-{tag}"));
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::fs::write(rootfs.join("version"), tag).unwrap();
    let tar = dir.join(format!("{tag}.tar"));
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let change = format!(r#"CMD ["/bin/busybox", "sh", "-c", "{cmd}"]"#);
    let out = docker(&[
        "import",
        "--change",
        &change,
        tar.to_str().unwrap(),
        &format!("{repo}:{tag}"),
    ]);
    assert!(out.status.success(), "docker import: {}", text(&out.stderr));
}

fn opsdeck(config: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .arg("release")
        .args(args)
        .env("OPSDECK_CONFIG", config)
        .env("OPSDECK_DATA_DIR", data)
        .env("OPSDECK_SOCKET", data.join("none.sock"))
        .env_remove("OPSDECK_SERVER")
        .output()
        .unwrap()
}

fn service_image(service: &str) -> String {
    let out = docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        service,
    ]);
    text(&out.stdout)
        .trim()
        .split('@')
        .next()
        .unwrap_or("")
        .to_string()
}

/// The tests share the engine's swarm state (init, leave): one at a time.
static ENGINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Checks the engine and makes it a swarm. `None` (after saying why) when the test must
/// skip; `Some(true)` when this test initialised the swarm and must leave it.
fn engine_ready() -> Option<bool> {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output();
    let Ok(info) = info else {
        require(false, "the docker CLI is not installed");
        return None;
    };
    if !require(
        info.status.success(),
        &format!(
            "no Docker engine is reachable: {}",
            text(&info.stderr).trim()
        ),
    ) {
        return None;
    }
    if !require(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing (apt-get install busybox-static)",
    ) {
        return None;
    }
    if text(&info.stdout).trim() != "active" {
        let out = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(
            out.status.success(),
            "the engine refuses swarm mode: {}",
            text(&out.stderr)
        );
        return Some(true);
    }
    Some(false)
}

#[test]
fn a_service_log_streams_into_the_log_tailer() {
    let _one = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(left_swarm) = engine_ready() else {
        return;
    };
    let id = std::process::id();
    let fx = Fixture {
        service: format!("opsdeck-logs-{id}"),
        repo: format!("opsdeck-logs-{id}/app"),
        left_swarm,
        root: tempfile::tempdir().unwrap(),
    };
    import_image(
        fx.root.path(),
        &fx.repo,
        "v1",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    );
    let out = docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &fx.service,
        "--no-resolve-image",
        &format!("{}:v1", fx.repo),
    ]);
    assert!(
        out.status.success(),
        "docker service create: {}",
        text(&out.stderr)
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let seen = rt.block_on(async {
        let (tx, mut rx) = opsdeck::logs::service::channel();
        let cancel = tokio_util::sync::CancellationToken::new();
        let source = opsdeck::logs::LogSource {
            name: "svc".into(),
            kind: opsdeck::logs::SourceKind::Service(fx.service.clone()),
        };
        let (_h, task) = opsdeck::logs::service::spawn(vec![source], tx, cancel.clone());
        let mut seen: Vec<opsdeck::logs::LogLine> = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while !seen.iter().any(|l| l.text.contains("tick 5")) {
            let ev = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("no service log within 60 s");
            if let Some(opsdeck::logs::LogEvent::Tail {
                event: opsdeck::logs::TailEvent::Lines(l),
                ..
            }) = ev
            {
                seen.extend(l);
            }
        }
        cancel.cancel();
        let _ = task.await;
        seen
    });
    let ticks: Vec<&opsdeck::logs::LogLine> =
        seen.iter().filter(|l| l.text.contains("tick ")).collect();
    assert!(ticks.len() >= 6);
    // The engine's timestamps are parsed, and lines come in order.
    assert!(ticks.iter().all(|l| l.ts.is_some()), "{:?}", ticks[0]);
    assert!(ticks.windows(2).all(|w| w[0].ts <= w[1].ts));
    assert!(
        ticks[0].without_ts().starts_with("tick 0"),
        "{:?}",
        ticks[0].text
    );
}

#[test]
fn approve_converges_rollback_returns_and_a_crashing_image_fails() {
    let _one = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(left_swarm) = engine_ready() else {
        return;
    };
    let id = std::process::id();
    let fx = Fixture {
        service: format!("opsdeck-test-{id}"),
        repo: format!("opsdeck-test-{id}/app"),
        left_swarm,
        root: tempfile::tempdir().unwrap(),
    };
    let dir: PathBuf = fx.root.path().to_path_buf();
    import_image(&dir, &fx.repo, "v1", "sleep 3600");
    import_image(&dir, &fx.repo, "v2", "sleep 3600");
    import_image(&dir, &fx.repo, "bad", "exit 1");
    // v0 ran before opsdeck: no release ever deployed it, but its image is on the manager.
    import_image(&dir, &fx.repo, "v0", "sleep 3600");
    import_image(&dir, &fx.repo, "v3", "sleep 3600");
    import_image(&dir, &fx.repo, "v4", "sleep 3600");
    import_image(&dir, &fx.repo, "crash", "exit 1");
    let out = docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &fx.service,
        "--replicas",
        "2",
        "--no-resolve-image",
        "--update-parallelism",
        "2",
        "--update-monitor",
        "3s",
        "--update-failure-action",
        "pause",
        &format!("{}:v1", fx.repo),
    ]);
    assert!(
        out.status.success(),
        "docker service create: {}",
        text(&out.stderr)
    );

    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[releases]\ndeployer = \"swarm\"\ndeploy_timeout = \"90s\"\n\n[[releases.services]]\nname = \"app\"\nservice = \"{}\"\nrepository = \"{}\"\n",
            fx.service, fx.repo
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let create = |tag: &str| -> String {
        let out = opsdeck(
            &config,
            &data,
            &[
                "create",
                "--service",
                "app",
                "--tag",
                tag,
                "--status",
                "manual_testing",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let status = |id: &str| -> String {
        let out = opsdeck(&config, &data, &["show", id, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["release"]["status"].as_str().unwrap().to_string()
    };

    // v1 is what runs; record it as deployed so it is the rollback target.
    let v1 = create("v1");
    let out = opsdeck(&config, &data, &["approve", &v1]);
    assert!(out.status.success(), "approve v1: {}", text(&out.stderr));

    let v2 = create("v2");
    let out = opsdeck(&config, &data, &["approve", &v2]);
    assert!(out.status.success(), "approve v2: {}", text(&out.stderr));
    assert_eq!(status(&v2), "deployed");
    assert_eq!(service_image(&fx.service), format!("{}:v2", fx.repo));

    let out = opsdeck(&config, &data, &["rollback", &v2]);
    assert!(out.status.success(), "rollback: {}", text(&out.stderr));
    assert_eq!(status(&v2), "rollback_done");
    assert_eq!(service_image(&fx.service), format!("{}:v1", fx.repo));

    // Rolling back to a tag no release deployed: the engine knows it, so no --force; a tag
    // nobody knows needs --force.
    let v3 = create("v3");
    let out = opsdeck(&config, &data, &["approve", &v3]);
    assert!(out.status.success(), "approve v3: {}", text(&out.stderr));
    // The picker's list (`release targets`): the ledger's deployed tags first, then what
    // only the engine knows, each with when it last ran.
    let targets = |id: &str| -> Vec<serde_json::Value> {
        let out = opsdeck(&config, &data, &["targets", id, "--json"]);
        assert!(out.status.success(), "targets: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let find = |list: &[serde_json::Value], tag: &str| -> serde_json::Value {
        list.iter()
            .find(|t| t["tag"] == tag)
            .cloned()
            .unwrap_or_else(|| panic!("{tag} not among {list:?}"))
    };
    let t = targets(&v3);
    let head: Vec<(&str, &str)> = t
        .iter()
        .take(2)
        .map(|t| (t["tag"].as_str().unwrap(), t["origin"].as_str().unwrap()))
        .collect();
    assert_eq!(head, [("v2", "ledger"), ("v1", "ledger")], "{t:?}");
    assert!(find(&t, "v1")["last_ran"].is_string(), "{t:?}");
    let v0 = find(&t, "v0");
    assert_eq!(
        (
            v0["origin"].as_str(),
            v0["last_ran"].is_null(),
            v0["running"].as_bool()
        ),
        (Some("image"), true, Some(false)),
        "v0 is only an image on the manager: {t:?}"
    );
    assert!(!t.iter().any(|x| x["tag"] == "v3"), "its own tag: {t:?}");
    let out = opsdeck(&config, &data, &["rollback", &v3, "--to", "v-never"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("v0"),
        "the known tags include the engine's: {}",
        text(&out.stderr)
    );
    let out = opsdeck(&config, &data, &["rollback", &v3, "--to", "v0"]);
    assert!(
        out.status.success(),
        "rollback to v0: {}",
        text(&out.stderr)
    );
    assert_eq!(status(&v3), "rollback_done");
    assert_eq!(service_image(&fx.service), format!("{}:v0", fx.repo));
    // Now the engine's spec and tasks run v0.
    let v0 = find(&targets(&v3), "v0");
    assert_eq!(
        (v0["origin"].as_str(), v0["running"].as_bool()),
        (Some("engine_spec"), Some(true)),
        "{v0:?}"
    );
    assert!(v0["last_ran"].is_string(), "{v0:?}");

    // The engine unreachable at approval: nothing starts, the release stays approved, and
    // `release deploy` deploys it once the engine answers.
    let v4 = create("v4");
    let out = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(["release", "approve", &v4])
        .env("OPSDECK_CONFIG", &config)
        .env("OPSDECK_DATA_DIR", &data)
        .env("OPSDECK_SOCKET", data.join("none.sock"))
        .env_remove("OPSDECK_SERVER")
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no-engine.sock", dir.display()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stays approved"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(status(&v4), "manual_test_passed");
    let out = opsdeck(&config, &data, &["deploy", &v4]);
    assert!(out.status.success(), "deploy v4: {}", text(&out.stderr));
    assert_eq!(status(&v4), "deployed");
    assert_eq!(service_image(&fx.service), format!("{}:v4", fx.repo));

    // A crashing image: the update fails, the service goes back on v4 at 2/2, and the
    // release says why in the engine's words, with the exit code.
    let bad = create("bad");
    let out = opsdeck(&config, &data, &["approve", &bad]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a crashing image must fail: {}",
        text(&out.stderr)
    );
    assert_eq!(status(&bad), "production_failed");
    assert_eq!(service_image(&fx.service), format!("{}:v4", fx.repo));
    let live = services(&config, &data);
    assert_eq!(
        (
            live["tag"].as_str(),
            live["running"].as_u64(),
            live["desired"].as_u64()
        ),
        (Some("v4"), Some(2), Some(2)),
        "{live}"
    );
    let audit = audit_of(&config, &data, &bad);
    let last = audit.last().unwrap()["note"].as_str().unwrap().to_string();
    assert!(
        last.contains("non-zero exit (1)") && last.contains("exit code 1"),
        "the task's error and exit code: {last}"
    );
    assert!(last.contains("rolled back to v4"), "{last}");
    assert!(
        audit.iter().any(|a| a["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("automatic_rollback: put"))),
        "the automatic rollback has its own entry: {audit:?}"
    );

    // on_failure = "pause": the service stays as the engine left it and the reason says
    // what to do.
    let paused_config = dir.join("paused.toml");
    std::fs::write(
        &paused_config,
        std::fs::read_to_string(&config).unwrap() + "on_failure = \"pause\"\n",
    )
    .unwrap();
    let crash = create("crash");
    let out = opsdeck(&paused_config, &data, &["approve", &crash]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(status(&crash), "production_failed");
    assert_eq!(service_image(&fx.service), format!("{}:crash", fx.repo));
    let note = audit_of(&config, &data, &crash).last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("on_failure = \"pause\"")
            && note.contains(&format!("release rollback {crash}")),
        "{note}"
    );
    assert_eq!(services(&config, &data)["update_state"], "paused");
    let out = opsdeck(&config, &data, &["rollback", &crash, "--to", "v4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(service_image(&fx.service), format!("{}:v4", fx.repo));

    // A hand-made update: drift shown and recorded once, no status changed.
    let out = docker(&[
        "service",
        "update",
        "--detach=false",
        "--quiet",
        "--no-resolve-image",
        "--image",
        &format!("{}:v2", fx.repo),
        &fx.service,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let live = services(&config, &data);
    assert_eq!(live["drift"]["engine_tag"], "v2", "{live}");
    assert_eq!(live["drift"]["ledger_tag"], "v4", "{live}");
    services(&config, &data);
    let audit = audit_of(&config, &data, &crash);
    let drifts: Vec<_> = audit
        .iter()
        .filter(|a| {
            a["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("external_change:"))
        })
        .collect();
    assert_eq!(drifts.len(), 1, "recorded once: {audit:?}");
    assert_eq!(status(&crash), "rollback_done");

    // A health gate that never passes: rolled back to what ran (v2), the reason says so.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                use std::io::{Read, Write};
                let mut s = s;
                let _ = s.read(&mut [0u8; 1024]);
                let _ = s.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        port
    };
    let gated = dir.join("gated.toml");
    std::fs::write(
        &gated,
        std::fs::read_to_string(&config).unwrap()
            + &format!(
                "health_url = \"http://127.0.0.1:{port}/health\"\nhealth_retries = 2\nhealth_timeout = \"3s\"\n"
            ),
    )
    .unwrap();
    let v3b = create("v3");
    let out = opsdeck(&gated, &data, &["approve", &v3b]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let note = audit_of(&config, &data, &v3b).last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("health check failed")
            && note.contains("HTTP 503")
            && note.contains("rolled back to v2"),
        "{note}"
    );
    assert_eq!(service_image(&fx.service), format!("{}:v2", fx.repo));

    // The engine rolls back on its own (`--update-failure-action rollback`): opsdeck waits
    // for it instead of asking again (which would swap back to the crashing spec).
    let out = docker(&[
        "service",
        "update",
        "--detach=false",
        "--quiet",
        "--update-failure-action",
        "rollback",
        &fx.service,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let crash2 = create("crash");
    let out = opsdeck(&config, &data, &["approve", &crash2]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let note = audit_of(&config, &data, &crash2).last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("rolled back to v2") && note.contains("exit code 1"),
        "{note}"
    );
    assert_eq!(service_image(&fx.service), format!("{}:v2", fx.repo));
    assert_eq!(services(&config, &data)["running"], 2);

    // An image nobody has: nothing starts, the release stays approved.
    let ghost = create("v-ghost");
    let out = opsdeck(&config, &data, &["approve", &ghost]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stays approved"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(status(&ghost), "manual_test_passed");
    let last = audit_of(&config, &data, &ghost).last().unwrap().clone();
    assert!(
        last["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("not_deployed: image") && n.contains("v-ghost")),
        "the reason is in the audit: {last}"
    );
    assert_eq!(service_image(&fx.service), format!("{}:v2", fx.repo));
}

/// `opsdeck services --json`'s only service.
fn services(config: &Path, data: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(["services", "--json"])
        .env("OPSDECK_CONFIG", config)
        .env("OPSDECK_DATA_DIR", data)
        .env("OPSDECK_SOCKET", data.join("none.sock"))
        .env_remove("OPSDECK_SERVER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["services"][0].clone()
}

fn audit_of(config: &Path, data: &Path, id: &str) -> Vec<serde_json::Value> {
    let show = opsdeck(config, data, &["show", id, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    v["audit"].as_array().unwrap().clone()
}

#[path = "support/server.rs"]
mod server;

/// The server runs deploys itself: killed with SIGKILL in the middle of one, it settles the
/// release against the engine when it starts again.
#[test]
fn a_server_killed_mid_deploy_settles_the_release_when_it_starts_again() {
    let _one = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(left_swarm) = engine_ready() else {
        return;
    };
    let id = std::process::id();
    let fx = Fixture {
        service: format!("opsdeck-srv-{id}"),
        repo: format!("opsdeck-srv-{id}/app"),
        left_swarm,
        root: tempfile::tempdir().unwrap(),
    };
    let dir: PathBuf = fx.root.path().to_path_buf();
    import_image(&dir, &fx.repo, "v1", "sleep 3600");
    import_image(&dir, &fx.repo, "v2", "sleep 3600");
    import_image(&dir, &fx.repo, "bad", "exit 1");
    // A slow rollout (monitor 4 s per task, 2 replicas one at a time): time to kill it.
    let out = docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &fx.service,
        "--replicas",
        "2",
        "--no-resolve-image",
        "--update-parallelism",
        "1",
        "--update-monitor",
        "4s",
        "--update-failure-action",
        "pause",
        &format!("{}:v1", fx.repo),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut s = server::TestServer::new("0", "");
    std::fs::write(
        &s.config,
        format!(
            "[releases]\ndeployer = \"swarm\"\ndeploy_timeout = \"120s\"\n\n[[releases.services]]\nname = \"app\"\nservice = \"{}\"\nrepository = \"{}\"\n",
            fx.service, fx.repo
        ),
    )
    .unwrap();
    s.start();
    let rel = s.create("app", "v2");
    let (code, body) = s.curl("POST", &format!("/v1/releases/{rel}/approve"), None);
    assert_eq!(code, 202, "{body}");
    s.wait_status(rel, "deploying");
    // The engine has started rolling out v2; the server dies without any clean-up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while service_image(&fx.service) != format!("{}:v2", fx.repo) {
        assert!(
            std::time::Instant::now() < deadline,
            "the update never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.kill9();
    s.start();
    s.wait_status(rel, "deployed");
    assert_eq!(service_image(&fx.service), format!("{}:v2", fx.repo));
    let audit = s.json(&format!("/v1/releases/{rel}"))["audit"].clone();
    let last = audit.as_array().unwrap().last().unwrap().clone();
    assert!(
        last["note"]
            .as_str()
            .unwrap_or("")
            .starts_with("reconciled"),
        "{last}"
    );

    // Killed while a crashing image rolls out: at start the failure policy still applies,
    // so the service is not left down.
    let bad = s.create("app", "bad");
    let (code, body) = s.curl("POST", &format!("/v1/releases/{bad}/approve"), None);
    assert_eq!(code, 202, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while service_image(&fx.service) != format!("{}:bad", fx.repo) {
        assert!(
            std::time::Instant::now() < deadline,
            "the update never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.kill9();
    s.start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while s.status_of(bad) != "production_failed" {
        assert!(
            std::time::Instant::now() < deadline,
            "never settled: {}",
            s.status_of(bad)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(service_image(&fx.service), format!("{}:v2", fx.repo));
    let audit = s.json(&format!("/v1/releases/{bad}"))["audit"].clone();
    let notes: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["note"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("automatic_rollback: put") && n.contains("back on v2")),
        "{notes:?}"
    );
    assert!(
        notes.last().unwrap().contains("rolled back to v2"),
        "{notes:?}"
    );
}

/// Through the server: two approvals of one service run one after the other (the second
/// says it is queued), a running deploy cancelled puts the service back, and the live state
/// reaches `/v1/services` and the event stream.
#[test]
fn approvals_of_one_service_queue_and_a_cancelled_deploy_rolls_back() {
    let _one = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(left_swarm) = engine_ready() else {
        return;
    };
    let id = std::process::id();
    let fx = Fixture {
        service: format!("opsdeck-q-{id}"),
        repo: format!("opsdeck-q-{id}/app"),
        left_swarm,
        root: tempfile::tempdir().unwrap(),
    };
    let dir: PathBuf = fx.root.path().to_path_buf();
    for tag in ["v1", "v2", "v3", "v4"] {
        import_image(&dir, &fx.repo, tag, "sleep 3600");
    }
    let out = docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &fx.service,
        "--replicas",
        "2",
        "--no-resolve-image",
        "--update-parallelism",
        "1",
        "--update-monitor",
        "3s",
        "--update-failure-action",
        "pause",
        &format!("{}:v1", fx.repo),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut s = server::TestServer::new("0", "");
    let paged = dir.join("paged.jsonl");
    std::fs::write(
        &s.config,
        format!(
            "[releases]\ndeployer = \"swarm\"\ndeploy_timeout = \"120s\"\n\n[[releases.services]]\nname = \"app\"\nservice = \"{}\"\nrepository = \"{}\"\n\n[[notify]]\nkind = \"command\"\nargv = [\"sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\nevents = [\"rollback_automatic\", \"drift_found\"]\n",
            fx.service,
            fx.repo,
            paged.display(),
            paged.display()
        ),
    )
    .unwrap();
    s.start();
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let (mut events, rx) = s.events();
    let v2 = s.create("app", "v2");
    let v3 = s.create("app", "v3");
    for rel in [v2, v3] {
        let (code, body) = s.curl("POST", &format!("/v1/releases/{rel}/approve"), None);
        assert_eq!(code, 202, "{body}");
    }
    // Every dashboard learns what waits (a sticky `work` event), then the line.
    server::expect_event(&rx, "work: v3 queued behind v2", |v| {
        v["type"] == "work"
            && v["work"].as_array().is_some_and(|w| {
                w.iter().any(|w| {
                    w["id"] == v3
                        && w["queued"] == true
                        && w["behind"] == format!("v2 (release {v2})").as_str()
                })
            })
    });
    server::expect_event(&rx, "v3 queued behind v2", |v| {
        v["type"] == "deploy_progress"
            && v["id"] == v3
            && v["line"]
                .as_str()
                .is_some_and(|l| l.contains(&format!("queued behind v2 (release {v2})")))
    });
    wait("v3 deployed", &|| s.status_of(v3) == "deployed");
    assert_eq!(s.status_of(v2), "deployed");
    let at = |rel: i64, to: &str| -> String {
        s.json(&format!("/v1/releases/{rel}"))["audit"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["to"] == to)
            .map(|a| a["at"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        at(v2, "deployed") <= at(v3, "deploying"),
        "v3 started after v2 ended"
    );
    assert_eq!(service_image(&fx.service), format!("{}:v3", fx.repo));
    // The live state: from the engine, through the server.
    wait("the service line shows v3 at 2/2", &|| {
        let v = s.json("/v1/services");
        v["services"][0]["tag"] == "v3" && v["services"][0]["running"] == 2
    });
    server::expect_event(&rx, "a services event with v3", |v| {
        v["type"] == "services" && v["services"][0]["tag"] == "v3"
    });

    // Cancelling a running deploy rolls the service back to v3.
    let v4 = s.create("app", "v4");
    let (code, body) = s.curl("POST", &format!("/v1/releases/{v4}/approve"), None);
    assert_eq!(code, 202, "{body}");
    wait("v4 rolling out", &|| {
        service_image(&fx.service) == format!("{}:v4", fx.repo)
    });
    let (code, body) = s.curl("POST", &format!("/v1/releases/{v4}/cancel"), None);
    assert_eq!(code, 200, "{body}");
    wait("v4 ends", &|| s.status_of(v4) == "production_failed");
    let audit = s.json(&format!("/v1/releases/{v4}"))["audit"].clone();
    let note = audit.as_array().unwrap().last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("cancelled") && note.contains("rolled back to v3"),
        "{note}"
    );
    assert_eq!(service_image(&fx.service), format!("{}:v3", fx.repo));

    // A hand-made update: the server's watch sees it, records it and notifies.
    let out = docker(&[
        "service",
        "update",
        "--detach=false",
        "--quiet",
        "--no-resolve-image",
        "--image",
        &format!("{}:v1", fx.repo),
        &fx.service,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sent = |kind: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(&paged)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["kind"] == kind)
            .collect()
    };
    wait("drift notified", &|| !sent("drift_found").is_empty());
    wait("drift on the service line", &|| {
        s.json("/v1/services")["services"][0]["drift"]["engine_tag"] == "v1"
    });
    let drift = sent("drift_found");
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(
        drift[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("engine runs v1, ledger says v3")),
        "{drift:?}"
    );
    let back = sent("rollback_automatic");
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0]["release_id"], v4);
    let _ = events.kill();
    let _ = events.wait();
}
