//! Who owns opsdeck's files (issue 9, point 3): the server's state dir is 0700 and its files
//! 0600 and its own; nothing is opened through a symlink another user could plant (the
//! scheduler's lock and state left the shared export dir); exports are 0640 with
//! `export.group`, readable by its members and nobody else. The tests with real users need root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/server.rs"]
mod server;
mod support;
#[path = "support/users.rs"]
mod users;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::{SimOptions, SimTestOps, Workspace, exports_only, text};
use tokio::io::AsyncReadExt;
use users::sh;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Reads a child's stderr until it contains `needle`; the pipe stays open after.
async fn stderr_until(child: &mut tokio::process::Child, needle: &str) -> String {
    let stderr = child.stderr.as_mut().expect("stderr is piped");
    let (mut err, mut buf) = (String::new(), [0u8; 4096]);
    while !err.contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(20), stderr.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no `{needle}` in: {err}"))
            .unwrap();
        assert!(n > 0, "opsdeck exited early: {err}");
        err.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    err
}

#[tokio::test]
async fn a_symlink_planted_in_the_export_dir_is_never_written_through() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "");
    std::fs::create_dir_all(&ws.export_dir).unwrap();
    // Another user's file, and links to it where the old build kept its lock and state.
    let victim = ws.root.path().join("bashrc");
    std::fs::write(&victim, "alias ll='ls -l'\n").unwrap();
    for name in [
        ".opsdeck-scheduler.lock",
        ".opsdeck-scheduler.json",
        ".opsdeck-paused.json",
    ] {
        std::os::unix::fs::symlink(&victim, ws.export_dir.join(name)).unwrap();
    }
    let mut run = ws
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    stderr_until(&mut run, "next run at").await;
    let pid = run.id().unwrap() as i32;
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(run.wait().await.unwrap().success());

    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "alias ll='ls -l'\n"
    );
    // The leader's lock and state are in the state dir, the owner's alone.
    for name in ["scheduler.lock", "scheduler.json"] {
        assert_eq!(mode(&ws.data_dir.join(name)) & 0o077, 0, "{name}");
    }
}

#[test]
fn the_ledger_and_history_are_0600_with_their_wal_and_shm_whatever_the_umask() {
    // SAFETY: umask is process-wide; the files below are created while it is 022, as an
    // ordinary login shell has it. Other tests here only start processes meanwhile.
    let old = unsafe { libc::umask(0o022) };
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("state").join("releases.db");
    let mut ledger = opsdeck::release::Ledger::open(&ledger_path).unwrap();
    ledger
        .create(
            &opsdeck::release::NewRelease {
                service_name: "api".into(),
                release_tag: "v1".into(),
                ..Default::default()
            },
            &opsdeck::release::Actor::current(),
        )
        .unwrap();
    let history_path = dir.path().join("state").join("history.db");
    let history = opsdeck::export::RunHistory::open(&history_path).unwrap();
    history.start_run("export", "manual", None).unwrap();
    unsafe { libc::umask(old) };
    // While both are open, so SQLite's side files exist.
    for db in [&ledger_path, &history_path] {
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    assert_eq!(mode(&dir.path().join("state")), 0o700);
    drop((ledger, history));
}

#[test]
fn an_unknown_export_group_is_a_config_error_naming_key_file_and_line() {
    let ws = Workspace::new("http://127.0.0.1:9", "group = \"odk_no_such_group\"");
    let text_cfg = std::fs::read_to_string(&ws.config).unwrap();
    let line = text_cfg
        .lines()
        .position(|l| l.starts_with("group ="))
        .unwrap()
        + 1;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"))
        .args(["--local", "export"])
        .env("OPSDECK_CONFIG", &ws.config)
        .env("OPSDECK_DATA_DIR", &ws.data_dir)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:{line}: invalid value for `export.group`",
            ws.config.display()
        )) && err.contains("no group `odk_no_such_group`"),
        "{err}"
    );
}

/// A server (run as `odk_srv` when root) whose scheduler runs: TestOps is configured, on a
/// port where nothing answers.
fn scheduling_server() -> (server::TestServer, u32) {
    let testops = r#"
[testops]
base_url = "http://127.0.0.1:9"
token = "unused-token"
project_id = 1
tree_id = 1

[[testops.groups]]
name = "API"
id = 1
"#;
    let mut s = server::TestServer::new("0.1", testops);
    // A state dir an admin made with the usual 0755: the server makes it its own.
    std::fs::create_dir_all(&s.data).unwrap();
    chmod(&s.data, 0o755);
    let uid = if nix::unistd::geteuid().is_root() {
        users::ensure(&[], &[("odk_srv", "")]);
        chmod(s.root.path(), 0o755);
        s.bin = users::runnable_copy_of_opsdeck(&s.dir);
        for d in [&s.data, &s.dir.join("run"), &s.dir.join("exports")] {
            std::fs::create_dir_all(d).unwrap();
            sh(&["chown", "odk_srv", d.to_str().unwrap()]);
        }
        sh(&["chown", "odk_srv", s.config.to_str().unwrap()]);
        chmod(&s.dir.join("run"), 0o755);
        s.run_as = Some("odk_srv".into());
        nix::unistd::User::from_name("odk_srv")
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    } else {
        eprintln!("not root: the server runs as this user, not as odk_srv");
        nix::unistd::geteuid().as_raw()
    };
    s.start();
    (s, uid)
}

