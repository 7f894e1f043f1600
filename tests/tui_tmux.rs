//! End to end: the real `opsdeck` binary in tmux against the simulated TestOps, driven with
//! `send-keys` and read with `capture-pane`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
    _state: tempfile::TempDir,
}

impl Tmux {
    /// `None` (with the reason printed) when tmux is missing outside CI; CI must have it.
    fn start(cmd: &str, width: u16, height: u16) -> Option<Tmux> {
        let socket = format!("opsdeck-test-{}-{}", std::process::id(), rand_suffix());
        // The dashboard remembers its tab per user: each session gets its own state dir
        // (a test that sets XDG_STATE_HOME itself overrides this), never the real user's.
        let state = tempfile::tempdir().ok()?;
        let cmd = format!("XDG_STATE_HOME='{}' {cmd}", state.path().display());
        let out = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(&cmd)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmux {
                socket,
                _state: state,
            }),
            other => {
                let why = format!("{other:?}");
                assert!(std::env::var_os("CI").is_none(), "CI must have tmux: {why}");
                eprintln!("skipped: tmux is not available here: {why}");
                None
            }
        }
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    fn send(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "t", keys]);
    }

    fn capture(&self) -> String {
        text(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout)
    }

    fn pane_pid(&self) -> i32 {
        text(
            &self
                .tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"])
                .stdout,
        )
        .trim()
        .parse()
        .unwrap()
    }

    async fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            let screen = self.capture();
            if cond(&screen) {
                return screen;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let log = std::env::var("OPSDECK_TEST_LOG_DIR")
                    .ok()
                    .and_then(|d| std::fs::read_dir(d).ok()?.next()?.ok())
                    .and_then(|e| std::fs::read_to_string(e.path()).ok())
                    .unwrap_or_default();
                panic!("timed out waiting for {what}; screen:\n{screen}\nlog:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_007
}

fn shell_command(ws: &Workspace, tail: &str) -> String {
    format!(
        "env -u OPSDECK_SERVER OPSDECK_CONFIG='{}' OPSDECK_DATA_DIR='{}' OPSDECK_SOCKET='{}/opsdeck.sock' TERM=xterm-256color {}{tail}",
        ws.config.display(),
        ws.data_dir.display(),
        ws.data_dir.display(),
        env!("CARGO_BIN_EXE_opsdeck"),
    )
}

#[tokio::test]
async fn export_all_shows_files_lists_a_copied_file_shows_schedule_and_quits_cleanly() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "");
    let cmd = shell_command(&ws, "; echo OPSDECK-EXIT=$?; sleep 60");
    let Some(tmux) = Tmux::start(&cmd, 140, 32) else {
        return;
    };
    // SAFETY: only read by this test's own failure message.
    unsafe { std::env::set_var("OPSDECK_TEST_LOG_DIR", ws.data_dir.join("logs")) };
    tmux.wait_screen("the dashboard", |s| {
        s.contains("Groups") && s.contains("TestOps ok")
    })
    .await;

    tmux.send("E");
    wait_for(Duration::from_secs(30), "two exports on disk", || {
        exports_only(&ws.export_files()).len() == 2
    })
    .await;
    let files = exports_only(&ws.export_files());
    // The toasts name the files at once; the list follows through the watcher.
    let screen = tmux
        .wait_screen("both files listed", |s| s.contains("Files: 2"))
        .await;
    let listed = |name: &str| {
        screen
            .lines()
            .any(|l| l.starts_with("│20") && l.contains(name))
    };
    assert!(files.iter().all(|f| listed(f)), "{screen}");

    // A file copied in by someone else appears within a second or so (the watcher).
    let outside = "testops_export_17_WEB_2026-11-01_07-00-00.csv";
    std::fs::write(ws.export_dir.join(outside), "allure_id;name\n1;x\n").unwrap();
    tmux.wait_screen("the copied file", |s| {
        s.contains(outside) && s.contains("Files: 3")
    })
    .await;

    tmux.send("2");
    let screen = tmux
        .wait_screen("the Schedules tab", |s| s.contains("Next run (UTC)"))
        .await;
    assert!(
        screen.contains("0 7 * * *") && screen.contains("(in "),
        "{screen}"
    );

    tmux.send("q");
    let screen = tmux
        .wait_screen("a clean exit", |s| s.contains("OPSDECK-EXIT=0"))
        .await;
    // The alternate screen is gone: none of the dashboard is left on the shell's screen.
    assert!(
        !screen.contains("Next run") && !screen.contains("Groups"),
        "{screen}"
    );
}

