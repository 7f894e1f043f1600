//! The Releases tab over a real Docker Swarm, as local mode wires it: the engine's events
//! → `ServicesWatch` → `forward_services` → `Event::Services` → `update` → the screen. A
//! service started, changed by hand (drift) and crashing (a failed task's error), each seen
//! on the drawn tab. Skips with the reason when no engine is reachable, unless
//! `OPSDECK_REQUIRE_DOCKER=1`, which CI sets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use opsdeck::config::Config;
use opsdeck::events::{Event, EventRx};
use opsdeck::release::{Actor, AuditKind, Ledger, NewRelease, Status};
use opsdeck::tui::app::{App, update};
use opsdeck::tui::msg::Msg;
use opsdeck::tui::tab::Tab;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

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

const TAGS: [&str; 3] = ["v1", "v2", "crash"];

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
        for tag in TAGS {
            // Tasks release their images a moment after the service goes.
            for _ in 0..20 {
                if docker(&["rmi", "-f", &format!("{}:{tag}", self.repo)])
                    .status
                    .success()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
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

fn render(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| opsdeck::tui::view::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// Feeds the dashboard what arrives until the drawn tab shows what `done` wants.
async fn until(app: &mut App, rx: &mut EventRx, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let screen = render(app);
        if done(&screen) {
            return;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => {
                update(app, Msg::Service(ev));
            }
            Ok(None) => panic!("the feed ended before {what}"),
            Err(_) => panic!("no {what} within 120 s:\n{screen}"),
        }
    }
}

#[test]
fn the_releases_tab_follows_the_engine_live() {
    let Some(left_swarm) = engine_ready() else {
        return;
    };
    let id = std::process::id();
    let fx = Fixture {
        service: format!("opsdeck-tui-{id}"),
        repo: format!("opsdeck-tui-{id}/app"),
        left_swarm,
        root: tempfile::tempdir().unwrap(),
    };
    let dir = fx.root.path();
    import_image(dir, &fx.repo, "v1", "while true; do sleep 1; done");
    import_image(dir, &fx.repo, "v2", "while true; do sleep 1; done");
    import_image(dir, &fx.repo, "crash", "echo boom; exit 3");
    let out = docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &fx.service,
        "--replicas",
        "2",
        "--no-resolve-image",
        &format!("{}:v1", fx.repo),
    ]);
    assert!(
        out.status.success(),
        "docker service create: {}",
        text(&out.stderr)
    );

    // The ledger says v1 was deployed.
    let ledger_path = dir.join("releases.db");
    let mut ledger = Ledger::open(&ledger_path).unwrap();
    let me = Actor::current();
    let release = ledger
        .create(
            &NewRelease {
                service_name: "app".into(),
                release_tag: "v1".into(),
                image: Some(fx.repo.clone()),
                status: Some(Status::ManualTesting),
                ..Default::default()
            },
            &me,
        )
        .unwrap();
    for to in [
        Status::ManualTestPassed,
        Status::Deploying,
        Status::Deployed,
    ] {
        ledger.transition(release.id, to, &me, None, None).unwrap();
    }
    let config = format!(
        "[releases]\ndeployer = \"swarm\"\nledger = \"{}\"\n\n[[releases.services]]\nname = \"app\"\nservice = \"{}\"\nrepository = \"{}\"\n",
        ledger_path.display(),
        fx.service,
        fx.repo
    );
    let cfg = Config::from_parts(None, &config, &|_| None).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let swarm = format!("app ({})", fx.service);
    rt.block_on(async {
        let open_path = ledger_path.clone();
        let watch = opsdeck::release::engine::ServicesWatch::spawn(
            cfg.releases.clone(),
            Arc::new(move || Ledger::open(&open_path).ok()),
            Arc::new(|_, _| {}),
        );
        let (tx, mut rx) = opsdeck::events::channel();
        let cancel = tokio_util::sync::CancellationToken::new();
        let feed = opsdeck::tui::forward_services(watch.subscribe(), tx, cancel.clone());
        let mut app = opsdeck::tui::initial_app(&cfg, &Default::default());
        app.tab = Tab::Releases;
        app.size = (120, 35);
        update(
            &mut app,
            Msg::Service(Event::Releases(ledger.list(None, None).unwrap())),
        );
        assert!(
            render(&app).contains("app  reading the engine…"),
            "{}",
            render(&app)
        );

        until(&mut app, &mut rx, "v1 running on both tasks", |s| {
            s.contains(&format!("{swarm}  running v1  2/2  ✔"))
                && s.contains("✔ 1 running v1")
                && s.contains("✔ 2 running v1")
        })
        .await;

        // Someone updates the service by hand: the engine runs v2, the ledger says v1.
        let out = docker(&[
            "service",
            "update",
            "--detach",
            "--no-resolve-image",
            "--image",
            &format!("{}:v2", fx.repo),
            &fx.service,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        until(&mut app, &mut rx, "the drift line", |s| {
            s.contains(&format!("{swarm}  running v2  2/2  ✔"))
                && s.contains("drift: engine runs v2, ledger says v1")
        })
        .await;
        // Recorded in the audit trail as a change made outside opsdeck, no status changed.
        let audit = ledger.audit(release.id).unwrap();
        let last = audit.last().unwrap();
        assert_eq!(last.kind(), AuditKind::ExternalChange, "{audit:?}");
        assert_eq!(last.to, "deployed");

        // An image that exits 3: the failed task's error and exit code on the tab.
        let out = docker(&[
            "service",
            "update",
            "--detach",
            "--no-resolve-image",
            "--update-failure-action",
            "pause",
            "--update-monitor",
            "2s",
            "--image",
            &format!("{}:crash", fx.repo),
            &fx.service,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        until(&mut app, &mut rx, "the failed task", |s| {
            // (The pane wraps the line after the error: "(exit code 3)" may be split. The
            // engine picks which slot it updates first, so any slot.)
            s.lines()
                .any(|l| l.contains("✖ ") && l.contains(" failed crash"))
                && s.contains("task: non-zero exit (3) (exit")
        })
        .await;

        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), feed)
            .await
            .expect("the feed ends on cancel")
            .unwrap();
    });
}
