//! Releases tab benchmark (numbers quoted in the README): a real ledger of 10 000 releases
//! over 20 services, and the engine's live state of the 20.
//! 1. First frame: from loading the list out of the ledger (what the ledger watcher does)
//!    through `update` to the first draw at 80x24 and at 120x35.
//! 2. A key press (`update` + draw) on that list: moves, pages, jumps between services,
//!    scrolling the details.
//! 3. A live-state change (`Event::Services`, what a rollout sends twice a second).
//!
//! For comparison, the order as it was computed before (each row looking up its service's
//! current deploy: quadratic), timed on the same list.
//!
//! Run: `cargo run --release --example releases_bench`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use opsdeck::config::Config;
use opsdeck::events::Event;
use opsdeck::release::engine::{Drift, ServiceLive, TaskLive};
use opsdeck::release::{Actor, Ledger, NewRelease, Release, Status};
use opsdeck::tui::app::{App, update};
use opsdeck::tui::msg::Msg;
use opsdeck::tui::tab::Tab;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const RELEASES: usize = 10_000;
const SERVICES: usize = 20;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releases.db");
    let t0 = Instant::now();
    fill_ledger(&path);
    println!(
        "ledger: {RELEASES} releases over {SERVICES} services written in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let cfg = config();
    let services = Arc::new(live_states());

    for size in [(80, 24), (120, 35)] {
        let mut total = Vec::new();
        let mut load = Vec::new();
        for _ in 0..5 {
            let (t, l, app) = first_frame(&cfg, &path, &services, size);
            total.push(t);
            load.push(l);
            drop(app);
        }
        println!(
            "first frame at {}x{}: {:.1} ms (median of 5; of which reading the ledger {:.1} ms)",
            size.0,
            size.1,
            ms(median(total)),
            ms(median(load))
        );
    }

    let (_, _, mut app) = first_frame(&cfg, &path, &services, (80, 24));
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| opsdeck::tui::view::draw(f, &app)).unwrap();
    let keys = script();
    let mut times = Vec::with_capacity(keys.len());
    for k in &keys {
        let t = Instant::now();
        let _ = update(&mut app, Msg::Key(*k));
        term.draw(|f| opsdeck::tui::view::draw(f, &app)).unwrap();
        times.push(t.elapsed());
    }
    report(
        &format!("key press (update + draw), {} keys", keys.len()),
        times,
    );

    let mut times = Vec::new();
    for n in 0..200 {
        let mut next = services.as_ref().clone();
        next[n % SERVICES].running = (n % 3) as u64;
        next[n % SERVICES].update_state = "updating".into();
        let t = Instant::now();
        let _ = update(&mut app, Msg::Service(Event::Services(Arc::new(next))));
        term.draw(|f| opsdeck::tui::view::draw(f, &app)).unwrap();
        times.push(t.elapsed());
    }
    report("live-state change (update + draw), 200 changes", times);

    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let rows = quadratic_order(&app.releases.list);
        times.push(t.elapsed());
        assert_eq!(rows.len(), RELEASES);
    }
    println!(
        "for comparison, the previous order (current deploy looked up per row): {:.1} ms per \
         call, then run on every loop turn (median of 3)",
        ms(median(times))
    );
    let t = Instant::now();
    let order = app.releases.compute(None);
    println!(
        "the order now (once per change of the list, filter or services): {:.2} ms",
        ms(t.elapsed())
    );
    assert_eq!(order.rows.len(), RELEASES);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    println!(
        "{what}: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(p(0.5)),
        ms(p(0.99)),
        ms(*v.last().unwrap())
    );
}

fn name(s: usize) -> String {
    format!("svc{s:02}")
}

/// Per service: mostly deployed (older ones become history), rolled back, failed, a few
/// in flight and awaiting approval, in the order CI and people would make them.
fn fill_ledger(path: &std::path::Path) {
    let mut ledger = Ledger::open(path).unwrap();
    let me = Actor::current();
    let per = RELEASES / SERVICES;
    for n in 0..per {
        for s in 0..SERVICES {
            let tag = format!("v1.{n}.0");
            let r = ledger
                .create(
                    &NewRelease {
                        service_name: name(s),
                        release_tag: tag,
                        image: Some(format!("registry.example.com/{}", name(s))),
                        initiated_by: Some("github-actions".into()),
                        github_run_id: Some(format!("{}", 700_000 + n * SERVICES + s)),
                        github_action_link: None,
                        github_ref: Some("refs/heads/main".into()),
                        status: Some(Status::ManualTesting),
                    },
                    &me,
                )
                .unwrap();
            let to: &[Status] = match n % 25 {
                _ if n + 3 >= per => &[],
                _ if n + 4 == per => &[Status::ManualTestPassed],
                3 => &[Status::ManualTestFailed],
                7 => &[
                    Status::ManualTestPassed,
                    Status::Deploying,
                    Status::ProductionFailed,
                ],
                11 => &[
                    Status::ManualTestPassed,
                    Status::Deploying,
                    Status::Deployed,
                    Status::Rollback,
                    Status::RollbackDone,
                ],
                _ => &[
                    Status::ManualTestPassed,
                    Status::Deploying,
                    Status::Deployed,
                ],
            };
            let back = format!("v1.{}.0", n.saturating_sub(1));
            for st in to {
                let rollback_to = (*st == Status::Rollback).then_some(back.as_str());
                ledger
                    .transition(r.id, *st, &me, None, rollback_to)
                    .unwrap();
            }
        }
    }
}

