//! `opsdeck logs --print`: the real binary on real files, a FIFO and signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn opsdeck(dir: &Path) -> Command {
    let config = dir.join("config.toml");
    if !config.exists() {
        std::fs::write(&config, "").unwrap();
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_opsdeck"));
    c.env("OPSDECK_CONFIG", &config)
        .env("OPSDECK_DATA_DIR", dir.join("data"))
        .stdin(Stdio::null());
    c
}

const LOG: &str = "2026-11-23 10:00:01,123 ERROR [main] c.e.Api - request failed\n\
java.lang.IllegalStateException: boom\n\
\tat com.example.Api.handle(Api.java:42)\n\
2026-11-23 10:00:02,000 INFO [main] c.e.Api - ok\n";

#[test]
fn json_messages_count_level_and_docker_prefixed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    std::fs::write(&p, LOG).unwrap();
    let out = opsdeck(dir.path())
        .args(["logs", "--print", "--json"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let msgs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["level"], "error");
    assert_eq!(msgs[0]["ts"], "2026-11-23T10:00:01.123Z");
    assert_eq!(msgs[0]["format"], "log4j");
    assert_eq!(msgs[0]["source"], p.display().to_string());
    assert!(msgs[0]["text"].as_str().unwrap().ends_with("(Api.java:42)"));
    assert_eq!(msgs[1]["level"], "info");

    // The Swarm service case: the same lines behind Docker's timestamps, on stdin.
    let docker: String = LOG
        .lines()
        .map(|l| format!("2026-11-23T10:00:05.123456789Z {l}\n"))
        .collect();
    let mut child = opsdeck(dir.path())
        .args(["logs", "--print", "--count", "--level", "error", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), docker.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
}

#[test]
fn a_missing_file_is_reported_and_fails_the_run_after_the_others_print() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    std::fs::write(&p, LOG).unwrap();
    let missing = dir.path().join("nonexist.log");
    let out = opsdeck(dir.path())
        .args(["logs", "--print", "--count"])
        .arg(&p)
        .arg(&missing)
        .output()
        .unwrap();
    // Like cat: the readable file is printed, the missing one named, and the exit is 1.
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonexist.log"));
    // A directory is named as one.
    let out = opsdeck(dir.path())
        .args(["logs", "--print"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = opsdeck(dir.path())
        .args(["logs", "--print", "--count"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn a_bad_regex_or_level_exits_2_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    std::fs::write(&p, LOG).unwrap();
    for args in [
        ["--grep", "(unclosed"],
        ["--level", "loud"],
        ["--since", "yesterday"],
    ] {
        let out = opsdeck(dir.path())
            .args(["logs", "--print"])
            .args(args)
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(args[0]),
            "{args:?}"
        );
    }
}

/// Reads stdout lines on a thread; `until` waits (bounded: a hang fails the test) for a line.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn until(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = self.0.recv_timeout(Duration::from_millis(100)) {
                let done = l.contains(want);
                seen.push(l);
                if done {
                    return seen;
                }
            }
        }
        panic!("no line with {want:?}; saw {seen:?}");
    }
}

#[test]
fn a_fifo_never_stalls_the_other_sources_and_sigterm_ends_follow() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.log");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let file = dir.path().join("app.log");
    std::fs::write(&file, "2026-11-23T10:00:01Z INFO first\n").unwrap();
    let mut child = opsdeck(dir.path())
        .args(["logs", "--print", "--follow"])
        .arg(&fifo)
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let lines = Lines(rx);
    lines.until("INFO first");
    // The file is followed although the FIFO has no writer.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"2026-11-23T10:00:02Z WARN second\n"))
        .unwrap();
    lines.until("WARN second");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not end the follow");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("not a regular file"), "{err}");
}
