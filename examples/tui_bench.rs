//! Dashboard benchmarks (numbers quoted in the README):
//! 1. 10 000 files in the export dir: time from start (config, services, watcher's first
//!    listing) to the first frame that lists them.
//! 2. Preview of a 100 000-row export: time to the first screen.
//! 3. Diff of two 100 000-row exports.
//!
//! Run: `cargo run --release --example tui_bench`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use opsdeck::config::Config;
use opsdeck::events::Event;
use opsdeck::export::ExportName;
use opsdeck::services::{ServiceSet, Services};
use opsdeck::testops_sim::{SimOptions, SimTestOps};
use opsdeck::tui::app::update;
use opsdeck::tui::msg::Msg;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let work = tempfile::tempdir().unwrap();
        let first = first_frame_with_files(work.path(), 10_000).await;
        println!(
            "first frame listing 10 000 files: {:.1} ms (median of 5)",
            ms(first)
        );
        let (preview, rows) = preview_first_screen(work.path(), 100_000);
        println!(
            "preview of a {rows}-row file, first screen: {:.1} ms (median of 5)",
            ms(preview)
        );
        let diff = diff_100k(work.path());
        println!(
            "diff of two 100 000-row exports: {:.1} ms (median of 3)",
            ms(diff)
        );
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn draw(app: &opsdeck::tui::app::App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| opsdeck::tui::view::draw(f, app)).unwrap();
    t.backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect()
}

async fn first_frame_with_files(root: &Path, n: usize) -> Duration {
    let dir = root.join("many");
    std::fs::create_dir_all(&dir).unwrap();
    let start = Utc::now() - chrono::Duration::days(20);
    for i in 0..n {
        let group = if i % 2 == 0 { "API" } else { "UI" };
        let name = ExportName::file_name(17, group, start + chrono::Duration::minutes(i as i64));
        std::fs::write(dir.join(name), "allure_id;name\n1;x\n").unwrap();
    }
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let text = format!(
        "[testops]\nbase_url = \"{}\"\ntoken = \"sim-api-token\"\nproject_id = 17\ntree_id = 1\n\
         [[testops.groups]]\nname = \"API\"\nid = 1\n[[testops.groups]]\nname = \"UI\"\nid = 2\n\
         [export]\ndir = \"{}\"\nretention_days = 3650\n",
        sim.base_url(),
        dir.display()
    );
    let mut times = Vec::new();
    for round in 0..5 {
        let t0 = Instant::now();
        let cfg = Config::from_parts(None, &text, &|_| None).unwrap();
        let (tx, mut rx) = opsdeck::events::channel();
        let data = root.join(format!("data{round}"));
        let set = ServiceSet {
            scheduler: true,
            watcher: true,
            health: true,
            exports_optional: false,
        };
        let services = Services::start(&cfg, &data, tx, set).unwrap();
        let mut app = opsdeck::tui::initial_app(&cfg, &Default::default());
        app.size = (80, 24);
        loop {
            match rx.recv().await {
                Some(Event::ExportDir(l)) => {
                    update(&mut app, Msg::Service(Event::ExportDir(l)));
                    break;
                }
                Some(e) => {
                    update(&mut app, Msg::Service(e));
                }
                None => panic!("services stopped"),
            }
        }
        let screen = draw(&app);
        times.push(t0.elapsed());
        assert!(
            screen.contains(&format!("Files: {n}")),
            "the frame does not list the files"
        );
        services.shutdown().await;
    }
    median(times)
}

fn write_export(path: &Path, rows: usize, variant: u64) {
    let mut csv =
        String::from("allure_id;name;full_name;automated;status;scenario;tag;Owner;Epic\n");
    for i in 0..rows {
        let changed = variant > 0 && i % 97 == 0;
        csv.push_str(&format!(
            "{};\"Case {i}: проверка\";suite.case{i};{};{};\"1. open\n2. check\";smoke;{};Epic {}\n",
            100_000 + i + if variant > 0 && i % 1000 == 0 { 1_000_000 } else { 0 },
            i % 2 == 0,
            if changed { "Outdated" } else { "Active" },
            ["anna", "boris"][i % 2],
            i % 9
        ));
    }
    std::fs::write(path, csv).unwrap();
}

fn preview_first_screen(root: &Path, rows: usize) -> (Duration, usize) {
    let path = root.join("big.csv");
    write_export(&path, rows, 0);
    let mut times = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let mut app = opsdeck::tui::app::App::new(vec![], vec![], root.to_path_buf(), Utc::now());
        app.size = (80, 24);
        let mut first = None;
        // The same reader the dashboard runs on a blocking thread; stop after the first batch.
        opsdeck::export::preview::stream_preview(&path, usize::MAX, |batch| {
            first = Some(batch);
            false
        });
        app.overlay = Some(opsdeck::tui::app::Overlay::Preview(Box::new(
            opsdeck::tui::app::Preview {
                path: path.clone(),
                ..Default::default()
            },
        )));
        update(
            &mut app,
            Msg::Preview {
                generation: 0,
                batch: first.unwrap(),
            },
        );
        let screen = draw(&app);
        times.push(t0.elapsed());
        assert!(
            screen.contains("Case 0: проверка"),
            "the first screen is not drawn"
        );
    }
    (median(times), rows)
}

fn diff_100k(root: &Path) -> Duration {
    let old = root.join("old.csv");
    let new = root.join("new.csv");
    write_export(&old, 100_000, 0);
    write_export(&new, 100_000, 1);
    let mut times = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let d = opsdeck::export::diff::diff_files(&old, &new).unwrap();
        times.push(t0.elapsed());
        assert_eq!((d.added.len(), d.removed.len()), (100, 100));
        assert!(d.changed.len() > 900, "{}", d.changed.len());
    }
    median(times)
}
