//! The whole dashboard in-process: the real event loop, services and effects, driven by
//! scripted keys into a `TestBackend`. Deterministic: every step runs the loop until the
//! state it waits for is there (with a deadline), never for a fixed time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use opsdeck::config::{Config, process_env};
use opsdeck::services::{ServiceSet, Services};
use opsdeck::tui::app::App;
use opsdeck::tui::effects::Effects;
use opsdeck::tui::event_loop::{self, Inputs, LoopStats};
use opsdeck::tui::msg::Cmd;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use support::*;

#[derive(Clone, Default)]
struct Clipboard(Arc<Mutex<Vec<u8>>>);

impl Write for Clipboard {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn key(c: char) -> std::io::Result<TermEvent> {
    Ok(TermEvent::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )))
}

fn code(c: KeyCode) -> std::io::Result<TermEvent> {
    Ok(TermEvent::Key(KeyEvent::new(c, KeyModifiers::NONE)))
}

type Keys = std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<TermEvent>>>>;

/// The real loop over a `TestBackend`, run in slices: between two slices a test looks at
/// the state, so it waits for a condition instead of sleeping.
struct Harness {
    terminal: Terminal<TestBackend>,
    app: App,
    inputs: Inputs<Keys>,
    effects: Effects,
    keys: tokio::sync::mpsc::UnboundedSender<std::io::Result<TermEvent>>,
    /// Each slice's stats.
    slices: Vec<LoopStats>,
}

impl Harness {
    fn new(
        app: App,
        effects: Effects,
        events: opsdeck::events::EventRx,
        logs: opsdeck::logs::LogRx,
        results: tokio::sync::mpsc::Receiver<opsdeck::tui::msg::Msg>,
    ) -> Harness {
        let (keys, keys_rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = futures_util::stream::unfold(keys_rx, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        });
        let (w, h) = app.size;
        Harness {
            terminal: Terminal::new(TestBackend::new(w, h)).unwrap(),
            app,
            inputs: Inputs {
                terminal: Box::pin(stream),
                events,
                logs,
                results,
            },
            effects,
            keys,
            slices: vec![],
        }
    }

    fn send(&self, e: std::io::Result<TermEvent>) {
        self.keys.send(e).unwrap();
    }

    /// Runs the loop in slices of 20 ms until `cond` holds; fails after `limit`.
    async fn until(&mut self, limit: Duration, what: &str, mut cond: impl FnMut(&App) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let stats = event_loop::run(
                &mut self.terminal,
                &mut self.app,
                &mut self.inputs,
                &mut self.effects,
                |_, _, _| {},
                tokio::time::sleep(Duration::from_millis(20)),
            )
            .await
            .unwrap();
            self.slices.push(stats);
            // The slice ended by its own timer (a signal to the loop), not by a quit key.
            self.app.quit = false;
            if cond(&self.app) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
        }
    }

    /// Runs the loop until it ends by itself (a quit key).
    async fn run_to_end(&mut self) {
        let stats = event_loop::run(
            &mut self.terminal,
            &mut self.app,
            &mut self.inputs,
            &mut self.effects,
            |_, _, _| {},
            std::future::pending(),
        )
        .await
        .unwrap();
        self.slices.push(stats);
    }

    fn screen(&self) -> String {
        self.terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect()
    }
}

