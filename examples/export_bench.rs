//! Export benchmark: a 200 MB, 400 000-row CSV served by the simulated TestOps on 127.0.0.1.
//!
//! Measures, in the same run and against the same server: `curl -o` fetching the file, and
//! `opsdeck export` (token exchange, export request, download, CSV check, fsync, rename) —
//! wall time and peak RSS (from `wait4`), median of several rounds.
//!
//! Run: `cargo build --release && cargo run --release --example export_bench [ROUNDS]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use opsdeck::testops_sim::{Body, SimOptions, SimTestOps};

const ROWS: usize = 400_000;
const TARGET_BYTES: usize = 200 * 1024 * 1024;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run(rounds));
}

async fn run(rounds: usize) {
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("source.csv");
    let t = Instant::now();
    write_csv(&csv);
    let size = std::fs::metadata(&csv).unwrap().len();
    eprintln!("generated {} bytes, {ROWS} rows in {:?}", size, t.elapsed());

    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    sim.set_body(101, Body::File(csv.clone()));
    let exports = work.path().join("exports");
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[testops]\nbase_url = \"{}\"\ntoken = \"sim-api-token\"\nproject_id = 17\ntree_id = 937\npoll_interval = \"500ms\"\n\
             [[testops.groups]]\nname = \"API\"\nid = 101\n[export]\ndir = \"{}\"\nmax_attempts = 1\n",
            sim.base_url(),
            exports.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // curl needs an access token and an export id; get them outside the timed part.
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/api/uaa/oauth/token", sim.base_url()))
        .form(&[
            ("grant_type", "apitoken"),
            ("scope", "openid"),
            ("token", "sim-api-token"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_string();
    let export: serde_json::Value = http
        .post(format!("{}/api/v2/test-case/bulk/export/csv", sim.base_url()))
        .bearer_auth(&bearer)
        .json(&serde_json::json!({"selection": {"projectId": 17, "treeId": 937, "groupsInclude": [101]}, "mapping": []}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{}/api/export/download/{}", sim.base_url(), export["id"]);

    let opsdeck = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/opsdeck");
    assert!(
        opsdeck.exists(),
        "build the release binary first: cargo build --release"
    );
    let curl_out = work.path().join("curl.csv");
    let mut curl_runs = Vec::new();
    let mut opsdeck_runs = Vec::new();
    let mut durable_runs = Vec::new();
    for round in 0..rounds {
        let _ = std::fs::remove_file(&curl_out);
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--fail", "-H"])
            .arg(format!("Authorization: Bearer {bearer}"))
            .arg("-o")
            .arg(&curl_out)
            .arg(&url);
        let c = measure(curl);
        assert_eq!(
            std::fs::metadata(&curl_out).unwrap().len(),
            size,
            "curl fetched a short file"
        );

        // The same fetch made durable (what opsdeck guarantees before the rename): curl, then
        // fsync of the file by coreutils' `sync FILE`.
        let _ = std::fs::remove_file(&curl_out);
        let mut durable = Command::new("sh");
        durable
            .arg("-c")
            .arg("curl -sS --fail -H \"$1\" -o \"$2\" \"$3\" && sync \"$2\"")
            .arg("sh")
            .arg(format!("Authorization: Bearer {bearer}"))
            .arg(&curl_out)
            .arg(&url);
        let d = measure(durable);
        let _ = std::fs::remove_file(&curl_out);

        let _ = std::fs::remove_dir_all(&exports);
        // BENCH_WRAPPER="perf record -g -o /tmp/perf.data" profiles the opsdeck runs.
        let mut cmd = match std::env::var("BENCH_WRAPPER") {
            Ok(w) if !w.trim().is_empty() => {
                let mut parts = w.split_whitespace();
                let mut c = Command::new(parts.next().unwrap());
                c.args(parts).arg(&opsdeck);
                c
            }
            _ => Command::new(&opsdeck),
        };
        cmd.arg("--config")
            .arg(&config)
            .arg("export")
            .env("OPSDECK_DATA_DIR", work.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        let o = measure(cmd);
        let saved: Vec<PathBuf> = std::fs::read_dir(&exports)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            saved.len(),
            1,
            "opsdeck did not save exactly one file: {saved:?}"
        );
        assert_eq!(std::fs::metadata(&saved[0]).unwrap().len(), size);
        eprintln!(
            "round {}: curl {:>6.3} s {:>5.1} MB | curl+fsync {:>6.3} s | opsdeck {:>6.3} s {:>5.1} MB",
            round + 1,
            c.0.as_secs_f64(),
            c.1,
            d.0.as_secs_f64(),
            o.0.as_secs_f64(),
            o.1
        );
        curl_runs.push(c);
        durable_runs.push(d);
        opsdeck_runs.push(o);
    }
    let med = |v: &mut Vec<(Duration, f64)>| {
        v.sort_by_key(|r| r.0);
        v[v.len() / 2]
    };
    let (ct, crss) = med(&mut curl_runs);
    let (dt, _) = med(&mut durable_runs);
    let peak = opsdeck_runs.iter().map(|r| r.1).fold(0.0, f64::max);
    let (ot, _) = med(&mut opsdeck_runs);
    println!(
        "file: {:.1} MB, {ROWS} rows; {rounds} rounds, medians",
        size as f64 / 1048576.0
    );
    println!(
        "curl -o        : {:.3} s, peak RSS {:.1} MB",
        ct.as_secs_f64(),
        crss
    );
    println!(
        "opsdeck export : {:.3} s, peak RSS {:.1} MB (max over rounds)",
        ot.as_secs_f64(),
        peak
    );
    println!("curl -o + fsync: {:.3} s", dt.as_secs_f64());
    println!(
        "ratio          : {:.2}x curl -o, {:.2}x curl -o + fsync",
        ot.as_secs_f64() / ct.as_secs_f64(),
        ot.as_secs_f64() / dt.as_secs_f64()
    );
}

/// Runs a command to completion; returns wall time and peak RSS in MB (ru_maxrss of the child).
fn measure(mut cmd: Command) -> (Duration, f64) {
    let start = Instant::now();
    // wait4 reaps the child and reports its peak RSS, which Child::wait cannot.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; we wait for our own child exactly once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "command failed: {cmd:?}"
    );
    (elapsed, usage.ru_maxrss as f64 / 1024.0)
}

/// Writes ~200 MB: 400 000 test cases with Cyrillic text and quoted multi-line scenarios.
fn write_csv(path: &Path) {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    writeln!(
        out,
        "allure_id;name;full_name;automated;description;scenario;tag;Owner;Epic"
    )
    .unwrap();
    // Pad each row's description so the file comes to TARGET_BYTES (Cyrillic is 2 bytes a char).
    let row_len = TARGET_BYTES / ROWS;
    let mut filler = String::new();
    for c in "Проверка входа пользователя; ".chars().cycle() {
        if filler.len() + c.len_utf8() > row_len - 110 {
            break;
        }
        filler.push(c);
    }
    for i in 0..ROWS {
        writeln!(
            out,
            "{};\"Case {i} — логин\";suite.api.case{i};{};\"{filler}\";\"1. open\n2. \"\"submit\"\"\";smoke,regress;anna;Epic {}",
            100_000 + i,
            i % 2 == 0,
            i % 17
        )
        .unwrap();
    }
    out.flush().unwrap();
}
