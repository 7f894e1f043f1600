//! The whole dashboard in-process: the real event loop, services and effects, driven by
//! scripted keys into a `TestBackend`. Deterministic: every step waits for its effect.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use opsdeck::config::{Config, process_env};
use opsdeck::services::{ServiceSet, Services};
use opsdeck::tui::app::Cmd;
use opsdeck::tui::effects::Effects;
use opsdeck::tui::event_loop::{self, Inputs};
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
    effects.run(Cmd::LoadHistory);
    let (keys_tx, keys_rx) = tokio::sync::mpsc::unbounded_channel();
    let keys =
        futures_util::stream::unfold(
            keys_rx,
            |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
        );
    let mut inputs = Inputs {
        terminal: Box::pin(keys),
        events: rx,
        results: results_rx,
    };
    let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();

    let export_dir = ws.export_dir.clone();
    let config = ws.config.clone();
    let data_dir = ws.data_dir.clone();
    let script = async move {
        let send = |e| keys_tx.send(e).unwrap();
        send(key('E'));
        wait_for(Duration::from_secs(20), "two exports", || {
            exports_only(&list(&export_dir)).len() == 2
        })
        .await;
        // Let the watcher report them, then copy the newest file's path.
        tokio::time::sleep(Duration::from_millis(800)).await;
        send(key('l'));
        send(key('y'));
        wait_for(Duration::from_secs(5), "the OSC 52 copy", || {
            !clipboard.0.lock().unwrap().is_empty()
        })
        .await;
        send(key('d'));
        send(key('y'));
        wait_for(Duration::from_secs(5), "a file deleted", || {
            exports_only(&list(&export_dir)).len() == 1
        })
        .await;
        send(key('2'));
        send(key('c'));
        for _ in 0..9 {
            send(code(KeyCode::Backspace));
        }
        for c in "15 6 * * *".chars() {
            send(key(c));
        }
        send(code(KeyCode::Enter));
        wait_for(Duration::from_secs(5), "the cron saved", || {
            std::fs::read_to_string(&config)
                .unwrap()
                .contains("schedule = \"15 6 * * *\"")
        })
        .await;
        send(key('p'));
        wait_for(Duration::from_secs(5), "the pause saved", || {
            // In the state dir (here the data dir), not the shared export dir.
            opsdeck::schedule::load_paused(&data_dir).contains("export")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        send(key('q'));
        clipboard
    };
    let (stats, clipboard) = tokio::join!(
        event_loop::run(
            &mut terminal,
            &mut app,
            &mut inputs,
            &mut effects,
            |_, _, _| {},
            std::future::pending()
        ),
        script
    );
    let stats = stats.unwrap();
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
    assert_eq!(app.jobs[0].schedule.expr(), "15 6 * * *");
    assert!(app.jobs[0].paused);
    let screen: String = terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(
        screen.contains("15 6 * * *") && screen.contains("paused"),
        "{screen}"
    );
    assert!(
        stats.frames >= 2 && stats.frames <= stats.messages + 1,
        "{stats:?}"
    );
}