fn config() -> Config {
    let mut text = String::from("[releases]\ndeployer = \"swarm\"\n");
    for s in 0..SERVICES {
        text.push_str(&format!(
            "[[releases.services]]\nname = \"{}\"\nservice = \"prod_{}\"\nrepository = \"registry.example.com/{}\"\n",
            name(s),
            name(s),
            name(s)
        ));
    }
    Config::from_parts(None, &text, &|_| None).unwrap()
}

fn live_states() -> Vec<ServiceLive> {
    let per = RELEASES / SERVICES;
    (0..SERVICES)
        .map(|s| {
            let tag = format!("v1.{}.0", per - 5);
            let tasks = (1..=3)
                .map(|slot| TaskLive {
                    id: format!("{s:02}{slot:010}"),
                    slot: Some(slot),
                    node: format!("node{slot}"),
                    tag: tag.clone(),
                    state: "running".into(),
                    desired_state: "running".into(),
                    health: Some("healthy".into()),
                    since: Some(Utc::now()),
                    ..Default::default()
                })
                .collect();
            ServiceLive {
                service: name(s),
                swarm_service: format!("prod_{}", name(s)),
                image: format!("registry.example.com/{}:{tag}", name(s)),
                tag: tag.clone(),
                desired: 3,
                running: 3,
                update_state: "completed".into(),
                updated_at: Some(Utc::now()),
                tasks,
                ledger_tag: Some(tag.clone()),
                drift: (s % 7 == 3).then(|| Drift {
                    engine_tag: tag.clone(),
                    ledger_tag: "v1.0.0".into(),
                    since: Some(Utc::now()),
                }),
                observed_at: Utc::now(),
                ..Default::default()
            }
        })
        .collect()
}

/// Reads the list as the ledger watcher does, then `update` and the first draw.
fn first_frame(
    cfg: &Config,
    path: &std::path::Path,
    services: &Arc<Vec<ServiceLive>>,
    size: (u16, u16),
) -> (Duration, Duration, App) {
    let mut app = opsdeck::tui::initial_app(cfg, &Default::default());
    app.size = size;
    app.tab = Tab::Releases;
    let _ = update(&mut app, Msg::Service(Event::Services(services.clone())));
    let t0 = Instant::now();
    let list = Ledger::open(path).unwrap().list(None, None).unwrap();
    let loaded = t0.elapsed();
    assert_eq!(list.len(), RELEASES);
    let _ = update(&mut app, Msg::Service(Event::Releases(list)));
    let mut term = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
    term.draw(|f| opsdeck::tui::view::draw(f, &app)).unwrap();
    let took = t0.elapsed();
    let screen: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(
        screen.contains("svc00 (prod_svc00)  running"),
        "the first frame does not show the services"
    );
    (took, loaded, app)
}

/// 1 000 keys: down and up through the list, pages, top and bottom, service jumps, and the
/// details pane scrolled.
fn script() -> Vec<KeyEvent> {
    let k = |c: KeyCode| KeyEvent::new(c, KeyModifiers::NONE);
    let ch = |c: char| k(KeyCode::Char(c));
    let mut v = Vec::new();
    for round in 0..10 {
        v.extend(std::iter::repeat_n(ch('j'), 40));
        v.extend(std::iter::repeat_n(ch('k'), 10));
        v.extend(std::iter::repeat_n(k(KeyCode::PageDown), 10));
        v.extend(std::iter::repeat_n(ch(']'), 10));
        v.extend(std::iter::repeat_n(ch('['), 5));
        v.extend(std::iter::repeat_n(ch('J'), 5));
        v.extend(std::iter::repeat_n(ch('K'), 5));
        v.push(ch(if round % 2 == 0 { 'G' } else { 'g' }));
        v.extend(std::iter::repeat_n(k(KeyCode::PageUp), 14));
    }
    v
}

/// The order as the tab computed it before: every row asked for its service's current
/// deploy by scanning the whole list.
fn quadratic_order(releases: &[Release]) -> Vec<(u8, usize)> {
    let current_id = |service: &str| {
        releases
            .iter()
            .filter(|r| r.service_name == service && r.status == Status::Deployed)
            .max_by_key(|r| (r.completed_at, r.id))
            .map(|r| r.id)
    };
    let mut rows: Vec<(u8, usize)> = releases
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let superseded =
                r.status == Status::Deployed && current_id(&r.service_name) != Some(r.id);
            (if superseded { 4 } else { r.status as u8 % 5 }, i)
        })
        .collect();
    rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| releases[b.1].id.cmp(&releases[a.1].id))
    });
    rows
}
