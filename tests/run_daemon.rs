//! `opsdeck run` (scheduler, leader lock, catch-up) and clean shutdown on signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

mod support;

use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use support::*;
use tokio::io::AsyncReadExt;

/// A daily 6-field cron expression (with seconds) that fires at `t`.
fn cron_at(t: DateTime<Utc>) -> String {
    format!("{} {} {} * * *", t.second(), t.minute(), t.hour())
}

fn signal(child: &tokio::process::Child, sig: i32) {
    let pid = child.id().expect("child still running") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

async fn stop(child: tokio::process::Child) -> (std::process::ExitStatus, String) {
    signal(&child, libc::SIGTERM);
    finish(child).await
}

/// Waits for a child told to stop; its exit status and everything it logged.
async fn finish(mut child: tokio::process::Child) -> (std::process::ExitStatus, String) {
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("opsdeck did not stop on SIGTERM")
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    (status, err)
}

/// Reads the child's stderr until it contains `needle` (the pipe is kept open after, so the
/// child never blocks on a full pipe); returns what was read.
async fn read_stderr_until(child: &mut tokio::process::Child, needle: &str) -> String {
    let stderr = child.stderr.as_mut().expect("stderr is piped");
    let mut err = String::new();
    let mut buf = [0u8; 4096];
    while !err.contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(20), stderr.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "opsdeck run exited early: {err}");
        err.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    err
}

fn spawn_run(ws: &Workspace) -> tokio::process::Child {
    spawn_run_on(ws, "opsdeck.sock")
}

/// A server on its own socket in the workspace's data dir.
fn spawn_run_on(ws: &Workspace, socket: &str) -> tokio::process::Child {
    ws.command(&["run"])
        .env("OPSDECK_SOCKET", ws.data_dir.join(socket))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn two_daemons_on_one_export_dir_run_a_scheduled_export_once() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    // Far enough ahead that both daemons are up and leader-elected before it, even on a
    // loaded CI machine.
    let at = Utc::now() + chrono::Duration::seconds(8);
    let ws = Workspace::new(&sim.base_url(), &format!("schedule = \"{}\"", cron_at(at)));
    let a = spawn_run_on(&ws, "a.sock");
    let b = spawn_run_on(&ws, "b.sock");
    wait_for(Duration::from_secs(30), "two scheduled exports", || {
        exports_only(&ws.export_files()).len() >= 2
    })
    .await;
    // Give a second scheduler every chance to run the same instant too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Both at once: stopped one after the other, the follower may take over (its 10 s retry)
    // between the two, and then both have led, one after the other.
    signal(&a, libc::SIGTERM);
    signal(&b, libc::SIGTERM);
    let (sa, ea) = finish(a).await;
    let (sb, eb) = finish(b).await;
    assert!(sa.success() && sb.success(), "{ea}\n---\n{eb}");
    assert_eq!(
        exports_only(&ws.export_files()).len(),
        2,
        "{:?}",
        ws.export_files()
    );
    assert_eq!(sim.counters().export_requests.load(Relaxed), 2);
    // One of them was leader; the other said who held the lock.
    let follower = if ea.contains("holds the scheduler lock") {
        &ea
    } else {
        &eb
    };
    assert!(
        follower.contains("holds the scheduler lock") && follower.contains("pid "),
        "{ea}\n---\n{eb}"
    );
    assert!(ea.contains("this process is the leader") ^ eb.contains("this process is the leader"));
}

#[tokio::test]
async fn a_missed_run_is_caught_up_once_and_only_once() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let missed = Utc::now() - chrono::Duration::seconds(10);
    let missed = missed.with_nanosecond(0).unwrap();
    let ws = Workspace::new(
        &sim.base_url(),
        &format!("schedule = \"{}\"", cron_at(missed)),
    );
    std::fs::create_dir_all(&ws.export_dir).unwrap();
    // The schedule last fired the day before: the run at `missed` was missed.
    let state = format!(
        r#"{{"last_fired": {{"export": "{}", "cleanup": "{}"}}}}"#,
        (missed - chrono::Duration::days(1)).to_rfc3339(),
        Utc::now().to_rfc3339()
    );
    // The scheduler's state lives in the state dir (the data dir), not the export dir.
    std::fs::create_dir_all(&ws.data_dir).unwrap();
    std::fs::write(ws.data_dir.join("scheduler.json"), state).unwrap();

    let first = spawn_run(&ws);
    wait_for(Duration::from_secs(30), "the catch-up export", || {
        exports_only(&ws.export_files()).len() >= 2
    })
    .await;
    let (status, err) = stop(first).await;
    assert!(status.success(), "{err}");
    assert!(err.contains("catching up the run missed at"), "{err}");

    let history = opsdeck::export::RunHistory::open(&ws.data_dir.join("history.db")).unwrap();
    let runs = history.recent_runs("export", 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].trigger.as_str(), runs[0].scheduled_for),
        ("catch-up", Some(missed))
    );

    // A second start finds the instant recorded and does not run it again.
    let mut second = spawn_run(&ws);
    let err = read_stderr_until(&mut second, "next run at").await;
    signal(&second, libc::SIGTERM);
    assert!(second.wait().await.unwrap().success());
    assert!(!err.contains("catching up"), "{err}");
    assert_eq!(sim.counters().export_requests.load(Relaxed), 2);
    assert_eq!(history.recent_runs("export", 10).unwrap().len(), 1);
}

#[tokio::test]
async fn a_missed_run_older_than_catch_up_is_not_run() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let missed = (Utc::now() - chrono::Duration::seconds(30))
        .with_nanosecond(0)
        .unwrap();
    let ws = Workspace::new(
        &sim.base_url(),
        &format!("schedule = \"{}\"\ncatch_up = \"5s\"", cron_at(missed)),
    );
    std::fs::create_dir_all(&ws.export_dir).unwrap();
    let state = format!(
        r#"{{"last_fired": {{"export": "{}"}}}}"#,
        (missed - chrono::Duration::days(1)).to_rfc3339()
    );
    // The scheduler's state lives in the state dir (the data dir), not the export dir.
    std::fs::create_dir_all(&ws.data_dir).unwrap();
    std::fs::write(ws.data_dir.join("scheduler.json"), state).unwrap();
    let mut child = spawn_run(&ws);
    let err = read_stderr_until(&mut child, "next run at").await;
    signal(&child, libc::SIGTERM);
    assert!(child.wait().await.unwrap().success());
    assert!(err.contains("older than export.catch_up"), "{err}");
    assert_eq!(sim.counters().export_requests.load(Relaxed), 0);
}

#[tokio::test]
async fn sighup_during_a_slow_export_leaves_no_temporary_file() {
    let sim = slow_sim(3000, 9).await;
    let ws = Workspace::new(&sim.base_url(), "");
    let mut child = ws
        .command(&["export", "--group", "API"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the temporary download file",
        || {
            ws.export_files()
                .iter()
                .any(|f| f.starts_with(".opsdeck-download-"))
        },
    )
    .await;
    signal(&child, libc::SIGHUP);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(ws.export_files().is_empty(), "{:?}", ws.export_files());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert!(out.is_empty(), "no path may be printed: {out}");
}