#[tokio::test]
async fn hangup_during_a_slow_export_leaves_no_temporary_file() {
    let sim = slow_sim(3000, 2).await;
    let ws = Workspace::new(&sim.base_url(), "");
    let cmd = format!("exec {}", shell_command(&ws, ""));
    let Some(tmux) = Tmux::start(&cmd, 100, 30) else {
        return;
    };
    tmux.wait_screen("the dashboard", |s| s.contains("Groups"))
        .await;
    let pid = tmux.pane_pid();
    tmux.send("e");
    wait_for(Duration::from_secs(30), "the temporary download", || {
        ws.export_files()
            .iter()
            .any(|f| f.starts_with(".opsdeck-download-"))
    })
    .await;
    // Closing the session hangs up the terminal, as a dropped SSH connection does.
    tmux.tmux(&["kill-server"]);
    wait_for(Duration::from_secs(20), "opsdeck to exit", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
    let left: Vec<String> = ws
        .export_files()
        .into_iter()
        .filter(|f| !f.starts_with(".opsdeck-scheduler") && !f.starts_with(".opsdeck-paused"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The log was flushed on the way out.
    let logs = std::fs::read_dir(ws.data_dir.join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read_to_string(logs).unwrap();
    assert!(log.contains("dashboard closed"), "{log}");
}

#[tokio::test]
async fn a_release_created_with_the_cli_appears_and_a_then_y_deploys_it() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "");
    let mut cfg = std::fs::read_to_string(&ws.config).unwrap();
    cfg.push_str(
        "\n[releases]\ndeployer = \"command\"\n\n[[releases.services]]\nname = \"api\"\nrepository = \"registry.example.com/api\"\n\n\
         [releases.command]\ndeploy = [\"sh\", \"-c\", \"echo deploying $OPSDECK_IMAGE\"]\n",
    );
    std::fs::write(&ws.config, cfg).unwrap();
    let cmd = shell_command(&ws, "; echo OPSDECK-EXIT=$?; sleep 60");
    let Some(tmux) = Tmux::start(&cmd, 120, 32) else {
        return;
    };
    tmux.wait_screen("the dashboard", |s| s.contains("Groups"))
        .await;
    tmux.send("3");
    tmux.wait_screen("the Releases tab", |s| s.contains("no releases yet"))
        .await;

    let release = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"))
            .arg("release")
            .args(args)
            .env("OPSDECK_CONFIG", &ws.config)
            .env("OPSDECK_DATA_DIR", &ws.data_dir)
            .env("OPSDECK_SOCKET", ws.data_dir.join("opsdeck.sock"))
            .env_remove("OPSDECK_SERVER")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let id = release(&[
        "create",
        "--service",
        "api",
        "--tag",
        "v7.0.1",
        "--status",
        "manual_testing",
    ]);
    let id = id.trim();
    tmux.wait_screen("the new release", |s| {
        s.contains("v7.0.1") && s.contains("manual_testing")
    })
    .await;
    tmux.send("a");
    tmux.wait_screen("the approve dialog", |s| {
        // The approver sees the whole image that will run, not only the tag.
        s.contains("Approve release") && s.contains("new  registry.example.com/api:v7.0.1")
    })
    .await;
    tmux.send("y");
    wait_for(
        Duration::from_secs(30),
        "the ledger to say deployed",
        || release(&["show", id, "--json"]).contains("\"status\": \"deployed\""),
    )
    .await;
    tmux.wait_screen("deployed on screen", |s| {
        s.contains("✔ deployed") && s.contains("v7.0.1")
    })
    .await;
    let log = std::fs::read_to_string(ws.data_dir.join("deployments/api/v7.0.1-prod.log")).unwrap();
    assert!(
        log.contains("deploying registry.example.com/api:v7.0.1"),
        "{log}"
    );
    tmux.send("q");
    tmux.wait_screen("a clean exit", |s| s.contains("OPSDECK-EXIT=0"))
        .await;
}

#[tokio::test]
async fn opsdeck_logs_follows_a_file_and_shows_appended_lines() {
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("app.log");
    std::fs::write(&log, "2026-11-23T10:00:00Z INFO started\n").unwrap();
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[export]\ndir = \"{}\"\n",
            root.path().join("exports").display()
        ),
    )
    .unwrap();
    let cmd = format!(
        "env -u OPSDECK_SERVER OPSDECK_CONFIG='{}' OPSDECK_DATA_DIR='{}' OPSDECK_SOCKET='{}/none.sock' TERM=xterm-256color {} logs '{}'; echo OPSDECK-EXIT=$?; sleep 60",
        config.display(),
        root.path().join("data").display(),
        root.path().display(),
        env!("CARGO_BIN_EXE_opsdeck"),
        log.display()
    );
    let Some(tmux) = Tmux::start(&cmd, 110, 24) else {
        return;
    };
    // No TestOps configured: the dashboard still opens, straight on the Logs tab.
    tmux.wait_screen("the log", |s| {
        s.contains("INFO started") && s.contains("FOLLOW")
    })
    .await;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"2026-11-23T10:00:01Z ERROR payment gateway timeout\n",
    )
    .unwrap();
    tmux.wait_screen("the appended line", |s| {
        s.contains("ERROR payment gateway timeout")
    })
    .await;
    tmux.send("q");
    tmux.wait_screen("a clean exit", |s| s.contains("OPSDECK-EXIT=0"))
        .await;
    assert!(
        !root.path().join("exports").exists(),
        "no export dir is created without TestOps settings"
    );
}

