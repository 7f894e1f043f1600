//! The Logs tab with 100 000 lines in each of 5 sources and the merge view on: the time of
//! a key press (`update` + draw into a 160x48 `TestBackend`), 300 presses cycling `j`, `k`,
//! PageUp, `G`, `&` (only matching lines, on and off, with the search `ERROR`) and `l` (the
//! minimum level: error, warn, info, debug, all), plus 200 batches of 500 new lines arriving
//! (`update` + draw). Numbers quoted in the README.
//!
//! Run: `cargo run --profile bench-fast --example logs_view_bench` (or `--release`)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use opsdeck::logs::{LogEvent, LogLine, LogSource, TailEvent};
use opsdeck::tui::app::{App, update};
use opsdeck::tui::msg::Msg;
use opsdeck::tui::tab::Tab;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SOURCES: usize = 5;
const LINES: usize = 100_000;

fn line(s: usize, i: usize) -> LogLine {
    let t = i * SOURCES + s;
    let level = ["INFO", "INFO", "DEBUG", "WARN", "INFO", "ERROR"][t % 6];
    let text = format!(
        "2026-11-23T{:02}:{:02}:{:02}.{:03}Z {level:<5} svc{s}: request {i} user{} took {}ms",
        (t / 3_600_000) % 24,
        (t / 60_000) % 60,
        (t / 1000) % 60,
        t % 1000,
        i % 97,
        i % 113
    );
    LogLine::parse(text.as_bytes())
}

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let mut app = App::new(vec![], vec![], PathBuf::from("/tmp"), chrono::Utc::now());
    app.size = (160, 48);
    app.tab = Tab::Logs;
    let mut term = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let t = Instant::now();
    for s in 0..SOURCES {
        update(
            &mut app,
            Msg::Log(LogEvent::Added {
                id: s,
                source: LogSource::file(format!("svc{s}"), format!("/var/log/svc{s}.log")),
            }),
        );
    }
    for chunk in (0..LINES).step_by(10_000) {
        for s in 0..SOURCES {
            let lines = (chunk..chunk + 10_000).map(|i| line(s, i)).collect();
            update(
                &mut app,
                Msg::Log(LogEvent::Tail {
                    id: s,
                    event: TailEvent::Lines(lines),
                }),
            );
        }
    }
    eprintln!("fed 5 x 100 000 lines in {:.0} ms", ms(t.elapsed()));
    let mut draw = |app: &App| {
        term.draw(|f| opsdeck::tui::view::draw(f, app)).unwrap();
    };
    draw(&app);
    // The search the `&` toggle filters by (its whole-file search command is not run here).
    for c in "/ERROR".chars() {
        update(&mut app, key(KeyCode::Char(c)));
    }
    update(&mut app, key(KeyCode::Enter));
    let t = Instant::now();
    update(&mut app, key(KeyCode::Char('m')));
    draw(&app);
    let merge_on = t.elapsed();
    assert!(app.logs.merged && app.logs.visible().len() == SOURCES * LINES);

    let keys = [
        KeyCode::Char('j'),
        KeyCode::Char('k'),
        KeyCode::PageUp,
        KeyCode::Char('G'),
        KeyCode::Char('&'),
        KeyCode::Char('l'),
    ];
    let mut all = Vec::new();
    let mut toggles = Vec::new();
    let mut levels = Vec::new();
    for n in 0..300 {
        let code = keys[n % keys.len()];
        let t = Instant::now();
        update(&mut app, key(code));
        draw(&app);
        let took = t.elapsed();
        all.push(took);
        match code {
            KeyCode::Char('&') => toggles.push(took),
            KeyCode::Char('l') => levels.push(took),
            _ => {}
        }
    }
    // New lines while the merge view is on: 500 per batch, into one source each time.
    let mut batches = Vec::new();
    for n in 0..200 {
        let s = n % SOURCES;
        let lines = (0..500).map(|i| line(s, LINES + n * 500 + i)).collect();
        let t = Instant::now();
        update(
            &mut app,
            Msg::Log(LogEvent::Tail {
                id: s,
                event: TailEvent::Lines(lines),
            }),
        );
        draw(&app);
        batches.push(t.elapsed());
    }
    let rebuilds = app.logs.rows.rebuilds();
    println!(
        "5 sources x 100 000 lines, merge view, 160x48; merge switched on (first build + draw): {:.1} ms",
        ms(merge_on)
    );
    println!(
        "key press (update + draw), 300 of j/k/PageUp/G/&/l: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(&mut all, 0.5)),
        ms(pct(&mut all, 0.99)),
        ms(pct(&mut all, 1.0))
    );
    for (what, v) in [
        ("& (only matching on/off)", &mut toggles),
        ("l (level)", &mut levels),
    ] {
        println!(
            "  of which {what}, {}: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            v.len(),
            ms(pct(v, 0.5)),
            ms(pct(v, 0.99)),
            ms(pct(v, 1.0))
        );
    }
    println!(
        "500 new lines (update + draw), 200 batches: median {:.2} ms, p99 {:.2} ms; row rebuilds in all: {rebuilds}",
        ms(pct(&mut batches, 0.5)),
        ms(pct(&mut batches, 0.99))
    );
}
