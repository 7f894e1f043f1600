//! Logs benchmarks (numbers quoted in the README):
//! 1. A 1 GiB, ~10 million-line file: time to the last screen (open from the end, parse, the
//!    tab's `update`, draw at 120x40).
//! 2. Whole-file search on it against `rg -c -S` (ripgrep, smart case as ours) for the same
//!    pattern, in the same run, a literal and a regex; and the time to the match list's first
//!    page (the first 100 matches reported by the tab's search task).
//! 3. A writer appending 100 000 lines a second for 5 s: lines the tab received, the slowest
//!    key press (update + draw) during the flood, the ring buffer's size, peak RSS.
//!
//! Run: `cargo run --release --example logs_bench [FILE]` (FILE is created if missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use opsdeck::logs::{LogSource, Tail};
use opsdeck::tui::app::{App, update};
use opsdeck::tui::msg::Msg;
use opsdeck::tui::tab::Tab;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const GIB: u64 = 1 << 30;

fn main() {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("opsdeck-bench-1g.log"));
    if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < GIB {
        let t = Instant::now();
        generate(&path);
        eprintln!(
            "generated {} in {:.1} s",
            path.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "file: {} ({:.2} GiB)",
        path.display(),
        size as f64 / GIB as f64
    );

    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (_tail, events) = Tail::open(path.to_str().unwrap(), 200);
        let mut app = app();
        update(
            &mut app,
            Msg::Log(opsdeck::logs::LogEvent::Added {
                id: 0,
                source: LogSource::file("big", path.display().to_string()),
            }),
        );
        for e in events {
            update(
                &mut app,
                Msg::Log(opsdeck::logs::LogEvent::Tail { id: 0, event: e }),
            );
        }
        let screen = draw(&app);
        opens.push(t.elapsed());
        assert!(
            screen.contains("line 10485759") || screen.contains("request"),
            "the last screen is not drawn"
        );
    }
    println!(
        "last screen of the 1 GiB file: {:.2} ms (median of 5)",
        ms(median(opens))
    );

    for pattern in ["ERROR", "user42[0-9] took 9[0-9]ms"] {
        let mut ours = Vec::new();
        let mut rgs = Vec::new();
        let mut pages = Vec::new();
        let mut counts = (0, 0);
        for _ in 0..5 {
            let m = opsdeck::logs::search::matcher(pattern).unwrap();
            let t = Instant::now();
            let r =
                opsdeck::logs::search::search_file(&path, &m, &AtomicBool::new(false), |_, _| {})
                    .unwrap();
            ours.push(t.elapsed());
            let t = Instant::now();
            let out = std::process::Command::new("rg")
                .args(["-c", "-S", "--no-config", pattern])
                .arg(&path)
                .output()
                .expect("ripgrep (rg) is needed for the comparison");
            rgs.push(t.elapsed());
            counts = (
                r.matches,
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<u64>()
                    .unwrap(),
            );
            // The match list's first page: the tab's own search task, to its first report
            // holding a page of matches.
            let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
            let cancel = std::sync::Arc::new(AtomicBool::new(false));
            let spec = path.display().to_string();
            let t = Instant::now();
            let task = {
                let cancel = cancel.clone();
                std::thread::spawn(move || {
                    opsdeck::tui::tabs::logs::search_task(&spec, pattern, 1, &cancel, &tx)
                })
            };
            let mut hits = 0;
            while let Some(msg) = rx.blocking_recv() {
                if let Msg::Search {
                    hits: h, finished, ..
                } = msg
                {
                    hits += h.len();
                    if hits >= opsdeck::tui::tabs::logs::FIRST_PAGE || finished {
                        break;
                    }
                }
            }
            pages.push(t.elapsed());
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            drop(rx);
            task.join().unwrap();
        }
        assert_eq!(counts.0, counts.1, "opsdeck and rg disagree on {pattern}");
        let (o, g) = (median(ours), median(rgs));
        println!(
            "search `{pattern}` ({} matching lines): opsdeck {:.0} ms, rg -c {:.0} ms, ratio {:.2}x; match list's first page {:.0} ms (medians of 5)",
            counts.0,
            ms(o),
            ms(g),
            o.as_secs_f64() / g.as_secs_f64(),
            ms(median(pages)),
        );
    }

    flood();
}