#[path = "support/server.rs"]
mod server;

/// Two dashboards, clients of one server in two tmux sessions: an approval in one shows in
/// the other with who made it, and both show the server and its sessions.
#[tokio::test]
async fn two_dashboards_of_one_server_see_each_others_approvals() {
    let mut s = server::TestServer::new("0.2", "");
    s.start();
    let id = s.create("api", "v1.5.0");
    let dash = |name: &str| {
        format!(
            "env -u OPSDECK_SOCKET OPSDECK_CONFIG='{}' OPSDECK_DATA_DIR='{}/{name}' TERM=xterm-256color {} --server '{}'; echo OPSDECK-EXIT=$?; sleep 60",
            s.config.display(),
            s.dir.display(),
            s.bin.display(),
            s.socket.display()
        )
    };
    let Some(a) = Tmux::start(&dash("a"), 120, 32) else {
        return;
    };
    let Some(b) = Tmux::start(&dash("b"), 120, 32) else {
        return;
    };
    for t in [&a, &b] {
        t.send("3");
        t.wait_screen("the release from the server", |s| {
            s.contains("v1.5.0") && s.contains("manual_testing")
        })
        .await;
        t.wait_screen("the server and both sessions", |s| {
            s.contains("server · 2 sessions")
        })
        .await;
    }
    a.send("a");
    a.wait_screen("the approve dialog", |s| s.contains("Approve release"))
        .await;
    a.send("y");
    b.wait_screen("the other dashboard hears who approved", |s| {
        s.contains("root approved api v1.5.0")
    })
    .await;
    b.wait_screen("deployed in the other dashboard", |s| {
        s.contains("✔ deployed") && s.contains("v1.5.0")
    })
    .await;
    assert_eq!(s.status_of(id), "deployed");
    // The deploy ran in the server: its log is in the server's state dir, none in the
    // dashboards' data dirs.
    assert!(s.data.join("deployments/api/v1.5.0-prod.log").exists());
    assert!(!s.dir.join("a/deployments/api/v1.5.0-prod.log").exists());
    for t in [&a, &b] {
        t.send("q");
        t.wait_screen("a clean exit", |s| s.contains("OPSDECK-EXIT=0"))
            .await;
    }
}