#[tokio::test]
async fn keys_drive_exports_copy_delete_cron_edit_and_pause() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "");
    let cfg = Config::load(Some(&ws.config), &process_env).unwrap();
    let (tx, rx) = opsdeck::events::channel();
    let services = Services::start(
        &cfg,
        &ws.data_dir,
        tx.clone(),
        ServiceSet {
            scheduler: true,
            watcher: true,
            health: false,
            exports_optional: false,
        },
    )
    .unwrap();
    let mut app = opsdeck::tui::initial_app(&cfg, &Default::default());
    app.size = (120, 30);
    let (results_tx, results_rx) = tokio::sync::mpsc::channel(64);
    let clipboard = Clipboard::default();
    let backend = opsdeck::client::Backend::Local(opsdeck::client::LocalBackend::new(
        &cfg,
        &services,
        tx,
        ws.data_dir.clone(),
        opsdeck::storage::LedgerAt::Sqlite(ws.data_dir.join("releases.db")),
    ));
    let mut effects = Effects::new(
        cfg,
        backend,
        results_tx,
        Box::new(clipboard.clone()),
        ws.data_dir.clone(),
        None,
    );
    effects.run(opsdeck::tui::app::load_history(&mut app));
    let (_logs_tx, logs_rx) = opsdeck::logs::service::channel();
    let mut h = Harness::new(app, effects, rx, logs_rx, results_rx);

    h.send(key('E'));
    let export_dir = ws.export_dir.clone();
    h.until(Duration::from_secs(20), "two exports", |_| {
        exports_only(&list(&export_dir)).len() == 2
    })
    .await;
    // The watcher reports them; then copy the newest file's path.
    h.until(Duration::from_secs(10), "two files listed", |app| {
        app.exports.files.len() == 2
    })
    .await;
    h.send(key('l'));
    h.send(key('y'));
    h.until(Duration::from_secs(5), "the OSC 52 copy", |_| {
        !clipboard.0.lock().unwrap().is_empty()
    })
    .await;
    // The dashboard's clock as it is after a quiet minute: ticks come once a minute then.
    h.app.now -= chrono::Duration::seconds(50);
    h.send(key('d'));
    h.send(key('y'));
    h.until(Duration::from_secs(5), "a file deleted", |_| {
        exports_only(&list(&export_dir)).len() == 1
    })
    .await;
    // Its toast counts from the key, not from the last tick: it is there for seconds.
    h.until(Duration::from_secs(5), "the deletion's toast", |app| {
        app.toasts.iter().any(|t| t.text.starts_with("deleted "))
    })
    .await;
    let toast = h.app.toasts.iter().find(|t| t.text.starts_with("deleted "));
    assert!(
        toast.is_some_and(|t| t.until > chrono::Utc::now() + chrono::Duration::seconds(1)),
        "{:?}",
        h.app.toasts
    );
    h.send(key('2'));
    h.send(key('c'));
    for _ in 0..9 {
        h.send(code(KeyCode::Backspace));
    }
    for c in "15 6 * * *".chars() {
        h.send(key(c));
    }
    h.send(code(KeyCode::Enter));
    let config = ws.config.clone();
    h.until(Duration::from_secs(5), "the cron saved", |app| {
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("schedule = \"15 6 * * *\"")
            && app.schedules.jobs[0].schedule.expr() == "15 6 * * *"
    })
    .await;
    h.send(key('p'));
    let data_dir = ws.data_dir.clone();
    h.until(Duration::from_secs(5), "the pause saved and shown", |app| {
        // In the state dir (here the data dir), not the shared export dir.
        opsdeck::schedule::load_paused(&data_dir).contains("export") && app.schedules.jobs[0].paused
    })
    .await;
    h.send(key('q'));
    h.run_to_end().await;
    services.shutdown().await;

    // The copy is an OSC 52 sequence holding the full path of a saved export.
    let osc = String::from_utf8(clipboard.0.lock().unwrap().clone()).unwrap();
    let b64 = osc
        .strip_prefix("\x1b]52;c;")
        .and_then(|s| s.strip_suffix('\x07'))
        .unwrap();
    use base64::Engine;
    let path = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(
        path.starts_with(&ws.export_dir.display().to_string()) && path.ends_with(".csv"),
        "{path}"
    );
    // The deleted file is the copied one (both act on the selection).
    assert!(!std::path::Path::new(&path).exists());
    // The config kept its comment; the state and the screen show the change.
    let cfg_text = std::fs::read_to_string(&ws.config).unwrap();
    assert!(cfg_text.starts_with("# test config"), "{cfg_text}");
    assert_eq!(h.app.schedules.jobs[0].schedule.expr(), "15 6 * * *");
    assert!(h.app.schedules.jobs[0].paused);
    let screen = h.screen();
    assert!(
        screen.contains("15 6 * * *") && screen.contains("paused"),
        "{screen}"
    );
    // Each slice draws its first frame, then only after a message that changed something.
    assert!(h.slices.iter().map(|s| s.frames).sum::<u64>() >= 2);
    for s in &h.slices {
        assert!(s.frames <= s.messages + 1, "{s:?}");
    }
}

