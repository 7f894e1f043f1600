//! A real `opsdeck run` on a temporary socket, with a release config using the command
//! deployer, and ways to call it: the real CLI, curl over the socket, and the event stream.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A server and its files.
pub struct TestServer {
    pub root: tempfile::TempDir,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub data: PathBuf,
    pub child: Option<Child>,
    /// Run the server as this user (`runuser -u`), when set.
    pub run_as: Option<String>,
    /// Make the test's own reads (curl) as this user, when set.
    pub read_as: Option<String>,
    pub bin: PathBuf,
    /// Extra environment for the server process (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// Everything the server wrote to stderr so far (its log).
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

/// The release part of the config: services `api` and `web`, a deploy that takes `sleep`
/// seconds and fails while `<dir>/fail` exists.
pub fn release_config(dir: &Path, sleep: &str, extra: &str) -> String {
    format!(
        r#"[releases]
deployer = "command"

[[releases.services]]
name = "api"
repository = "registry.example.com/team/api"

[[releases.services]]
name = "web"

[releases.command]
deploy = ["sh", "-c", "sleep {sleep}; echo deploying $OPSDECK_IMAGE; test ! -e \"$0\"", "{fail}"]
rollback = ["sh", "-c", "echo rolling back to {{rollback_to_tag}}"]

[export]
dir = "{exports}"

{extra}
"#,
        fail = dir.join("fail").display(),
        exports = dir.join("exports").display(),
    )
}

impl TestServer {
    /// Writes the config; the server is not started yet.
    pub fn new(sleep: &str, extra: &str) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_path_buf();
        let config = dir.join("config.toml");
        std::fs::write(&config, release_config(&dir, sleep, extra)).unwrap();
        TestServer {
            socket: dir.join("run").join("opsdeck.sock"),
            data: dir.join("state"),
            config,
            dir,
            root,
            child: None,
            run_as: None,
            read_as: None,
            bin: PathBuf::from(env!("CARGO_BIN_EXE_opsdeck")),
            env: Vec::new(),
            stderr: Default::default(),
            drain: None,
        }
    }

    /// Starts `opsdeck run` and waits until `/v1/health` answers.
    pub fn start(&mut self) {
        let mut c = match &self.run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        c.arg("run")
            .env("OPSDECK_CONFIG", &self.config)
            .env("OPSDECK_DATA_DIR", &self.data)
            .env("OPSDECK_SOCKET", &self.socket)
            .env_remove("OPSDECK_SERVER")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let keep = self.stderr.clone();
        self.drain = Some(std::thread::spawn(move || {
            // Drain the log so the server never blocks on a full pipe, and keep it.
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("OPSDECK_TEST_VERBOSE").is_some() {
                    eprintln!("server: {l}");
                }
                let mut k = keep.lock().unwrap_or_else(|p| p.into_inner());
                k.push_str(&l);
                k.push('\n');
            }
        }));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.client(&["health"]).output().unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not answer: {}",
                text(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with SIGTERM and waits.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.pid() as i32;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut child = self.child.take().unwrap();
        child.wait().unwrap()
    }

    /// Stops the server and returns all it wrote to stderr, to the last line.
    pub fn stop_and_log(&mut self) -> String {
        let status = self.stop();
        assert!(status.success(), "the server stopped with {status}");
        if let Some(t) = self.drain.take() {
            t.join().unwrap();
        }
        self.stderr.lock().unwrap().clone()
    }

    /// Kills the server with SIGKILL (no clean-up at all).
    pub fn kill9(&mut self) {
        // The server's own pid (under runuser the child is runuser itself).
        let pid = self.json("/v1/health")["pid"].as_i64().unwrap() as i32;
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let mut child = self.child.take().unwrap();
        let _ = child.wait();
    }

    /// The server's pid, as it reports it.
    pub fn pid(&self) -> i64 {
        self.json("/v1/health")["pid"].as_i64().unwrap()
    }

    /// The real CLI, as a client of this server (the caller's config is a different file).
    pub fn client(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--server")
            .arg(&self.socket)
            .args(args)
            .env("OPSDECK_CONFIG", &self.config)
            .env("OPSDECK_DATA_DIR", self.dir.join("client-data"))
            .env_remove("OPSDECK_SOCKET")
            .stdin(Stdio::null());
        c
    }

    /// The CLI as another Unix user.
    pub fn client_as(&self, user: &str, args: &[&str]) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--"])
            .arg(&self.bin)
            .arg("--server")
            .arg(&self.socket)
            .args(args)
            .env("OPSDECK_DATA_DIR", format!("/tmp/opsdeck-test-{user}"))
            .env_remove("OPSDECK_CONFIG")
            .env_remove("OPSDECK_SOCKET")
            .stdin(Stdio::null());
        c
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.client(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `curl --unix-socket` with a method, path and optional body: (status, body).
    pub fn curl(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut c = match &self.read_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--", "curl"]);
                c
            }
            None => Command::new("curl"),
        };
        c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(&self.socket)
            .args(["-X", method])
            .arg(format!("http://opsdeck{path}"));
        if let Some(b) = body {
            c.args(["-H", "content-type: application/json", "--data-binary", b]);
        }
        let out = c.output().expect("curl");
        let t = text(&out.stdout);
        let (b, code) = t.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), b.to_string())
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.curl("GET", path, None);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Creates a release waiting for manual testing; its id.
    pub fn create(&self, service: &str, tag: &str) -> i64 {
        self.ok(&[
            "release",
            "create",
            "--service",
            service,
            "--tag",
            tag,
            "--status",
            "manual_testing",
        ])
        .trim()
        .parse()
        .unwrap()
    }

    pub fn status_of(&self, id: i64) -> String {
        self.json(&format!("/v1/releases/{id}"))["release"]["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until release `id` has `status`.
    pub fn wait_status(&self, id: i64, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.status_of(id) != status {
            assert!(
                Instant::now() < deadline,
                "release {id} never reached {status}: {}",
                self.status_of(id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the ledger holds: releases and the number of audit rows.
    pub fn snapshot(&self) -> (serde_json::Value, usize) {
        let list = self.json("/v1/releases");
        let audits = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                self.json(&format!("/v1/releases/{}", r["id"]))["audit"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .sum();
        (list, audits)
    }

    /// Follows `/v1/events` with curl; lines arrive on the receiver.
    pub fn events(&self) -> (Child, std::sync::mpsc::Receiver<serde_json::Value>) {
        let mut child = Command::new("curl")
            .args(["-sN", "--unix-socket"])
            .arg(&self.socket)
            .arg("http://opsdeck/v1/events")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&l)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        (child, rx)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let (code, body) = self.curl("GET", "/v1/health", None);
            if code == 200
                && let Some(pid) = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["pid"].as_i64())
            {
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// Waits for an event matching `pred` (bounded: a missing event fails the test).
pub fn expect_event(
    rx: &std::sync::mpsc::Receiver<serde_json::Value>,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if pred(&v) => return v,
            Ok(_) => {}
            Err(_) => panic!("no event: {what}"),
        }
    }
}

/// A TCP port free on 127.0.0.1 now (for a listener the test starts next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