/// A client dashboard shows the server's log sources (here a file only the server is told
/// about), streamed from `/v1/logs`, and new lines as they are written.
#[tokio::test]
async fn a_client_dashboard_follows_the_servers_log_sources() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server-app.log");
    std::fs::write(&log, "2026-11-28T10:00:00Z ERROR disk on fire\n").unwrap();
    let mut s = server::TestServer::new(
        "0.1",
        &format!(
            "[[logs.sources]]\nname = \"app\"\npath = \"{}\"\n",
            log.display()
        ),
    );
    s.start();
    // The client's own config knows nothing of that source.
    let client_cfg = dir.path().join("client.toml");
    std::fs::write(&client_cfg, "").unwrap();
    let cmd = format!(
        "env -u OPSDECK_SOCKET OPSDECK_CONFIG='{}' OPSDECK_DATA_DIR='{}/c' TERM=xterm-256color {} --server '{}' logs app; echo OPSDECK-EXIT=$?; sleep 60",
        client_cfg.display(),
        dir.path().display(),
        s.bin.display(),
        s.socket.display()
    );
    let Some(t) = Tmux::start(&cmd, 120, 30) else {
        return;
    };
    t.wait_screen("the server's log line", |x| x.contains("disk on fire"))
        .await;
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "2026-11-28T10:00:05Z INFO cooled down").unwrap();
    t.wait_screen("a new line from the server", |x| x.contains("cooled down"))
        .await;
    t.send("q");
    t.wait_screen("a clean exit", |x| x.contains("OPSDECK-EXIT=0"))
        .await;
}

/// Issue 10: `c` cancels a deploy waiting in the server's queue and `d` deploys it again,
/// each after its confirm, from a dashboard that is a client of the server.
#[tokio::test]
async fn c_cancels_a_queued_deploy_and_d_deploys_it_again_through_the_server() {
    let mut s = server::TestServer::new("3", "");
    s.start();
    let ids: Vec<i64> = ["v1", "v2", "v3"]
        .iter()
        .map(|t| s.create("api", t))
        .collect();
    let cmd = format!(
        "env -u OPSDECK_SOCKET OPSDECK_CONFIG='{}' OPSDECK_DATA_DIR='{}/dash' TERM=xterm-256color {} --server '{}'; echo OPSDECK-EXIT=$?; sleep 60",
        s.config.display(),
        s.dir.display(),
        s.bin.display(),
        s.socket.display()
    );
    let Some(t) = Tmux::start(&cmd, 120, 32) else {
        return;
    };
    t.send("3");
    t.wait_screen("the releases from the server", |s| {
        s.contains("v3") && s.contains("manual_testing")
    })
    .await;
    for id in &ids {
        let (code, body) = s.curl("POST", &format!("/v1/releases/{id}/approve"), None);
        assert_eq!(code, 202, "{body}");
    }
    // v1 deploys for 3 s, v2 and v3 wait their turn (approved, queued in the server): the
    // rows say what they wait for.
    t.wait_screen("v3 approved and queued", |s| {
        s.lines()
            .any(|l| l.contains("v3") && l.contains("◌ queued after v"))
    })
    .await;
    // The newest in progress is first: v3.
    t.send("g");
    t.send("c");
    t.wait_screen("the cancel dialog", |s| {
        s.contains("Drop the queued deploy of api v3")
    })
    .await;
    t.send("y");
    t.wait_screen("the server's answer", |s| {
        s.contains("queued deploy cancelled; it stays approved")
    })
    .await;
    s.wait_status(ids[0], "deployed");
    s.wait_status(ids[1], "deployed");
    assert_eq!(s.status_of(ids[2]), "manual_test_passed");
    // Deploy it again: d, then y.
    t.send("g");
    t.send("d");
    t.wait_screen("the deploy dialog", |s| {
        s.contains(&format!("Deploy release {}?", ids[2]))
            && s.contains("new  registry.example.com/team/api:v3")
    })
    .await;
    t.send("y");
    s.wait_status(ids[2], "deployed");
    t.send("q");
    t.wait_screen("a clean exit", |s| s.contains("OPSDECK-EXIT=0"))
        .await;
}