#[test]
fn the_servers_state_dir_is_0700_and_its_files_0600_and_its_own() {
    let (s, uid) = scheduling_server();
    let id = s.create("api", "v1.0.0");
    s.ok(&["release", "approve", &id.to_string()]);
    s.wait_status(id, "deployed");
    let must = [
        "releases.db",
        "releases.db-wal",
        "releases.db-shm",
        "history.db",
        "scheduler.lock",
        "scheduler.json",
        "logs",
        "deployments",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !must.iter().all(|m| s.data.join(m).exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "missing in the state dir: {:?}",
            must.iter()
                .filter(|m| !s.data.join(m).exists())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Everything, while the server runs (SQLite's side files exist only then).
    let mut stack = vec![s.data.clone()];
    let mut files = 0;
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(meta.uid(), uid, "{} is not the server's", p.display());
        if meta.is_dir() {
            assert_eq!(meta.mode() & 0o777, 0o700, "{}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert!(meta.is_file(), "{} is not a plain file", p.display());
            assert_eq!(
                meta.mode() & 0o077,
                0,
                "{} mode {:o}",
                p.display(),
                meta.mode()
            );
            files += 1;
        }
    }
    // Ledger and history (with side files), lock, state, a log, a deploy log and its lock.
    assert!(files >= 10, "only {files} files");
    let exports = s.dir.join("exports");
    assert!(
        !support::list(&exports)
            .iter()
            .any(|f| f.starts_with(".opsdeck-")),
        "{:?}",
        support::list(&exports)
    );
}

#[tokio::test]
async fn exports_are_0640_with_export_group_and_readable_by_its_members_only() {
    if !users::root("the export group test") {
        return;
    }
    users::ensure(
        &["odk_team", "odk_others"],
        &[
            ("odk_exporter", "odk_team"),
            ("odk_carol", "odk_team"),
            ("odk_mallory", ""),
        ],
    );
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "group = \"odk_team\"");
    chmod(ws.root.path(), 0o755);
    let bin = users::runnable_copy_of_opsdeck(ws.root.path());
    for d in [&ws.export_dir, &ws.data_dir] {
        std::fs::create_dir_all(d).unwrap();
        sh(&["chown", "odk_exporter", d.to_str().unwrap()]);
    }
    // The dir lets anyone in: the file's own mode must keep outsiders out.
    chmod(&ws.export_dir, 0o755);
    sh(&["chown", "odk_exporter", ws.config.to_str().unwrap()]);
    let export = || {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", "odk_exporter", "--"])
            .arg(&bin)
            .args(["--local", "export", "--group", "API"])
            .env("OPSDECK_CONFIG", &ws.config)
            .env("OPSDECK_DATA_DIR", &ws.data_dir)
            .env_remove("TESTOPS_TOKEN")
            .env_remove("EXPORT_PATH")
            .stdin(Stdio::null());
        c
    };
    let out = export().output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = PathBuf::from(text(&out.stdout).trim());
    let meta = std::fs::metadata(&path).unwrap();
    let team = nix::unistd::Group::from_name("odk_team").unwrap().unwrap();
    let exporter = nix::unistd::User::from_name("odk_exporter")
        .unwrap()
        .unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(
        (meta.uid(), meta.gid()),
        (exporter.uid.as_raw(), team.gid.as_raw())
    );
    let cat = |user: &str| {
        std::process::Command::new("runuser")
            .args(["-u", user, "--", "cat"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let carol = cat("odk_carol");
    assert!(carol.status.success(), "{}", text(&carol.stderr));
    assert_eq!(carol.stdout, std::fs::read(&path).unwrap());
    assert!(!cat("odk_mallory").status.success());

    // A group the exporter is not in: refused before any download, naming the key.
    let cfg = std::fs::read_to_string(&ws.config).unwrap();
    std::fs::write(&ws.config, cfg.replace("\"odk_team\"", "\"odk_others\"")).unwrap();
    let before = exports_only(&ws.export_files());
    let out = export().output().await.unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("export.group `odk_others`") && err.contains("member"),
        "{err}"
    );
    assert_eq!(exports_only(&ws.export_files()), before);
}

#[test]
fn opening_the_ledger_again_in_a_process_keeps_its_watcher_seeing_other_processes() {
    // POSIX locks belong to the process: closing any descriptor of the database file drops the
    // locks SQLite holds through its own. Another process then thinks it is alone, checkpoints
    // and deletes the WAL, and this process's open connection stops seeing changes (the
    // dashboard's release list froze after a deploy).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releases.db");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[releases]\nledger = {:?}\n\n[[releases.services]]\nname = \"api\"\n",
            path.display().to_string()
        ),
    )
    .unwrap();
    let watcher = opsdeck::release::Ledger::open(&path).unwrap();
    for n in 1..=5 {
        let before = watcher.data_version().unwrap();
        // Another part of this process (an action, a detail view) opens the ledger too.
        drop(opsdeck::release::Ledger::open(&path).unwrap());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"))
            .args(["--local", "release", "create", "--service", "api", "--tag"])
            .arg(format!("v{n}"))
            .env("OPSDECK_CONFIG", &config)
            .env("OPSDECK_DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_ne!(watcher.data_version().unwrap(), before, "round {n}");
        assert_eq!(watcher.list(None, None).unwrap().len(), n, "round {n}");
    }
}