/// A log source added while the control channel is full (a flood of service events) still
/// shows with its lines: it is announced on the log channel, by its reader, before its
/// lines. (Announced with `try_send` on the shared channel, it was dropped, and its lines
/// were then ignored for good.) Every control event gets through too.
#[tokio::test]
async fn a_log_source_added_while_the_event_channel_is_full_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(&cfg_path, "").unwrap();
    let cfg = Config::load(Some(&cfg_path), &|_: &str| None).unwrap();
    let (tx, rx) = opsdeck::events::channel();
    let mut flooded = 0u64;
    while tx
        .try_send(opsdeck::events::Event::DiskFree(flooded))
        .is_ok()
    {
        flooded += 1;
    }
    assert!(flooded >= 1024, "the channel holds {flooded}");
    let log = dir.path().join("app.log");
    std::fs::write(
        &log,
        "2026-01-01T00:00:00Z INFO one\n2026-01-01T00:00:01Z WARN two\n2026-01-01T00:00:02Z ERROR three\n",
    )
    .unwrap();
    let (logs_tx, logs_rx) = opsdeck::logs::service::channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (tailer, task) = opsdeck::logs::service::spawn(vec![], logs_tx, cancel.clone());
    tailer.add(opsdeck::logs::LogSource::file(
        "app",
        log.display().to_string(),
    ));

    let mut app = opsdeck::tui::initial_app(&cfg, &Default::default());
    app.size = (100, 30);
    let (results_tx, results_rx) = tokio::sync::mpsc::channel(64);
    // No server answers there; nothing in this test asks one.
    let backend = opsdeck::client::Backend::Remote(opsdeck::client::Remote {
        http: opsdeck::client::http::UnixHttp::new(dir.path().join("no.sock")),
    });
    let effects = Effects::new(
        cfg,
        backend,
        results_tx,
        Box::new(Clipboard::default()),
        dir.path().to_path_buf(),
        Some(tailer),
    );
    let mut h = Harness::new(app, effects, rx, logs_rx, results_rx);
    h.until(
        Duration::from_secs(10),
        "the source with its lines",
        |app| {
            app.logs
                .sources
                .iter()
                .any(|s| s.name == "app" && s.lines.len() == 3)
        },
    )
    .await;
    h.until(Duration::from_secs(10), "every control event", |app| {
        app.disk_free == Some(flooded - 1)
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    drop(tx);
}

/// Closing a preview (`Cmd::Cancel`, which `update` emits when the overlay goes) stops its
/// reader: it had read on to 500 000 rows. Shutdown cancels what runs and awaits every
/// task the effects started.
#[tokio::test]
async fn a_cancelled_preview_stops_reading_and_shutdown_awaits_the_effects_tasks() {
    use opsdeck::tui::msg::Msg;
    use opsdeck::tui::request::Req;
    const ROWS: usize = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let mut text = String::from("allure_id;name\n");
    for i in 0..ROWS {
        text.push_str(&format!("{i};case {i}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(&cfg_path, "").unwrap();
    let cfg = Config::load(Some(&cfg_path), &|_: &str| None).unwrap();
    let (results_tx, mut results_rx) = tokio::sync::mpsc::channel(4);
    let backend = opsdeck::client::Backend::Remote(opsdeck::client::Remote {
        http: opsdeck::client::http::UnixHttp::new(dir.path().join("no.sock")),
    });
    let mut effects = Effects::new(
        cfg,
        backend,
        results_tx,
        Box::new(Clipboard::default()),
        dir.path().to_path_buf(),
        None,
    );
    let rows_of = |m: Msg| match m {
        Msg::Preview { batch, .. } => batch.rows.len(),
        other => panic!("{other:?}"),
    };
    effects.run(Cmd::Preview {
        path: csv.clone(),
        generation: 1,
    });
    let mut rows = 0;
    for _ in 0..2 {
        rows += rows_of(results_rx.recv().await.unwrap());
    }
    effects.run(Cmd::Cancel(Req::Preview));
    // Take whatever it sent before it saw the cancellation, until its task has ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    while effects.running() > 0 || !results_rx.is_empty() {
        assert!(Instant::now() < deadline, "the reader still runs");
        if let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(20), results_rx.recv()).await
        {
            rows += rows_of(m);
        }
    }
    assert!(rows < ROWS, "read {rows} of {ROWS} rows after the cancel");

    // A new preview, nobody reading its batches: shutdown still ends it.
    effects.run(Cmd::Preview {
        path: csv,
        generation: 2,
    });
    assert!(effects.shutdown(Duration::from_secs(10)).await);
    assert_eq!(effects.running(), 0);
}

/// Issue 13: the ledger's SQLite calls (10 s busy timeout, fsynced writes) ran on the
/// dashboard's async tasks, so a locked database froze the loop. Here another connection
/// holds the write lock while a reject runs on this single-threaded runtime: other tasks
/// and timers keep running, the reject's reply waits for the lock, then arrives.
#[tokio::test]
async fn a_locked_ledger_never_holds_up_the_dashboards_runtime() {
    use opsdeck::release::{Actor, Ledger, NewRelease, Status};
    use opsdeck::tui::msg::Msg;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(&cfg_path, "").unwrap();
    let cfg = Config::load(Some(&cfg_path), &|_: &str| None).unwrap();
    let ledger_path = data.join("releases.db");
    let id = {
        let actor = Actor {
            user: "ci".into(),
            sudo_user: None,
            ssh_client: None,
        };
        let mut l = Ledger::open(&ledger_path).unwrap();
        let r = l
            .create(
                &NewRelease {
                    service_name: "api".into(),
                    release_tag: "v2".into(),
                    ..Default::default()
                },
                &actor,
            )
            .unwrap();
        for to in [Status::Building, Status::ManualTesting] {
            l.transition(r.id, to, &actor, None, None).unwrap();
        }
        r.id
    };
    let (services, mut effects, mut results_rx, _events) =
        local_effects(cfg, &data, ledger_path.clone());

    let holder = rusqlite::Connection::open(&ledger_path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    effects.run(Cmd::Reject {
        id,
        reason: "login flaky".into(),
    });
    // The loop's thread goes on serving other tasks and timers meanwhile.
    for _ in 0..20 {
        let (ping, pong) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = ping.send(());
        });
        pong.await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        results_rx.try_recv().is_err(),
        "the reject finished while another connection held the ledger's lock"
    );
    holder.execute_batch("COMMIT").unwrap();
    match tokio::time::timeout(Duration::from_secs(30), results_rx.recv())
        .await
        .expect("no reply once the lock was released")
    {
        Some(Msg::Done(Ok(m))) => assert!(m.contains("rejected"), "{m}"),
        other => panic!("{other:?}"),
    }
    let l = Ledger::open(&ledger_path).unwrap();
    assert_eq!(l.get(id).unwrap().unwrap().status, Status::ManualTestFailed);
    assert!(effects.shutdown(Duration::from_secs(10)).await);
    services.shutdown().await;
}

/// Issue 13: "run now" of the cleanup in local mode started a detached task and replied
/// "started" before anything was done; a quit could cut it off unseen. It now runs inside
/// the effects' tracked task: the reply comes when the old export is gone and says so.
#[tokio::test]
async fn the_local_cleanup_runs_inside_the_tracked_task_and_replies_what_it_did() {
    use opsdeck::tui::msg::Msg;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exports = dir.path().join("exports");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&exports).unwrap();
    let old = exports.join("testops_export_17_API_2020-01-02_03-04-05.csv");
    let new = exports.join(format!(
        "testops_export_17_API_{}.csv",
        chrono::Utc::now().format("%Y-%m-%d_%H-%M-%S")
    ));
    std::fs::write(&old, "allure_id;name\n1;a\n").unwrap();
    std::fs::write(&new, "allure_id;name\n1;a\n").unwrap();
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[export]\ndir = \"{}\"\nretention_days = 30\n",
            exports.display()
        ),
    )
    .unwrap();
    let cfg = Config::load(Some(&cfg_path), &|_: &str| None).unwrap();
    let (services, mut effects, mut results_rx, _events) =
        local_effects(cfg, &data, data.join("releases.db"));
    effects.run(Cmd::RunCleanup);
    match tokio::time::timeout(Duration::from_secs(30), results_rx.recv())
        .await
        .expect("no reply to the cleanup")
    {
        Some(Msg::Done(Ok(m))) => assert_eq!(m, "cleanup: 1 file deleted"),
        other => panic!("{other:?}"),
    }
    assert!(!old.exists(), "the reply came before the cleanup was done");
    assert!(new.exists());
    assert!(effects.shutdown(Duration::from_secs(10)).await);
    services.shutdown().await;
}

/// Effects over a local backend with no scheduler, watcher or probe: the dashboard's
/// actions in local mode, for tests of what they do; the services' events are kept open.
fn local_effects(
    cfg: Config,
    data: &std::path::Path,
    ledger: std::path::PathBuf,
) -> (
    Services,
    Effects,
    tokio::sync::mpsc::Receiver<opsdeck::tui::msg::Msg>,
    opsdeck::events::EventRx,
) {
    let (tx, events) = opsdeck::events::channel();
    let services = Services::start(
        &cfg,
        data,
        tx.clone(),
        ServiceSet {
            scheduler: false,
            watcher: false,
            health: false,
            exports_optional: true,
        },
    )
    .unwrap();
    let backend = opsdeck::client::Backend::Local(opsdeck::client::LocalBackend::new(
        &cfg,
        &services,
        tx,
        data.to_path_buf(),
        opsdeck::storage::LedgerAt::Sqlite(ledger),
    ));
    let (results_tx, results_rx) = tokio::sync::mpsc::channel(8);
    let effects = Effects::new(
        cfg,
        backend,
        results_tx,
        Box::new(Clipboard::default()),
        data.to_path_buf(),
        None,
    );
    (services, effects, results_rx, events)
}