/// Issue 13 in a real terminal: `:` runs a command, `--readonly` hides the actions, and the
/// next start opens on the tab the last one left.
#[tokio::test]
async fn the_command_line_readonly_and_the_remembered_tab() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[export]\ndir = \"{}\"\n",
            root.path().join("exports").display()
        ),
    )
    .unwrap();
    let state = root.path().join("state");
    let cmd = |flags: &str| {
        format!(
            "env -u OPSDECK_SERVER OPSDECK_CONFIG='{}' OPSDECK_DATA_DIR='{}' OPSDECK_SOCKET='{}/none.sock' XDG_STATE_HOME='{}' TERM=xterm-256color {} {flags}; echo OPSDECK-EXIT=$?; sleep 60",
            config.display(),
            root.path().join("data").display(),
            root.path().display(),
            state.display(),
            env!("CARGO_BIN_EXE_opsdeck"),
        )
    };
    {
        let Some(tmux) = Tmux::start(&cmd("--readonly"), 100, 24) else {
            return;
        };
        tmux.wait_screen("the Exports tab, read-only", |s| {
            s.contains("Groups") && s.contains("read-only")
        })
        .await;
        tmux.send(":");
        tmux.send("sched");
        tmux.wait_screen("the typed command", |s| s.contains(":sched▏"))
            .await;
        tmux.send("Enter");
        tmux.wait_screen("the Schedules tab", |s| s.contains("Jobs"))
            .await;
        // The actions are hidden: no "r run now" hint on the jobs table.
        let screen = tmux.capture();
        assert!(!screen.contains("r run now"), "{screen}");
        tmux.send("q");
        tmux.wait_screen("a clean exit", |s| s.contains("OPSDECK-EXIT=0"))
            .await;
    }
    let saved = std::fs::read_to_string(state.join("opsdeck/ui.json")).unwrap();
    assert!(saved.contains("\"schedules\""), "{saved}");
    let Some(tmux) = Tmux::start(&cmd(""), 100, 24) else {
        return;
    };
    tmux.wait_screen("the remembered Schedules tab", |s| {
        s.contains("Jobs") && s.contains("r run now") && !s.contains("read-only")
    })
    .await;
    tmux.send("q");
    tmux.wait_screen("a clean exit", |s| s.contains("OPSDECK-EXIT=0"))
        .await;
}

/// A new user's finding: `opsdeck demo --readonly` ignored the flag, so `e` still exported.
#[tokio::test]
async fn the_demo_honours_readonly() {
    let cmd = format!(
        "env -u OPSDECK_SERVER TERM=xterm-256color {} demo --readonly; echo OPSDECK-EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_opsdeck"),
    );
    let Some(tmux) = Tmux::start(&cmd, 120, 35) else {
        return;
    };
    let screen = tmux
        .wait_screen("the demo, read-only", |s| {
            s.contains("DEMO") && s.contains("Groups") && s.contains("read-only")
        })
        .await;
    assert!(!screen.contains("e export"), "{screen}");
    tmux.send("e");
    let screen = tmux
        .wait_screen("the refusal", |s| s.contains("read-only: started with"))
        .await;
    assert!(!screen.contains("saved testops_export"), "{screen}");
    tmux.send("q");
    tmux.wait_screen("a clean exit", |s| s.contains("OPSDECK-EXIT=0"))
        .await;
}