fn app() -> App {
    let mut app = App::new(vec![], vec![], PathBuf::from("/tmp"), chrono::Utc::now());
    app.size = (120, 40);
    app.tab = Tab::Logs;
    app
}

fn draw(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| opsdeck::tui::view::draw(f, app)).unwrap();
    t.backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn generate(path: &Path) {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut i = 0u64;
    let levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
    while written < GIB {
        let line = format!(
            "2026-11-23T{:02}:{:02}:{:02}.{:03}Z {:<5} api: request {i} user{} took {}ms {}\n",
            (i / 3_600_000) % 24,
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000,
            levels[(i % 6) as usize],
            i % 997,
            i % 1000,
            if i.is_multiple_of(5000) {
                "timeout"
            } else {
                "ok"
            }
        );
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        i += 1;
    }
    out.flush().unwrap();
}

/// A writer at 100 000 lines/s for 5 s, the real tailer, and the tab consuming it.
fn flood() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flood.log");
        std::fs::write(&path, "").unwrap();
        let (tx, mut rx) = opsdeck::logs::service::channel();
        let cancel = tokio_util::sync::CancellationToken::new();
        let (_h, task) = opsdeck::logs::service::spawn(vec![LogSource::file("flood", path.display().to_string())], tx, cancel.clone());
        const RATE: u64 = 100_000;
        const SECS: u64 = 5;
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&writer_path).unwrap();
            let start = Instant::now();
            let mut n = 0u64;
            while n < RATE * SECS {
                let due = (start.elapsed().as_secs_f64() * RATE as f64) as u64;
                let mut buf = String::new();
                while n < due.min(RATE * SECS) {
                    buf.push_str(&format!("2026-11-23T10:00:00Z INFO flood line {n}\n"));
                    n += 1;
                }
                f.write_all(buf.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            start.elapsed()
        });
        let mut app = app();
        let mut received = 0u64;
        let mut worst_key = Duration::ZERO;
        let mut batch = Vec::new();
        let mut last_key = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(SECS + 10);
        while received < RATE * SECS && Instant::now() < deadline {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, 256) => n,
                () = tokio::time::sleep(Duration::from_millis(50)) => 0,
            };
            for ev in batch.drain(..n) {
                if let opsdeck::logs::LogEvent::Tail { event: opsdeck::logs::TailEvent::Lines(l), .. } = &ev {
                    received += l.len() as u64;
                }
                update(&mut app, Msg::Log(ev));
            }
            // Every 100 ms a key press: scroll up (pauses), then F (follows): update + draw.
            if last_key.elapsed() >= Duration::from_millis(100) {
                last_key = Instant::now();
                let t = Instant::now();
                for c in ['k', 'F'] {
                    update(&mut app, Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)));
                    draw(&app);
                }
                worst_key = worst_key.max(t.elapsed() / 2);
            }
        }
        let took = writer.join().unwrap();
        cancel.cancel();
        let _ = task.await;
        let kept = app.logs.sources.first().map_or(0, |s| s.lines.len());
        // SAFETY: a zeroed rusage is a valid out-parameter.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        println!(
            "writer: {} lines in {:.1} s; tab received {received} ({}); slowest key press (update + draw) {:.1} ms; ring buffer {kept} lines (max {}); peak RSS {:.0} MB",
            RATE * SECS,
            took.as_secs_f64(),
            if received == RATE * SECS { "all" } else { "NOT all" },
            ms(worst_key),
            opsdeck::tui::tabs::logs::MAX_LINES,
            usage.ru_maxrss as f64 / 1024.0
        );
    });
}
