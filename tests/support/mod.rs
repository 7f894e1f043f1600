//! Shared test set-up: a simulated TestOps on 127.0.0.1, a temporary export and data dir, a
//! config file pointing at both, and a way to run the real `opsdeck` binary against them.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub mod hostile;

pub use opsdeck::testops_sim::{Body, Fault, SimOptions, SimTestOps, sample_csv};

/// The API token the simulation accepts; tests check it never leaks.
pub const TOKEN: &str = "sim-api-token";

/// A temporary workspace for one test.
pub struct Workspace {
    pub root: tempfile::TempDir,
    pub export_dir: PathBuf,
    pub data_dir: PathBuf,
    pub config: PathBuf,
}

impl Workspace {
    /// A workspace whose config points at `base_url`; `extra` is appended to `[export]`.
    pub fn new(base_url: &str, export_extra: &str) -> Workspace {
        Self::with_token(base_url, TOKEN, export_extra)
    }

    pub fn with_token(base_url: &str, token: &str, export_extra: &str) -> Workspace {
        let root = tempfile::tempdir().unwrap();
        let export_dir = root.path().join("exports");
        let data_dir = root.path().join("data");
        let config = root.path().join("config.toml");
        let delays = if export_extra.contains("retry_delays") {
            ""
        } else {
            "retry_delays = [\"20ms\"]\n"
        };
        // Tests may set their own max_attempts; TOML refuses a key given twice.
        let attempts = if export_extra.contains("max_attempts") {
            ""
        } else {
            "max_attempts = 3\n"
        };
        let text = format!(
            r#"# test config
[testops]
base_url = "{base_url}"
token = "{token}"
project_id = 17
tree_id = 937
poll_interval = "500ms"
poll_timeout = "5s"
connect_timeout = "2s"
read_timeout = "5s"

[[testops.groups]]
name = "API"
id = 101

[[testops.groups]]
name = "UI"
id = 102

[export]
dir = "{}"
{attempts}{delays}{export_extra}
"#,
            export_dir.display()
        );
        std::fs::write(&config, text).unwrap();
        set_mode_600(&config);
        Workspace {
            root,
            export_dir,
            data_dir,
            config,
        }
    }

    /// Adds lines to the `[testops]` table of the config.
    pub fn testops_extra(&self, extra: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replacen(
            "read_timeout = \"5s\"\n",
            &format!("read_timeout = \"5s\"\n{extra}\n"),
            1,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// The run history's rows as text (every column of runs and attempts), for leak checks.
    pub fn history_dump(&self) -> String {
        let c = rusqlite::Connection::open(self.data_dir.join("history.db")).unwrap();
        let mut out = String::new();
        for table in ["runs", "attempts"] {
            let mut st = c.prepare(&format!("SELECT * FROM {table}")).unwrap();
            let n = st.column_count();
            let rows = st
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| match r.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Text(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                            other => format!("{other:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap();
            for r in rows {
                out.push_str(&r.unwrap());
                out.push('\n');
            }
        }
        out
    }

    /// Everything in the daily log files.
    pub fn log_text(&self) -> String {
        let mut out = String::new();
        for name in list(&self.data_dir.join("logs")) {
            out.push_str(
                &std::fs::read_to_string(self.data_dir.join("logs").join(name)).unwrap_or_default(),
            );
        }
        out
    }

    /// A `tokio::process::Command` for the real binary with this workspace's config and data dir.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"));
        c.args(args)
            .env("OPSDECK_CONFIG", &self.config)
            .env("OPSDECK_DATA_DIR", &self.data_dir)
            // Each workspace has its own server socket: a server one test starts is never
            // found by another test's client.
            .env("OPSDECK_SOCKET", self.data_dir.join("opsdeck.sock"))
            .env_remove("OPSDECK_SERVER")
            .env("RUST_LOG", "opsdeck=debug")
            .env_remove("TESTOPS_TOKEN")
            .env_remove("TESTOPS_TOKEN_FILE")
            .env_remove("TESTOPS_BASE_URL")
            .env_remove("EXPORT_PATH")
            .env_remove("CRON_SCHEDULE")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs the binary to completion (bounded: a hung command fails the test).
    pub async fn run(&self, args: &[&str]) -> Output {
        let child = self.command(args).output();
        tokio::time::timeout(Duration::from_secs(60), child)
            .await
            .expect("opsdeck did not finish within 60 s")
            .unwrap()
    }

    /// Every file name in the export directory (hidden ones included), sorted.
    pub fn export_files(&self) -> Vec<String> {
        list(&self.export_dir)
    }
}

pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Export files only (the patterns of docs/contracts.md).
pub fn exports_only(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| opsdeck::export::ExportName::parse(n).is_some())
        .cloned()
        .collect()
}

fn set_mode_600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts the token appears nowhere in a command's output.
pub fn assert_no_secret(out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains(TOKEN), "the API token leaked:\n{all}");
    assert!(
        !all.contains("sim-access-"),
        "an access token leaked:\n{all}"
    );
}

/// Waits until `cond` holds, polling; panics after `limit`.
pub async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A simulated TestOps that sends group 101's export (`rows` test cases) slowly, 1 KB every
/// 50 ms, so a test can act while a download is under way.
pub async fn slow_sim(rows: usize, seed: u64) -> SimTestOps {
    let sim = SimTestOps::start(SimOptions {
        chunk_delay: Some(Duration::from_millis(50)),
        chunk_size: 1024,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    sim.set_body(
        101,
        Body::Bytes(bytes::Bytes::from(sample_csv("API", rows, seed))),
    );
    sim
}
