//! `update` driven by messages, and snapshots of the views in a `TestBackend`.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::app::{GroupStatus, Overlay, Pane, update};
use super::fixture;
use super::msg::{Cmd, Msg};
use super::tab::Tab;
use crate::events::Event;
use crate::export::{DirListing, ExportEvent, ExportFile, ExportName, Stage};

/// Delivers a release's details as the reply to the load in flight.
fn give(app: &mut crate::tui::app::App, detail: crate::tui::msg::ReleaseDetail) {
    let generation = app
        .requests
        .current(crate::tui::request::Req::Release)
        .unwrap_or(0);
    update(app, Msg::ReleaseDetail { generation, detail });
}

fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

/// Types `text` key by key.
fn type_text(app: &mut super::app::App, text: &str) {
    for c in text.chars() {
        update(app, key(c));
    }
}

/// A rollback target the ledger deployed on 2026-11-20 10:00 UTC.
fn target(tag: &str) -> crate::release::targets::RollbackTarget {
    crate::release::targets::RollbackTarget {
        tag: tag.into(),
        origin: crate::release::targets::TargetOrigin::Ledger,
        last_ran: Some(chrono::DateTime::from_timestamp(1_763_632_800, 0).unwrap()),
        running: false,
    }
}

/// The screen as text, then each run of styled cells per row (`3 2-9 fg=Cyan BOLD`):
/// snapshots of this check colours and modifiers as well as text.
fn render_styled(app: &super::app::App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| super::view::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = render(app);
    out.push_str("--- styles (row col-col: fg bg modifiers)\n");
    let look = |x: u16, y: u16| {
        let c = &buf[(x, y)];
        (c.fg, c.bg, c.modifier)
    };
    let plain = (
        ratatui::style::Color::Reset,
        ratatui::style::Color::Reset,
        ratatui::style::Modifier::empty(),
    );
    for y in 0..buf.area.height {
        let mut x = 0;
        while x < buf.area.width {
            let l = look(x, y);
            let start = x;
            while x < buf.area.width && look(x, y) == l {
                x += 1;
            }
            if l == plain {
                continue;
            }
            let mut parts = Vec::new();
            if l.0 != ratatui::style::Color::Reset {
                parts.push(format!("fg={:?}", l.0));
            }
            if l.1 != ratatui::style::Color::Reset {
                parts.push(format!("bg={:?}", l.1));
            }
            parts.extend(l.2.iter_names().map(|(n, _)| n.to_string()));
            out.push_str(&format!("{y} {start}-{}: {}\n", x - 1, parts.join(" ")));
        }
    }
    out
}

fn render(app: &super::app::App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| super::view::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn progress(group: &str, stage: Stage) -> Msg {
    Msg::Service(Event::Export(ExportEvent::Progress {
        run_id: 1,
        group: group.into(),
        attempt: 1,
        max_attempts: 3,
        stage,
    }))
}

#[test]
fn export_keys_ask_for_exports() {
    let mut app = fixture::app((80, 24));
    assert_eq!(
        update(&mut app, key('e')).0,
        [Cmd::Export(vec!["API".into()])]
    );
    update(&mut app, key('j'));
    assert_eq!(
        update(&mut app, key('e')).0,
        [Cmd::Export(vec!["UI".into()])]
    );
    assert_eq!(
        update(&mut app, key('E')).0,
        [Cmd::Export(vec!["API".into(), "UI".into()])]
    );
}

#[test]
fn quitting_asks_while_an_export_runs() {
    let mut app = fixture::app((80, 24));
    update(
        &mut app,
        progress(
            "API",
            Stage::Downloading {
                bytes: 1000,
                total: Some(4000),
            },
        ),
    );
    assert!(matches!(
        app.exports.groups[0].status,
        GroupStatus::Running { .. }
    ));
    update(&mut app, key('q'));
    assert!(!app.quit && matches!(app.overlay, Some(Overlay::ConfirmQuit)));
    update(&mut app, key('n'));
    assert!(!app.quit && app.overlay.is_none());
    update(&mut app, key('q'));
    update(&mut app, key('y'));
    assert!(app.quit);
    // q right after E, before the export reports anything, asks too.
    let mut asked = fixture::app((80, 24));
    let (cmds, _) = update(&mut asked, key('E'));
    assert!(matches!(&cmds[..], [Cmd::Export(_)]), "{cmds:?}");
    update(&mut asked, key('q'));
    assert!(!asked.quit && matches!(asked.overlay, Some(Overlay::ConfirmQuit)));
    update(&mut asked, key('n'));
    // Once the export has reported, its group's state decides; an export nothing reports
    // within 15 s is not waited for.
    update(
        &mut asked,
        Msg::Service(Event::Export(ExportEvent::Failed {
            run_id: 1,
            group: "API".into(),
            error: "HTTP 503".into(),
            attempts: 1,
        })),
    );
    assert!(!asked.exporting());
    update(&mut asked, key('E'));
    assert!(asked.exporting());
    update(
        &mut asked,
        Msg::Tick(fixture::now() + chrono::Duration::seconds(16)),
    );
    assert!(!asked.exporting());
    // Idle: q quits at once; Ctrl-C always does.
    let mut idle = fixture::app((80, 24));
    update(&mut idle, key('q'));
    assert!(idle.quit);
    let mut busy = fixture::app((80, 24));
    update(&mut busy, progress("UI", Stage::Checking));
    update(
        &mut busy,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(busy.quit);
}

#[test]
fn a_long_toast_wraps_on_the_screen_and_stays_long_enough_to_read() {
    let mut app = fixture::app((80, 24));
    let error = "the TestOps server answered 502 Bad Gateway three times in a row; the export \
                 of UI is kept as it was and the next try runs at the schedule's next instant";
    update(
        &mut app,
        Msg::Service(Event::Export(ExportEvent::Failed {
            run_id: 1,
            group: "UI".into(),
            error: error.into(),
            attempts: 3,
        })),
    );
    let screen = render(&app);
    // Every word shows, on several lines above the status bar.
    let joined: Vec<&str> = screen.split_whitespace().collect();
    let joined = joined.join(" ");
    for w in error.split(' ') {
        assert!(joined.contains(w), "{w} missing:\n{screen}");
    }
    assert!(screen.contains("next instant"), "{screen}");
    // A short info toast fades after 4 s; this error is still there after 10 s.
    crate::tui::toast::push(
        &mut app.toasts,
        fixture::now(),
        crate::tui::msg::Level::Info,
        "saved",
    );
    update(
        &mut app,
        Msg::Tick(fixture::now() + chrono::Duration::seconds(10)),
    );
    assert_eq!(app.toasts.len(), 1, "{:?}", app.toasts);
    assert!(app.toasts[0].text.contains("next instant"));
}

#[test]
fn saved_and_failed_exports_update_status_trend_and_toasts_that_fade() {
    let mut app = fixture::app((80, 24));
    let before = app.exports.groups[0].trend.len();
    let path = PathBuf::from("/srv/exports/testops_export_17_API_2026-11-23_09-41-00.csv");
    let (cmds, changed) = update(
        &mut app,
        Msg::Service(Event::Export(ExportEvent::Saved {
            run_id: 1,
            group: "API".into(),
            path: path.clone(),
            bytes: 10,
            rows: 277,
            attempts: 1,
        })),
    );
    assert!(changed && cmds.is_empty());
    assert!(matches!(
        app.exports.groups[0].status,
        GroupStatus::Saved { .. }
    ));
    assert_eq!(app.exports.groups[0].trend.len(), before.min(29) + 1);
    assert_eq!(app.exports.rows_by_file[&path], 277);
    assert_eq!(app.toasts.len(), 1);
    update(
        &mut app,
        Msg::Service(Event::Export(ExportEvent::Failed {
            run_id: 1,
            group: "UI".into(),
            error: "HTTP 503".into(),
            attempts: 3,
        })),
    );
    assert!(
        matches!(&app.exports.groups[1].status, GroupStatus::Failed { error, .. } if error == "HTTP 503")
    );
    // A tick within the same minute with toasts alive redraws; after they fade, a tick in the
    // same minute with nothing moving does not.
    let later = fixture::now() + chrono::Duration::seconds(10);
    let (_, changed) = update(&mut app, Msg::Tick(later));
    assert!(changed && app.toasts.is_empty());
    let (_, changed) = update(&mut app, Msg::Tick(later + chrono::Duration::seconds(5)));
    assert!(
        !changed,
        "an idle tick within the same minute must not redraw"
    );
    let (_, changed) = update(&mut app, Msg::Tick(later + chrono::Duration::seconds(30)));
    assert!(changed, "the clock's minute changed");
    let (cmds, _) = update(
        &mut app,
        Msg::Service(Event::Export(ExportEvent::RunFinished {
            run_id: 1,
            trigger: crate::export::Trigger::Manual,
            saved: 1,
            failed: 1,
        })),
    );
    assert!(matches!(cmds[..], [Cmd::LoadHistory { .. }]), "{cmds:?}");
}

#[test]
fn filter_narrows_files_and_esc_clears_it() {
    let mut app = fixture::app((80, 24));
    assert_eq!(app.visible_files().len(), 60);
    update(&mut app, key('/'));
    for c in "ui_2026-11-0".chars() {
        update(&mut app, key(c));
    }
    update(&mut app, code(KeyCode::Enter));
    assert_eq!(app.visible_files().len(), 9);
    assert!(
        app.visible_files()
            .iter()
            .all(|&i| app.exports.files[i].group == "UI")
    );
    update(&mut app, code(KeyCode::Esc));
    assert_eq!(app.visible_files().len(), 60);
}

#[test]
fn a_new_listing_keeps_the_selection_on_the_same_file() {
    let mut app = fixture::app((80, 24));
    update(&mut app, key('l'));
    update(&mut app, key('j'));
    update(&mut app, key('j'));
    let selected = app.selected_file().unwrap().path.clone();
    let mut files: Vec<ExportFile> = app
        .exports
        .files
        .iter()
        .map(|f| ExportFile {
            path: f.path.clone(),
            name: ExportName::parse(&f.path.file_name().unwrap().to_string_lossy()).unwrap(),
            size: f.size,
            modified: None,
        })
        .collect();
    let new = "testops_export_17_UI_2026-11-23_09-00-00.csv";
    files.insert(
        0,
        ExportFile {
            path: PathBuf::from("/srv/exports").join(new),
            name: ExportName::parse(new).unwrap(),
            size: 1,
            modified: None,
        },
    );
    update(
        &mut app,
        Msg::Service(Event::ExportDir(DirListing {
            files,
            total_bytes: 0,
            at: fixture::now(),
        })),
    );
    assert_eq!(app.exports.files.len(), 61);
    assert_eq!(app.selected_file().unwrap().path, selected);
}

#[test]
fn diff_preview_and_delete_target_the_selected_file() {
    let mut app = fixture::app((80, 24));
    update(&mut app, key('l'));
    let newest = app.selected_file().unwrap().path.clone();
    let (cmds, _) = update(&mut app, key('D'));
    let Cmd::Diff { old, new, .. } = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(new, &newest);
    assert!(old.to_string_lossy().contains("UI_2026-11-21"), "{old:?}");
    update(&mut app, code(KeyCode::Esc));
    // The oldest file has nothing before it.
    update(&mut app, key('G'));
    let (cmds, _) = update(&mut app, key('D'));
    assert!(
        cmds.is_empty()
            && app
                .toasts
                .last()
                .unwrap()
                .text
                .contains("no earlier export")
    );
    let (cmds, _) = update(&mut app, code(KeyCode::Enter));
    assert!(
        matches!(&cmds[0], Cmd::Preview { path, .. } if path.to_string_lossy().contains("API_2026-10-24"))
    );
    update(&mut app, code(KeyCode::Esc));
    update(&mut app, key('d'));
    assert!(matches!(app.overlay, Some(Overlay::ConfirmDelete(_))));
    let (cmds, _) = update(&mut app, key('y'));
    assert!(matches!(&cmds[0], Cmd::Delete(p) if p.to_string_lossy().contains("API_2026-10-24")));
}

#[test]
fn cron_edit_validates_as_you_type_and_saves_only_valid_input() {
    let mut app = fixture::app((80, 24));
    update(&mut app, key('2'));
    assert_eq!(app.tab, Tab::Schedules);
    update(&mut app, key('c'));
    for _ in 0..9 {
        update(&mut app, code(KeyCode::Backspace));
    }
    for c in "0 61 * * *".chars() {
        update(&mut app, key(c));
    }
    let Some(Overlay::EditCron(e)) = &app.overlay else {
        panic!()
    };
    assert!(e.check.is_err());
    let (cmds, _) = update(&mut app, code(KeyCode::Enter));
    assert!(cmds.is_empty() && app.overlay.is_some());
    for _ in 0..8 {
        update(&mut app, code(KeyCode::Backspace));
    }
    for c in "6 * * 1-5".chars() {
        update(&mut app, key(c));
    }
    let Some(Overlay::EditCron(e)) = &app.overlay else {
        panic!()
    };
    assert_eq!(e.check, Ok("2026-11-24T06:00:00Z".parse().unwrap()));
    let (cmds, _) = update(&mut app, code(KeyCode::Enter));
    assert_eq!(
        cmds,
        [Cmd::SaveCron {
            job: "export".into(),
            expr: "0 6 * * 1-5".into()
        }]
    );
    // r runs the selected job, p toggles its pause.
    assert_eq!(update(&mut app, key('j')).0, []);
    assert_eq!(update(&mut app, key('r')).0, [Cmd::RunCleanup]);
    assert_eq!(
        update(&mut app, key('p')).0,
        [Cmd::SetPaused {
            job: "cleanup".into(),
            paused: false
        }]
    );
}

#[test]
fn mouse_clicks_tabs_and_rows() {
    let mut app = fixture::app((80, 24));
    let click = |x, y| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: x,
            row: y,
            modifiers: KeyModifiers::NONE,
        })
    };
    update(&mut app, click(16, 0));
    assert_eq!(app.tab, Tab::Schedules);
    update(&mut app, click(2, 0));
    assert_eq!(app.tab, Tab::Exports);
    // Files table: groups block is 5 rows (y 1..6), files block starts at y 6, data at y 8.
    update(&mut app, click(10, 10));
    assert_eq!((app.exports.pane, app.exports.file_sel), (Pane::Files, 2));
    update(
        &mut app,
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 10,
            row: 10,
            modifiers: KeyModifiers::NONE,
        }),
    );
    assert_eq!(app.exports.file_sel, 3);
}

#[test]
fn snapshot_exports_tab_with_a_running_export_and_an_error() {
    for size in [(80, 24), (160, 48)] {
        let mut app = fixture::app(size);
        update(
            &mut app,
            progress(
                "API",
                Stage::Downloading {
                    bytes: 1_200_000,
                    total: Some(4_800_000),
                },
            ),
        );
        update(
            &mut app,
            Msg::Service(Event::Export(ExportEvent::RetryScheduled {
                run_id: 1,
                group: "UI".into(),
                attempt: 1,
                max_attempts: 3,
                at: fixture::now() + chrono::Duration::seconds(252),
                error: "TestOps answered HTTP 503 to the export request".into(),
            })),
        );
        app.testops = Some(Err(
            "cannot reach TestOps for the token exchange: timed out".into(),
        ));
        insta::assert_snapshot!(
            format!("exports_running_{}x{}", size.0, size.1),
            render_styled(&app)
        );
    }
}

#[test]
fn snapshot_exports_tab_idle_demo_follower() {
    let mut app = fixture::app((80, 24));
    app.demo = true;
    app.lock = super::app::LockState::Follower("pid 4242 on manager-1 (user deploy)".into());
    insta::assert_snapshot!("exports_idle_80x24", render_styled(&app));
}

#[test]
fn snapshot_schedules_tab() {
    for size in [(80, 24), (160, 48)] {
        let mut app = fixture::app(size);
        update(&mut app, key('2'));
        insta::assert_snapshot!(
            format!("schedules_{}x{}", size.0, size.1),
            render_styled(&app)
        );
    }
}

#[test]
fn a_paused_job_lists_no_runs_and_a_long_description_shows_in_full() {
    let mut app = fixture::app((80, 24));
    app.schedules.jobs[0].schedule =
        crate::schedule::CronSchedule::parse("*/15 9-17 * * 1-5", None).unwrap();
    update(&mut app, key('2'));
    let describe = app.schedules.jobs[0].schedule.describe();
    assert!(describe.len() > 30, "{describe}");
    let screen = render(&app);
    // The details pane (left, under its title) holds it all, wrapped.
    let details: String = screen
        .lines()
        .skip_while(|l| !l.contains("export · UTC"))
        .skip(1)
        .take(4)
        .map(|l| l.chars().take(37).collect::<String>())
        .collect();
    let words: Vec<&str> = details
        .split(['│', ' '])
        .filter(|w| !w.is_empty())
        .collect();
    assert!(words.join(" ").contains(&describe), "{describe}:\n{screen}");
    assert!(screen.contains("Next runs (UTC)"), "{screen}");
    // The list shows the whole expression, not a cut one.
    assert!(screen.contains("│export   */15 9-17 * * 1-5 "), "{screen}");
    // The paused cleanup: no next run in the list, none in its details.
    update(&mut app, key('j'));
    let screen = render(&app);
    let row = screen.lines().find(|l| l.contains("cleanup")).unwrap();
    assert!(row.contains("none while paused"), "{row}");
    assert!(screen.contains("p resume"), "{screen}");
    // Its cron editor says the next run waits for the resume.
    update(&mut app, key('c'));
    let editor = render(&app);
    assert!(
        editor.contains("paused; once resumed (p), next run: 2026-11-24 03:30 UTC"),
        "{editor}"
    );
    update(&mut app, code(KeyCode::Esc));
    // Resumed, a job whose next run falls in another year names the year.
    app.schedules.jobs[1].paused = false;
    app.schedules.jobs[1].schedule =
        crate::schedule::CronSchedule::parse("0 9 1 1 *", None).unwrap();
    let resumed = render(&app);
    assert!(
        resumed.contains("2027-01-01 09:00  2027-01-01 09:00"),
        "{resumed}"
    );
    // This year's runs keep the short form (the snapshots hold `Tue 11-24 07:00`).
    assert!(!screen.contains("Next runs (UTC)"), "{screen}");
    assert!(screen.contains("no runs until p resumes it"), "{screen}");
}

#[test]
fn snapshot_placeholders_help_confirm_and_cron_edit() {
    let mut app = fixture::app((80, 24));
    update(&mut app, key('4'));
    insta::assert_snapshot!("logs_placeholder", render_styled(&app));
    update(&mut app, key('1'));
    update(&mut app, key('?'));
    insta::assert_snapshot!("help_exports", render_styled(&app));
    update(&mut app, code(KeyCode::Esc));
    update(&mut app, key('2'));
    update(&mut app, key('c'));
    update(&mut app, code(KeyCode::Backspace));
    insta::assert_snapshot!("cron_edit_invalid", render_styled(&app));
}

#[test]
fn snapshot_preview_and_diff() {
    use crate::export::diff::{CaseRef, ChangedCase, ColumnChange, CsvDiff};
    use crate::export::preview::PreviewBatch;
    let mut app = fixture::app((80, 24));
    update(&mut app, key('l'));
    let (cmds, _) = update(&mut app, code(KeyCode::Enter));
    let Cmd::Preview { generation, .. } = cmds[0].clone() else {
        panic!()
    };
    let header = ["allure_id", "name", "scenario", "status"]
        .map(String::from)
        .to_vec();
    let rows = (0..40)
        .map(|i| {
            vec![
                format!("{}", 40000 + i),
                format!("Проверка {i}"),
                "1. open\n2. check".into(),
                "Active".into(),
            ]
        })
        .collect();
    update(
        &mut app,
        Msg::Preview {
            generation,
            batch: PreviewBatch {
                header: Some(header),
                rows,
                done: false,
                error: None,
            },
        },
    );
    insta::assert_snapshot!("preview_loading", render_styled(&app));
    // A stale batch (an earlier preview) is ignored.
    let (_, changed) = update(
        &mut app,
        Msg::Preview {
            generation: generation - 1,
            batch: PreviewBatch {
                header: None,
                rows: vec![],
                done: true,
                error: None,
            },
        },
    );
    assert!(!changed);
    update(&mut app, code(KeyCode::Esc));
    let (cmds, _) = update(&mut app, key('D'));
    let Cmd::Diff { generation, .. } = cmds[0].clone() else {
        panic!()
    };
    let diff = CsvDiff {
        key_column: "allure_id".into(),
        old_rows: 272,
        new_rows: 274,
        added: vec![
            CaseRef {
                key: "40272".into(),
                name: "Pay by card".into(),
            },
            CaseRef {
                key: "40273".into(),
                name: "Refund".into(),
            },
        ],
        removed: vec![],
        changed: vec![ChangedCase {
            key: "40006".into(),
            name: "Login".into(),
            changes: vec![ColumnChange {
                column: "status".into(),
                old: "Draft".into(),
                new: "Active".into(),
            }],
        }],
    };
    update(
        &mut app,
        Msg::Diff {
            generation,
            result: Ok(diff),
        },
    );
    insta::assert_snapshot!("diff", render_styled(&app));
    // The view draws as many lines as the keys count.
    let Some(Overlay::Diff(d)) = &app.overlay else {
        panic!()
    };
    assert_eq!(crate::tui::popups::diff::line_count(d), 5);
    // A long diff: G shows its last page, g its first; ? opens the help and Esc comes back.
    let mut long = CsvDiff {
        key_column: "allure_id".into(),
        old_rows: 0,
        new_rows: 60,
        added: vec![],
        removed: vec![],
        changed: vec![],
    };
    long.added = (0..60)
        .map(|i| CaseRef {
            key: format!("{}", 50_000 + i),
            name: format!("case {i}"),
        })
        .collect();
    update(&mut app, code(KeyCode::Esc));
    assert!(app.overlay.is_none());
    let (cmds, _) = update(&mut app, key('D'));
    let Cmd::Diff { generation, .. } = cmds[0].clone() else {
        panic!("{cmds:?}")
    };
    update(
        &mut app,
        Msg::Diff {
            generation,
            result: Ok(long),
        },
    );
    update(&mut app, key('G'));
    let bottom = render(&app);
    assert!(bottom.contains("+ 50059  case 59"), "{bottom}");
    assert!(!bottom.contains("+ 50000  case 0 "), "{bottom}");
    update(&mut app, key('?'));
    assert!(
        matches!(&app.overlay, Some(Overlay::Help { back: Some(b), .. }) if matches!(**b, Overlay::Diff(_)))
    );
    update(&mut app, code(KeyCode::Esc));
    update(&mut app, code(KeyCode::Home));
    assert!(render(&app).contains("+ 50000  case 0"));
}

#[test]
fn tiny_terminal_says_so_instead_of_panicking() {
    for size in [(20, 5), (49, 30), (80, 11)] {
        let app = fixture::app(size);
        let out = render(&app);
        assert!(
            out.replace('\n', "").contains("terminal too small"),
            "{size:?}:\n{out}"
        );
    }
    // Even a single cell renders (the start of the message) without panicking.
    assert_eq!(render(&fixture::app((1, 1))), "t\n");
}

#[test]
fn no_color_keeps_modifiers_but_drops_colours() {
    let mut app = fixture::app((80, 24));
    app.color = false;
    app.testops = Some(Err("x".into()));
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| super::view::draw(f, &app)).unwrap();
    let buf = t.backend().buffer();
    for cell in buf.content() {
        assert_eq!(
            cell.fg,
            ratatui::style::Color::Reset,
            "a coloured cell with NO_COLOR"
        );
        assert_eq!(
            cell.bg,
            ratatui::style::Color::Reset,
            "a coloured cell with NO_COLOR"
        );
    }
}

mod releases {
    use super::*;
    use crate::tui::msg::ReleaseDetail;
    use crate::tui::tabs::releases::Section;

    fn rows(app: &crate::tui::app::App) -> Vec<(Section, i64)> {
        app.releases
            .ordered()
            .iter()
            .map(|&(s, i)| (s, app.releases.list[i].id))
            .collect()
    }

    #[test]
    fn sections_order_awaiting_oldest_first_and_superseded_deploys_as_history() {
        // Without live state or config the services go by name; in each, the sections.
        let app = fixture::app_on_releases((80, 24));
        assert_eq!(
            rows(&app),
            [
                (Section::Awaiting, 9),
                (Section::Deployed, 6),
                (Section::History, 3),
                (Section::Awaiting, 5),
                (Section::InProgress, 8),
                (Section::Failed, 7),
            ]
        );
        let groups: Vec<(&str, std::ops::Range<usize>)> = app
            .releases
            .order
            .groups
            .iter()
            .map(|g| (g.service.as_str(), g.rows.clone()))
            .collect();
        assert_eq!(groups, [("api", 0..3), ("web", 3..5), ("worker", 5..6)]);
        // Two releases awaiting approval of one service: oldest first.
        let mut app = fixture::app_on_releases((80, 24));
        let mut list = fixture::releases();
        let mut older = list[0].clone();
        older.id = 2;
        list.push(older);
        update(&mut app, Msg::Service(Event::Releases(list)));
        assert_eq!(
            rows(&app)[..2],
            [(Section::Awaiting, 2), (Section::Awaiting, 9)]
        );
    }

    #[test]
    fn approve_needs_y_and_only_works_on_releases_awaiting_approval() {
        let mut app = fixture::app_on_releases((80, 24));
        // The first row is release 9 (api v1.5.0), awaiting approval.
        update(&mut app, key('a'));
        let Some(Overlay::Approve { id, to, .. }) = &app.overlay else {
            panic!("{:?}", app.overlay)
        };
        // The whole image that will run: repository (the service name without one) and tag.
        assert_eq!((*id, to.as_str()), (9, "api:v1.5.0"));
        // The command deployer has no engine to ask: the ledger's word, said as such.
        assert!(
            render(&app).contains("now  api:v1.4.0 (the ledger's; no live state)"),
            "{}",
            render(&app)
        );
        // Anything but y cancels.
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert!(cmds.is_empty() && app.overlay.is_none());
        for _ in 0..3 {
            update(&mut app, key('j'));
        }
        update(&mut app, key('a'));
        let (cmds, _) = update(&mut app, key('y'));
        assert_eq!(
            cmds,
            [Cmd::Approve {
                id: 5,
                service: "web".into(),
                tag: "2.3.2".into()
            }]
        );
        // A deployed release cannot be approved.
        update(&mut app, key('g'));
        update(&mut app, key('j'));
        update(&mut app, key('a'));
        assert!(app.overlay.is_none());
        assert!(
            app.toasts
                .last()
                .unwrap()
                .text
                .contains("only releases awaiting approval")
        );
    }

    #[test]
    fn reject_needs_a_reason() {
        let mut app = fixture::app_on_releases((80, 24));
        update(&mut app, key('x'));
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert!(cmds.is_empty() && matches!(app.overlay, Some(Overlay::Reject { .. })));
        for c in "broken login".chars() {
            update(&mut app, key(c));
        }
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert_eq!(
            cmds,
            [Cmd::Reject {
                id: 9,
                reason: "broken login".into()
            }]
        );
    }

    #[test]
    fn rolling_back_to_the_tag_that_runs_now_says_it_changes_nothing() {
        let mut app = fixture::app_on_releases((80, 24));
        update(&mut app, key('j'));
        let mut running = target("v1.3.2");
        running.running = true;
        give(
            &mut app,
            ReleaseDetail {
                id: 6,
                targets: vec![running],
                ..Default::default()
            },
        );
        update(&mut app, key('r'));
        update(&mut app, code(KeyCode::Enter));
        let screen = render(&app);
        assert!(
            screen.contains("v1.3.2 runs now: rolling back to it changes nothing."),
            "{screen}"
        );
        // A target not running gets no such line: the `rollback_confirm` snapshot.
    }

    #[test]
    fn rollback_picks_a_target_and_needs_the_service_name_typed() {
        let mut app = fixture::app_on_releases((80, 24));
        let (cmds, _) = update(&mut app, key('j'));
        assert!(
            matches!(&cmds[..], [Cmd::LoadRelease { id: 6, .. }]),
            "{cmds:?}"
        );
        // Release 6, api v1.4.0, deployed; its details name v1.3.2 as a target.
        give(
            &mut app,
            ReleaseDetail {
                id: 6,
                targets: vec![target("v1.3.2")],
                ..Default::default()
            },
        );
        update(&mut app, key('r'));
        update(&mut app, code(KeyCode::Enter));
        assert!(
            matches!(&app.overlay, Some(Overlay::RollbackConfirm { to, .. }) if to == "v1.3.2")
        );
        for c in "ap".chars() {
            update(&mut app, key(c));
        }
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert!(cmds.is_empty(), "a partial name must not confirm");
        // The dialog says what it expects instead of doing nothing silently.
        assert!(render(&app).contains("`ap` is not api"), "{}", render(&app));
        update(&mut app, key('i'));
        insta::assert_snapshot!("rollback_confirm", render_styled(&app));
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert_eq!(
            cmds,
            [Cmd::Rollback {
                id: 6,
                to: "v1.3.2".into(),
                service: "api".into(),
                tag: "v1.4.0".into()
            }]
        );
    }

    /// Issue 10: the picker says when each tag last ran and where opsdeck learned of it, and
    /// a list longer than the screen scrolls with the selection.
    #[test]
    fn rollback_picker_says_when_each_tag_last_ran_and_scrolls() {
        use crate::release::targets::TargetOrigin;
        let mut app = fixture::app_on_releases((80, 24));
        update(&mut app, key('j'));
        let mut targets = vec![target("v1.3.2")];
        let mut engine = target("v1.0.0");
        engine.origin = TargetOrigin::TaskHistory;
        targets.push(engine);
        for i in 0..30 {
            let mut t = target(&format!("v0.{i}.0"));
            t.origin = TargetOrigin::Image;
            t.last_ran = None;
            targets.push(t);
        }
        give(
            &mut app,
            ReleaseDetail {
                id: 6,
                targets,
                ..Default::default()
            },
        );
        update(&mut app, key('r'));
        let screen = render(&app);
        let offset = app.local;
        let when = chrono::DateTime::from_timestamp(1_763_632_800, 0)
            .unwrap()
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M")
            .to_string();
        for line in [
            format!("v1.3.2   last ran {when} · deployed by a release"),
            format!("v1.0.0   last ran {when} · task history"),
            "v0.0.0   never ran here · image on this manager".to_string(),
            "(1/32)".to_string(),
        ] {
            assert!(screen.contains(&line), "{line}\n{screen}");
        }
        for _ in 0..31 {
            update(&mut app, key('j'));
        }
        let screen = render(&app);
        assert!(screen.contains("v0.29.0  never ran here"), "{screen}");
        assert!(screen.contains("(32/32)"), "{screen}");
        assert!(
            !screen.contains("v1.3.2   last ran"),
            "scrolled past the first: {screen}"
        );
        update(&mut app, code(KeyCode::Enter));
        assert!(
            matches!(&app.overlay, Some(Overlay::RollbackConfirm { to, .. }) if to == "v0.29.0")
        );
    }

    /// Issue 10: the confirm accepts the Swarm service's name too (`prod_api`), not only the
    /// release's.
    #[test]
    fn rollback_confirm_accepts_the_swarm_service_name() {
        // The engine's name of the service comes from its live state.
        let mut app = fixture::app_with_services((80, 24));
        update(&mut app, key('j'));
        give(
            &mut app,
            ReleaseDetail {
                id: 6,
                targets: vec![target("v1.3.2")],
                ..Default::default()
            },
        );
        update(&mut app, key('r'));
        update(&mut app, code(KeyCode::Enter));
        assert!(
            render(&app).contains("Type api (or prod_api) to confirm"),
            "{}",
            render(&app)
        );
        for c in "prod_api".chars() {
            update(&mut app, key(c));
        }
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert!(
            matches!(&cmds[..], [Cmd::Rollback { id: 6, to, .. }] if to == "v1.3.2"),
            "{cmds:?}"
        );
    }

    #[test]
    fn a_release_created_elsewhere_appears_with_a_toast_and_keeps_the_selection() {
        let mut app = fixture::app_on_releases((80, 24));
        update(&mut app, key('j'));
        let mut list = fixture::releases();
        let mut new = list[0].clone();
        new.id = 10;
        new.release_tag = "v1.6.0".into();
        new.created_at = fixture::now() - chrono::Duration::hours(50);
        list.insert(0, new);
        update(&mut app, Msg::Service(Event::Releases(list)));
        assert_eq!(app.releases.selected().unwrap().id, 6);
        assert!(
            app.toasts
                .last()
                .unwrap()
                .text
                .contains("new release: api v1.6.0")
        );
    }

    #[test]
    fn waiting_on_you_counts_what_i_may_approve_and_alerts_only_when_it_grows() {
        use crate::tui::msg::Cmd;
        let mut app = fixture::app((80, 24));
        app.tab = crate::tui::tab::Tab::Releases;
        app.ui_notify = true;
        // Two releases wait (ids 5 and 9); the first update settles the count, with an alert.
        let (cmds, changed) = update(&mut app, Msg::Service(Event::Releases(fixture::releases())));
        assert!(changed);
        assert_eq!(app.waiting, 2);
        assert!(render(&app).contains("2 waiting on you"));
        assert!(cmds.iter().any(|c| matches!(c, Cmd::Alert(_))));
        // The same list again: nothing changes, no alert, no redraw.
        let (cmds, _) = update(&mut app, Msg::Service(Event::Releases(fixture::releases())));
        assert!(!cmds.iter().any(|c| matches!(c, Cmd::Alert(_))));
        // A third one arrives: an alert naming it.
        let mut list = fixture::releases();
        let mut new = list[0].clone();
        new.id = 10;
        new.service_name = "api".into();
        new.release_tag = "v1.6.0".into();
        new.status = crate::release::Status::ManualTesting;
        list.insert(0, new);
        let (cmds, _) = update(&mut app, Msg::Service(Event::Releases(list.clone())));
        assert_eq!(app.waiting, 3);
        let alert = cmds.iter().find_map(|c| match c {
            Cmd::Alert(t) => Some(t.clone()),
            _ => None,
        });
        assert_eq!(
            alert.as_deref(),
            Some("api v1.6.0 waits for your approval (3 waiting)")
        );
        // The server refuses us approve: nothing waits on us.
        let (cmds, changed) = update(
            &mut app,
            Msg::Service(Event::Whoami {
                user: "bob".into(),
                refusals: [("approve".to_string(), "bob may not approve".to_string())].into(),
            }),
        );
        assert!(changed);
        assert_eq!(app.waiting, 0);
        assert!(cmds.is_empty());
        assert!(!render(&app).contains("waiting on you"));
        // Without ui.notify the count shows, without an alert.
        let mut app = fixture::app_on_releases((80, 24));
        let (cmds, _) = update(&mut app, Msg::Service(Event::Releases(list)));
        assert_eq!(app.waiting, 3);
        assert!(!cmds.iter().any(|c| matches!(c, Cmd::Alert(_))));
        // Local mode: not in releases.approvers.
        app.may_approve = false;
        let now = app.now;
        update(&mut app, Msg::Tick(now));
        assert_eq!(app.waiting, 0);
    }

    #[test]
    fn a_failing_sink_shows_in_the_status_bar_until_it_delivers() {
        let mut app = fixture::app_on_releases((100, 24));
        let failing = vec![crate::notify::SinkHealth {
            sink: "tg".into(),
            attempts: 3,
            error: "telegram: HTTP 502".into(),
        }];
        let (_, changed) = update(
            &mut app,
            Msg::Service(Event::NotifyFailing(failing.clone())),
        );
        assert!(changed);
        assert!(
            render(&app).contains("notify tg failing"),
            "{}",
            render(&app)
        );
        let (_, changed) = update(&mut app, Msg::Service(Event::NotifyFailing(failing)));
        assert!(!changed, "the same state: no redraw");
        update(&mut app, Msg::Service(Event::NotifyFailing(vec![])));
        assert!(!render(&app).contains("failing"));
    }

    #[test]
    fn snapshots_of_the_releases_tab_and_approve_dialog() {
        for size in [(80, 24), (120, 35), (160, 48)] {
            let mut app = fixture::app_with_services(size);
            // worker 0.9.2: its failed task's error and exit code in the tasks pane.
            update(&mut app, key('G'));
            give(
                &mut app,
                ReleaseDetail {
                    id: 7,
                    audit: failed_audit(),
                    log: vec![
                        "pulling registry/worker:0.9.2".into(),
                        "task 3f2a9c1b0d4e failed: task: non-zero exit (1)".into(),
                    ],
                    targets: vec![],
                },
            );
            insta::assert_snapshot!(
                format!("releases_{}x{}", size.0, size.1),
                render_styled(&app)
            );
        }
        let mut app = fixture::app_with_services((80, 24));
        update(&mut app, key('a'));
        insta::assert_snapshot!("approve_dialog", render_styled(&app));
    }
}

/// A failed deploy's audit: the reason, the automatic rollback, a refusal, a drift entry.
fn failed_audit() -> Vec<crate::release::AuditEntry> {
    let at = |m: i64| fixture::now() - chrono::Duration::hours(20) + chrono::Duration::minutes(m);
    let entry = |m: i64, from: &str, to: &str, actor: &str, note: Option<&str>| {
        crate::release::AuditEntry {
            at: at(m),
            actor: actor.into(),
            sudo_user: None,
            ssh_client: None,
            from: Some(from.into()),
            to: to.into(),
            note: note.map(Into::into),
        }
    };
    vec![
        entry(0, "manual_test_passed", "deploying", "alice", None),
        entry(
            4,
            "deploying",
            "production_failed",
            "alice",
            Some(
                "task 3f2a9c1b0d4e (slot 2) on node2 failed: task: non-zero exit (1), exit code 1; \
                 the update paused after 1 of 2 tasks",
            ),
        ),
        entry(
            5,
            "production_failed",
            "production_failed",
            "engine",
            Some("automatic_rollback: the service went back to 0.9.1 (on_failure = rollback)"),
        ),
        entry(
            9,
            "production_failed",
            "production_failed",
            "bob",
            Some("bob may not roll back: needs deployers (@ops)"),
        ),
    ]
}

mod logs {
    use super::*;
    use crate::logs::{LogEvent, LogLine, LogSource, TailEvent};

    fn feed(app: &mut crate::tui::app::App, id: usize, lines: &[&str]) {
        let lines = lines.iter().map(|l| LogLine::parse(l.as_bytes())).collect();
        update(
            app,
            Msg::Log(LogEvent::Tail {
                id,
                event: TailEvent::Lines(lines),
            }),
        );
    }

    fn app_with_logs() -> crate::tui::app::App {
        let mut app = fixture::app((100, 20));
        update(&mut app, key('4'));
        for (id, name) in [(0, "app"), (1, "worker")] {
            update(
                &mut app,
                Msg::Log(LogEvent::Added {
                    id,
                    source: LogSource::file(name, format!("/var/log/{name}.log")),
                }),
            );
        }
        let app_lines: Vec<String> = (0..40)
            .map(|i| {
                let level = if i % 10 == 3 { "ERROR" } else { "INFO" };
                format!(
                    "2026-11-23T09:00:{:02}Z {level} request {i} user{}",
                    i,
                    i % 7
                )
            })
            .collect();
        feed(
            &mut app,
            0,
            &app_lines.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        feed(
            &mut app,
            1,
            &[
                "2026-11-23T09:00:05.5Z WARN worker slow",
                "2026-11-23T09:00:30.5Z INFO worker done",
            ],
        );
        app
    }

    fn shown(app: &crate::tui::app::App) -> Vec<String> {
        app.logs
            .visible()
            .iter()
            .map(|(s, i)| app.logs.sources[s].lines[i].text.clone())
            .collect()
    }

    /// A new user's findings: the search prompt started with the old search, ran off the
    /// border with long input, and a bad regex toasted the parser's drawing with `\n`s.
    #[test]
    fn the_search_prompt_starts_empty_scrolls_and_says_a_bad_regex_on_one_line() {
        let mut app = app_with_logs();
        update(&mut app, key('/'));
        type_text(&mut app, "request");
        update(&mut app, code(KeyCode::Enter));
        assert_eq!(app.logs.search, "request");
        update(&mut app, key('/'));
        assert_eq!(app.logs.search_input.as_ref().map(|i| i.value()), Some(""));
        for c in std::iter::repeat_n('z', 200).chain("END".chars()) {
            update(&mut app, key(c));
        }
        let screen = render(&app);
        let prompt = screen
            .lines()
            .find(|l| l.contains("/…"))
            .unwrap_or_else(|| panic!("{screen}"));
        assert!(prompt.contains("END▏"), "{prompt}");
        update(&mut app, code(KeyCode::Esc));
        // Esc cancels the typing; the search before it stays.
        assert_eq!(app.logs.search, "request");
        update(&mut app, key('/'));
        type_text(&mut app, "(((");
        update(&mut app, code(KeyCode::Enter));
        let toast = app
            .toasts
            .last()
            .map(|t| t.text.clone())
            .unwrap_or_default();
        assert_eq!(toast, "not a regex: unclosed group");
    }

    #[test]
    fn scrolling_up_pauses_and_counts_new_lines_f_follows_again() {
        let mut app = app_with_logs();
        assert!(app.logs.follow);
        update(&mut app, key('k'));
        update(&mut app, key('k'));
        assert!(!app.logs.follow && app.logs.offset == 2);
        feed(
            &mut app,
            0,
            &[
                "2026-11-23T09:01:00Z INFO late 1",
                "2026-11-23T09:01:01Z INFO late 2",
            ],
        );
        assert_eq!(
            (app.logs.new_lines, app.logs.offset),
            (2, 4),
            "the view stays put while paused"
        );
        let screen = render(&app);
        assert!(screen.contains("PAUSED · 2 new lines"), "{screen}");
        update(&mut app, key('F'));
        assert!(app.logs.follow && app.logs.offset == 0 && app.logs.new_lines == 0);
    }

    #[test]
    fn search_smart_case_next_match_and_only_matching() {
        let mut app = app_with_logs();
        update(&mut app, key('/'));
        type_text(&mut app, "user3$");
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert!(
            matches!(&cmds[..], [Cmd::SearchFile { pattern, .. }] if pattern == "user3$"),
            "{cmds:?}"
        );
        assert!(
            app.logs.regex.as_ref().unwrap().is_match("USER3"),
            "lower-case pattern: case-insensitive"
        );
        update(&mut app, key('&'));
        assert_eq!(shown(&app).len(), 6);
        assert!(shown(&app).iter().all(|l| l.ends_with("user3")));
        update(&mut app, key('&'));
        assert_eq!(shown(&app).len(), 40);
        // An upper-case letter makes the search case-sensitive.
        assert!(
            !crate::tui::tabs::logs::smart_regex("User")
                .unwrap()
                .is_match("user")
        );
        // Esc clears the search and cancels the file search.
        let (cmds, _) = update(&mut app, code(KeyCode::Esc));
        assert_eq!(cmds, [Cmd::Cancel(crate::tui::request::Req::Search)]);
        assert!(app.logs.regex.is_none());
    }

    #[test]
    fn the_source_list_fits_its_names_within_a_quarter_of_the_screen() {
        let app = app_with_logs();
        // "worker (2)": short names take a narrow pane at 100 columns.
        assert_eq!(app.logs.sources_width(app.size), 17);
        let screen = render(&app);
        assert!(screen.contains("┌ Sources ←/→ ──┐┌"), "{screen}");
        // A click inside the narrower pane still selects, one past it does not.
        assert_eq!(app.logs.source_at(app.size, 16, 3), Some(1));
        assert_eq!(app.logs.source_at(app.size, 17, 3), None);
        // A long name widens it, up to a quarter of the screen.
        assert_eq!(crate::tui::layout::log_sources_width(100, 40), 25);
        assert_eq!(crate::tui::layout::log_sources_width(160, 40), 28);
        assert_eq!(crate::tui::layout::log_sources_width(80, 3), 15);
    }

    #[test]
    fn wrapped_long_lines_still_follow_to_the_newest() {
        let mut app = app_with_logs();
        let long: Vec<String> = (0..30)
            .map(|i| format!("2026-11-23T09:01:{i:02}Z INFO {} END-{i}", "x".repeat(150)))
            .collect();
        feed(
            &mut app,
            0,
            &long.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        update(&mut app, key('w'));
        assert!(app.logs.wrap && app.logs.follow);
        let screen = render(&app);
        // The newest line's end is on screen, on the last row of the pane.
        assert!(screen.contains("END-29"), "{screen}");
        let rows: Vec<&str> = screen.lines().collect();
        let last_row = rows[rows.len() - 3];
        assert!(last_row.contains("END-29"), "{screen}");
        // Nothing is cut at the border: the newest line's rows together hold all of it.
        let xs: usize = rows[rows.len() - 5..rows.len() - 2]
            .iter()
            .map(|r| r.matches('x').count())
            .sum();
        assert_eq!(xs, 150, "{screen}");
    }

    #[test]
    fn a_filter_that_hides_every_line_says_so_and_how_to_undo_it() {
        let mut app = app_with_logs();
        // worker has a WARN and an INFO line: at ≥ERROR nothing is left.
        update(&mut app, code(KeyCode::Right));
        assert_eq!(app.logs.sel, 1);
        update(&mut app, key('l'));
        assert!(shown(&app).is_empty());
        let screen = render(&app);
        assert!(
            screen.contains("no message at ERROR or above in 2 lines"),
            "{screen}"
        );
        assert!(
            screen.contains("press l to cycle back to all levels"),
            "{screen}"
        );
        // With lines to show, the note is gone.
        update(&mut app, code(KeyCode::Left));
        assert!(!render(&app).contains("no message at"));
        // A source with no line yet says it waits for them.
        update(
            &mut app,
            Msg::Log(LogEvent::Added {
                id: 2,
                source: LogSource::file("empty", "/var/log/empty.log"),
            }),
        );
        update(&mut app, code(KeyCode::Right));
        update(&mut app, code(KeyCode::Right));
        assert_eq!(app.logs.sel, 2);
        let screen = render(&app);
        assert!(screen.contains("no lines yet"), "{screen}");
        // Wrapping shows in the title.
        update(&mut app, key('w'));
        assert!(app.logs.wrap);
        assert!(render(&app).contains("· wrap"));
    }

    #[test]
    fn level_filter_error_jumps_merge_and_timestamps() {
        let mut app = app_with_logs();
        update(&mut app, key('l'));
        assert_eq!(shown(&app).len(), 4, "ERROR only");
        update(&mut app, key('l'));
        update(&mut app, key('l'));
        update(&mut app, key('l'));
        update(&mut app, key('l'));
        assert_eq!(shown(&app).len(), 40, "back to all");
        // The newest error first (on the bottom screen already), then the one before it.
        update(&mut app, key('E'));
        assert_eq!(app.logs.cursor, Some(33));
        update(&mut app, key('E'));
        assert!(!app.logs.follow, "jumping to an earlier error pauses");
        let screen = render(&app);
        assert!(screen.contains("ERROR request 23"), "{screen}");
        update(&mut app, key('e'));
        assert!(render(&app).contains("ERROR request 33"));
        update(&mut app, key('F'));
        update(&mut app, key('m'));
        let merged = shown(&app);
        assert_eq!(merged.len(), 42);
        assert_eq!(
            merged[6], "2026-11-23T09:00:05.5Z WARN worker slow",
            "merged by time: {merged:?}"
        );
        assert_eq!(merged[32], "2026-11-23T09:00:30.5Z INFO worker done");
        update(&mut app, key('t'));
        let screen = render(&app);
        assert!(
            screen.contains("worker INFO worker done") && !screen.contains("09:00:30.5Z"),
            "{screen}"
        );
        insta::assert_snapshot!("logs_merged_no_timestamps", render_styled(&app));
        let (cmds, _) = update(&mut app, key('s'));
        assert!(
            matches!(&cmds[..], [Cmd::SaveLog { name, lines }] if name == "merged" && lines.len() == 42)
        );
    }

    #[test]
    fn the_ring_buffer_is_bounded() {
        let mut app = app_with_logs();
        app.logs.max_lines = 100;
        let many: Vec<String> = (0..250).map(|i| format!("flood {i}")).collect();
        feed(
            &mut app,
            0,
            &many.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(app.logs.sources[0].lines.len(), 100);
        assert_eq!(app.logs.sources[0].lines.back().unwrap().text, "flood 249");
    }

    #[test]
    fn snapshot_logs_tab() {
        let mut app = app_with_logs();
        update(
            &mut app,
            Msg::Log(LogEvent::Tail {
                id: 0,
                event: TailEvent::Note("app.log was rotated; following the new file".into()),
            }),
        );
        insta::assert_snapshot!("logs_follow", render_styled(&app));
    }

    /// Feeds lines the way a source's tailer parses them (format detection, multi-line).
    fn feed_parsed(app: &mut crate::tui::app::App, id: usize, lines: &[&str]) {
        let lines = crate::logs::multiline::Parser::default().parse_batch(lines);
        update(
            app,
            Msg::Log(LogEvent::Tail {
                id,
                event: TailEvent::Lines(lines),
            }),
        );
    }

    fn one_source(lines: &[&str]) -> crate::tui::app::App {
        let mut app = fixture::app((100, 20));
        update(&mut app, key('4'));
        update(
            &mut app,
            Msg::Log(LogEvent::Added {
                id: 0,
                source: LogSource::file("api", "/var/log/api.log"),
            }),
        );
        feed_parsed(&mut app, 0, lines);
        app
    }

    const TRACE: &[&str] = &[
        "2026-11-23 10:00:00,001 INFO [main] c.e.Api - started",
        "2026-11-23 10:00:01,123 ERROR [main] c.e.Api - request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.Api.handle(Api.java:42)",
        "Stack trace:",
        "2026-11-23 10:00:02,000 INFO [main] c.e.Api - next",
    ];

    #[test]
    fn a_stack_trace_is_filtered_searched_and_folded_with_its_message() {
        let mut app = one_source(TRACE);
        // The ERROR filter keeps the trace under its error line.
        update(&mut app, key('l'));
        assert_eq!(shown(&app).len(), 4, "{:?}", shown(&app));
        assert!(shown(&app)[1].contains("boom"));
        update(&mut app, key('l'));
        update(&mut app, key('l'));
        update(&mut app, key('l'));
        update(&mut app, key('l'));
        // A search matching one line of the message shows the whole message.
        update(&mut app, key('/'));
        for c in "Api.java".chars() {
            update(&mut app, key(c));
        }
        update(&mut app, code(KeyCode::Enter));
        update(&mut app, key('&'));
        assert_eq!(shown(&app).len(), 4, "{:?}", shown(&app));
        update(&mut app, code(KeyCode::Esc));
        // Folded: one row per message, with the count of hidden lines.
        update(&mut app, key('z'));
        assert_eq!(shown(&app).len(), 3);
        let screen = render(&app);
        assert!(screen.contains("request failed  [+3 lines, z]"), "{screen}");
        update(&mut app, key('z'));
        assert_eq!(shown(&app).len(), 6);
        // "Stack trace:" is no TRACE line: it is part of the error.
        let l = &app.logs.sources[0].lines[4];
        assert!(l.cont && l.level == Some(crate::logs::Level::Error));
    }

    #[test]
    fn e_jumps_to_error_messages_not_to_their_trace_lines() {
        let mut app = one_source(TRACE);
        update(&mut app, key('E'));
        assert_eq!(app.logs.cursor, Some(1));
        update(&mut app, key('E'));
        assert_eq!(app.logs.cursor, Some(1), "no earlier error");
    }

    #[test]
    fn merge_places_a_source_without_timestamps_by_arrival() {
        let mut app = app_with_logs();
        update(
            &mut app,
            Msg::Log(LogEvent::Added {
                id: 2,
                source: LogSource::file("plain", "/var/log/plain.log"),
            }),
        );
        feed_parsed(&mut app, 2, &["no time 1", "no time 2"]);
        update(&mut app, key('m'));
        let merged = shown(&app);
        assert_eq!(merged.len(), 44);
        // Read now, after the timestamped lines of November 23rd: not ahead of them.
        assert_eq!(&merged[42..], ["no time 1", "no time 2"], "{merged:?}");
        assert!(merged[0].starts_with("2026-11-23T09:00:00Z"));
    }

    #[test]
    fn pretty_json_and_format_switch() {
        let mut app = one_source(&[
            r#"{"time":"2026-11-23T10:00:01Z","level":"error","msg":"boom","ctx":{"id":7}}"#,
        ]);
        assert!(render(&app).contains("· json "));
        update(&mut app, key('J'));
        let screen = render(&app);
        assert!(screen.contains(r#""level": "error","#), "{screen}");
        assert!(screen.contains(r#""id": 7"#), "{screen}");
        update(&mut app, key('J'));
        // `f` chooses the next format; the lines are read again with it.
        update(&mut app, key('f'));
        assert!(render(&app).contains("· json "));
        update(&mut app, key('f'));
        assert!(render(&app).contains("· logfmt "), "{}", render(&app));
        assert_eq!(
            app.logs.sources[0].lines[0].level,
            Some(crate::logs::Level::Error),
            "JSON lines stay JSON"
        );
        let n = crate::logs::format::all().len();
        for _ in 0..n - 1 {
            update(&mut app, key('f'));
        }
        assert!(render(&app).contains("· plain "), "{}", render(&app));
        update(&mut app, key('f'));
        assert!(render(&app).contains("· json "), "detected again");
    }

    #[test]
    fn match_list_opens_a_match_far_outside_the_ring_buffer_and_goes_back() {
        // A real file larger than the ring buffer, searched by the real task.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let text: String = (1..=300_000)
            .map(|i| format!("2026-11-23T10:00:00Z INFO request {i} ok\n"))
            .collect();
        std::fs::write(&path, text).unwrap();
        let mut app = fixture::app((100, 20));
        update(&mut app, key('4'));
        update(
            &mut app,
            Msg::Log(LogEvent::Added {
                id: 0,
                source: LogSource::file("big", path.display().to_string()),
            }),
        );
        feed_parsed(
            &mut app,
            0,
            &["2026-11-23T10:00:00Z INFO request 300000 ok"],
        );
        app.logs.max_lines = 100;
        update(&mut app, key('/'));
        for c in r"request 1\d ok".chars() {
            update(&mut app, key(c));
        }
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        let [
            Cmd::SearchFile {
                spec,
                pattern,
                generation,
            },
        ] = &cmds[..]
        else {
            panic!("{cmds:?}")
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let cancel = std::sync::atomic::AtomicBool::new(false);
        crate::tui::tabs::logs::search_task(spec, pattern, *generation, &cancel, &tx);
        drop(tx);
        while let Ok(msg) = rx.try_recv() {
            update(&mut app, msg);
        }
        let fs = app.logs.file_search.clone().unwrap();
        assert!(
            fs.finished && fs.matches == 10 && fs.hits.len() == 10,
            "{fs:?}"
        );
        update(&mut app, key('M'));
        let screen = render(&app);
        assert!(
            screen.contains("10 matching lines") && screen.contains("request 10 ok"),
            "{screen}"
        );
        update(&mut app, key('j'));
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        let [
            Cmd::ReadContext {
                spec,
                offset,
                generation,
            },
        ] = &cmds[..]
        else {
            panic!("{cmds:?}")
        };
        update(
            &mut app,
            Msg::MatchContext {
                generation: *generation,
                result: crate::tui::tabs::logs::context_task(spec, *offset),
            },
        );
        let screen = render(&app);
        assert!(
            screen.contains("       11 2026-11-23T10:00:00Z INFO request 11 ok")
                && screen.contains("       10 2026-11-23T10:00:00Z INFO request 10 ok")
                && screen.contains("match 2 of 10"),
            "{screen}"
        );
        // Back to the list, then to the log, the search still there.
        update(&mut app, code(KeyCode::Esc));
        assert!(render(&app).contains("Enter opens in the file"));
        update(&mut app, code(KeyCode::Esc));
        assert!(app.logs.match_view.is_none() && app.logs.regex.is_some());
    }

    /// A line as a tailer would give it, with its fields chosen by the test.
    fn line(
        text: String,
        ts: Option<i64>,
        level: Option<crate::logs::Level>,
        cont: bool,
        seen: i64,
    ) -> LogLine {
        let at = |s: i64| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        LogLine {
            text,
            ansi: None,
            level,
            ts: ts.map(at),
            ts_len: 0,
            cont,
            seen: at(seen),
        }
    }

    /// Whether line `i` of source `s` shows, read from the lines: its message (the line at
    /// or before it that is not a continuation, to the next such line) passes the level by
    /// its head and the search by any of its lines; folded, only heads show.
    fn shows_naive(logs: &super::super::tabs::logs::LogsState, s: usize, i: usize) -> bool {
        let lines = &logs.sources[s].lines;
        let head = (0..=i).rev().find(|&k| k == 0 || !lines[k].cont).unwrap();
        let end = (i + 1..lines.len())
            .find(|&k| !lines[k].cont)
            .unwrap_or(lines.len());
        let level_ok = logs
            .min_level
            .is_none_or(|min| lines[head].level.is_some_and(|l| l <= min));
        let match_ok = !logs.only_matching
            || logs
                .regex
                .as_ref()
                .is_none_or(|r| lines.range(head..end).any(|l| r.is_match(&l.text)));
        level_ok && match_ok && (!logs.folded || i == head)
    }

    /// The visible rows are cached and updated as lines arrive (and drop out of a full ring
    /// buffer); after every step they equal rows built from scratch, whatever the filters,
    /// folding, merging, search and selection: timestamps out of order, lines without any,
    /// continuation lines arriving in a later batch, sources that get their first timestamp
    /// late. The per-line flags agree with the filters read straight from the lines, and a
    /// filter toggle never reads the lines again.
    #[test]
    fn cached_log_rows_equal_a_rebuild_after_every_change() {
        use crate::logs::Level;
        let mut app = fixture::app((100, 20));
        update(&mut app, key('4'));
        app.logs.max_lines = 60;
        for id in 0..5 {
            update(
                &mut app,
                Msg::Log(LogEvent::Added {
                    id,
                    source: LogSource::file(format!("s{id}"), format!("/var/log/s{id}.log")),
                }),
            );
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut clock = [0i64; 5];
        let mut n = 0;
        let mut incremental_steps = 0;
        let mut filter_steps = 0;
        for step in 0..600 {
            let before = app.logs.rows.rebuilds();
            let mut fed = false;
            let what = rnd(20);
            match what {
                0 => app.logs.merged = !app.logs.merged,
                1 => app.logs.folded = !app.logs.folded,
                2 => {
                    app.logs.min_level =
                        [None, Some(Level::Error), Some(Level::Warn)][rnd(3) as usize]
                }
                3 => app.logs.only_matching = !app.logs.only_matching,
                4 => app.logs.sel = rnd(5) as usize,
                5 => {
                    app.logs.regex = ["7", "1", ""][rnd(3) as usize]
                        .chars()
                        .next()
                        .map(|c| super::super::tabs::logs::smart_regex(&c.to_string()).unwrap())
                }
                _ => {
                    let id = rnd(5) as usize;
                    let mut batch = Vec::new();
                    for _ in 0..rnd(12) {
                        n += 1;
                        // Source 4 has no timestamps until step 300; source 3 goes back
                        // in time now and then.
                        let ts = match id {
                            4 if step < 300 => None,
                            _ if rnd(5) == 0 => None,
                            3 if rnd(4) == 0 => Some(clock[3] - 30),
                            _ => Some(clock[id]),
                        };
                        clock[id] += rnd(3) as i64;
                        let cont = ts.is_none() && rnd(2) == 0;
                        let level = [
                            Some(Level::Info),
                            Some(Level::Warn),
                            Some(Level::Error),
                            None,
                        ][rnd(4) as usize];
                        batch.push(line(format!("line {n}"), ts, level, cont, step));
                    }
                    update(
                        &mut app,
                        Msg::Log(LogEvent::Tail {
                            id,
                            event: TailEvent::Lines(batch),
                        }),
                    );
                    fed = true;
                }
            }
            let cached = app.logs.visible().to_vec();
            let fresh = super::super::tabs::logs::rows::RowsCache::default()
                .get(&app.logs)
                .to_vec();
            assert_eq!(cached, fresh, "step {step}");
            // The filters applied to every line in order, from the lines themselves.
            let mut unfiltered = app.logs.clone();
            unfiltered.min_level = None;
            unfiltered.only_matching = false;
            unfiltered.folded = false;
            let mut naive = unfiltered.visible().to_vec();
            naive.retain(|&(s, i)| shows_naive(&app.logs, s, i));
            assert_eq!(cached, naive, "step {step}");
            if fed && app.logs.rows.rebuilds() == before {
                incremental_steps += 1;
            }
            if (1..=3).contains(&what) {
                assert_eq!(app.logs.rows.rebuilds(), before, "step {step}");
                filter_steps += 1;
            }
        }
        assert!(filter_steps > 50, "{filter_steps}");
        // Most new lines were added without a rebuild, overflowing the ring buffer too.
        assert!(incremental_steps > 200, "{incremental_steps}");
        assert!(app.logs.sources.iter().all(|s| s.dropped > 0));
    }

    /// Keys and frames read the cached rows; new lines extend them; a filter filters them;
    /// only a change of which lines are in order (merge, source, search) rebuilds them.
    #[test]
    fn keys_and_new_lines_do_not_rebuild_the_log_rows() {
        let mut app = app_with_logs();
        update(&mut app, key('m'));
        let _ = render(&app);
        let built = app.logs.rows.rebuilds();
        for c in ['k', 'k', 'j', 'G', 'k'] {
            update(&mut app, key(c));
            let _ = render(&app);
        }
        feed(&mut app, 1, &["2026-11-23T09:00:41Z INFO worker late"]);
        let _ = render(&app);
        assert_eq!(app.logs.rows.rebuilds(), built);
        assert_eq!(
            shown(&app).last().map(String::as_str),
            Some("2026-11-23T09:00:41Z INFO worker late")
        );
        // A filter is one pass over the rows' flags, not a rebuild; moving is neither.
        let passes = app.logs.rows.filter_passes();
        update(&mut app, key('l'));
        let _ = render(&app);
        assert_eq!(app.logs.rows.rebuilds(), built);
        assert_eq!(app.logs.rows.filter_passes(), passes + 1);
        assert!(
            shown(&app).iter().all(|l| l.contains("ERROR")),
            "{:?}",
            shown(&app)
        );
        update(&mut app, key('k'));
        let _ = render(&app);
        assert_eq!(app.logs.rows.filter_passes(), passes + 1);
        // A new search is matched against every line once: a rebuild.
        for c in "/worker".chars() {
            update(&mut app, key(c));
        }
        update(&mut app, code(KeyCode::Enter));
        let _ = render(&app);
        assert_eq!(app.logs.rows.rebuilds(), built + 1);
    }
}

#[test]
fn hostile_file_names_errors_and_reasons_are_drawn_inert() {
    let mut app = fixture::app((160, 48));
    let evil = "testops_export_17_\u{202e}vsc.exe_2026-11-23_09-00-00.csv";
    update(
        &mut app,
        Msg::Service(Event::ExportDir(DirListing {
            files: vec![ExportFile {
                path: PathBuf::from("/srv/exports").join(evil),
                name: ExportName::parse(evil).unwrap(),
                size: 1,
                modified: None,
            }],
            total_bytes: 1,
            at: fixture::now(),
        })),
    );
    let osc = "\x1b]52;c;aGk=\x07\x1b[2J";
    update(
        &mut app,
        Msg::Service(Event::Export(ExportEvent::Failed {
            run_id: 1,
            group: "API".into(),
            error: format!("bad {osc}"),
            attempts: 1,
        })),
    );
    update(
        &mut app,
        Msg::Service(Event::TestOpsHealth(Err(format!("down {osc}")))),
    );
    let screen = render(&app);
    for bad in ['\u{202e}', '\x1b', '\x07'] {
        assert!(
            !screen.contains(bad),
            "{bad:?} reached the screen:\n{screen}"
        );
    }
    assert!(screen.contains("\\u{202e}vsc.exe"), "{screen}");
}

/// Issue 9: a key the server would refuse is greyed with the server's reason and opens no
/// dialog; the keys it allows still work.
#[test]
fn keys_the_server_refuses_are_greyed_with_its_reason() {
    let mut app = fixture::app_on_releases((110, 24));
    let reason = "bob may not approve: needs approvers (@qa)";
    update(
        &mut app,
        Msg::Service(Event::Whoami {
            user: "bob".into(),
            refusals: [
                ("approve".to_string(), reason.to_string()),
                (
                    "reject".to_string(),
                    "bob may not reject: needs approvers (@qa)".to_string(),
                ),
            ]
            .into(),
        }),
    );
    let mut t = Terminal::new(TestBackend::new(110, 24)).unwrap();
    t.draw(|f| super::view::draw(f, &app)).unwrap();
    let buf = t.backend().buffer().clone();
    // The pane title's row, as cells (symbols may be several bytes).
    let (y, cells) = (0..24)
        .map(|y| {
            (
                y,
                (0..110)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<Vec<_>>(),
            )
        })
        .find(|(_, c)| c.concat().contains("Releases  a approve"))
        .expect("the Releases title");
    let row = cells.concat();
    let at = |text: &str| {
        let first = text.chars().next().unwrap().to_string();
        (0..cells.len())
            .find(|&i| cells[i..].concat().starts_with(text) && cells[i] == first)
            .unwrap_or_else(|| panic!("{text}: {row}")) as u16
    };
    let crossed = |x: u16| {
        buf[(x, y)]
            .modifier
            .contains(ratatui::style::Modifier::CROSSED_OUT)
    };
    assert!(crossed(at("a approve")) && crossed(at("x reject")), "{row}");
    assert!(!crossed(at("r roll back")), "{row}");

    update(&mut app, key('a'));
    assert!(app.overlay.is_none(), "{:?}", app.overlay);
    assert_eq!(app.toasts.last().unwrap().text, reason);
    update(&mut app, key('?'));
    assert!(render(&app).contains(reason));
    update(&mut app, key('?'));
    // Without refusals (local mode) the same key opens the dialog.
    app.refusals.clear();
    update(&mut app, key('a'));
    assert!(matches!(app.overlay, Some(Overlay::Approve { .. })));
}

#[test]
fn a_tampered_ledger_is_red_in_the_status_bar() {
    let mut app = fixture::app((100, 24));
    assert!(!render(&app).contains("ledger tampered"));
    update(
        &mut app,
        Msg::Service(Event::LedgerTampered("audit row 3".into())),
    );
    let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
    t.draw(|f| super::view::draw(f, &app)).unwrap();
    let buf = t.backend().buffer();
    let status: String = (0..100)
        .map(|x| buf[(x, 23)].symbol().to_string())
        .collect();
    let at = status
        .find("ledger tampered at audit row 3")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(buf[(at as u16 + 1, 23)].fg, ratatui::style::Color::Red);
}

/// Issue 10: the Releases tab shows what production really runs.
mod live {
    use std::sync::Arc;

    use super::*;
    use crate::release::Status;
    use crate::release::engine::{ServiceLive, TaskLive};
    use crate::tui::app::App;
    use crate::tui::msg::ReleaseDetail;

    fn services(app: &mut App, list: Vec<ServiceLive>) -> bool {
        update(app, Msg::Service(Event::Services(Arc::new(list)))).1
    }

    /// The (x, y) of the first cell of `text` on screen, and the buffer.
    fn find(app: &App, text: &str) -> (ratatui::buffer::Buffer, u16, u16) {
        let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
        t.draw(|f| crate::tui::view::draw(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        for y in 0..app.size.1 {
            let cells: Vec<String> = (0..app.size.0)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect();
            for x in 0..cells.len() {
                if cells[x..].concat().starts_with(text) {
                    return (buf, x as u16, y);
                }
            }
        }
        panic!("{text} not on screen:\n{}", render(app));
    }

    fn select(app: &mut App, id: i64) {
        update(app, key('g'));
        while app.releases.selected().map(|r| r.id) != Some(id) {
            let before = app.releases.sel;
            update(app, key('j'));
            assert_ne!(before, app.releases.sel, "release {id} not listed");
        }
    }

    /// Issue 10: a deploy queued in the server behind another of its service says so on its
    /// row and in the details; the server's progress lines grow the details' deploy log.
    #[test]
    fn a_queued_deploy_shows_what_it_waits_for_and_progress_lines_arrive_live() {
        use crate::server::hub::WorkInfo;
        let mut app = fixture::app_with_services((110, 30));
        if let Some(r) = app.releases.list.iter_mut().find(|r| r.id == 5) {
            r.status = Status::ManualTestPassed;
        }
        let work = |queued: bool| WorkInfo {
            id: 5,
            service: "web".into(),
            tag: "2.3.2".into(),
            rollback: false,
            queued,
            behind: queued.then(|| "2.4.0 (release 8)".into()),
        };
        let (_, changed) = update(&mut app, Msg::Service(Event::Work(vec![work(true)])));
        assert!(changed);
        select(&mut app, 5);
        give_detail(&mut app, 5, vec![]);
        let screen = render(&app);
        assert!(screen.contains("◌ queued after 2.4.0"), "{screen}");
        assert!(
            screen.contains("queued: this deploy waits behind 2.4.0 (release 8)"),
            "{screen}"
        );
        // Its turn: the row shows its status again.
        update(&mut app, Msg::Service(Event::Work(vec![work(false)])));
        assert!(!render(&app).contains("queued"), "{}", render(&app));
        let (_, changed) = update(
            &mut app,
            Msg::Service(Event::DeployProgress {
                id: 5,
                line: "web: 1/2 tasks on 2.3.2".into(),
            }),
        );
        assert!(changed);
        assert_eq!(
            app.releases.detail.as_ref().map(|d| d.log.clone()),
            Some(vec!["web: 1/2 tasks on 2.3.2".to_string()])
        );
        // Another release's lines do not touch what is shown.
        let (_, changed) = update(
            &mut app,
            Msg::Service(Event::DeployProgress {
                id: 9,
                line: "x".into(),
            }),
        );
        assert!(!changed);
        // Many lines keep only the newest.
        for i in 0..(crate::tui::tabs::releases::LOG_LINES + 5) {
            update(
                &mut app,
                Msg::Service(Event::DeployProgress {
                    id: 5,
                    line: format!("line {i}"),
                }),
            );
        }
        let log = &app.releases.detail.as_ref().unwrap().log;
        assert_eq!(log.len(), crate::tui::tabs::releases::LOG_LINES);
        assert_eq!(
            log.last().map(String::as_str),
            Some(format!("line {}", crate::tui::tabs::releases::LOG_LINES + 4).as_str())
        );
    }

    fn give_detail(app: &mut App, id: i64, audit: Vec<crate::release::AuditEntry>) {
        give(
            app,
            ReleaseDetail {
                id,
                audit,
                log: vec![],
                targets: vec![target("v1.3.2")],
            },
        );
    }

    #[test]
    fn services_lead_with_their_live_line_drift_in_yellow_and_the_selected_services_tasks() {
        let mut app = fixture::app_with_services((100, 30));
        let screen = render(&app);
        for line in [
            "▸ api (prod_api)  running v1.4.0  2/2  ✔  since 11-22 10:00",
            "  web  running 2.3.1  2/2  ✔  since 11-23 08:15",
            "  worker (prod_worker)  paused 0.9.2  1/2  ✖  since 11-22 14:02",
            "  update paused: update paused due to failure or early termination of task",
        ] {
            assert!(screen.contains(line), "{line}\n{screen}");
        }
        // The drift line is yellow, the unhealthy mark red, the healthy one green.
        let (buf, x, y) = find(
            &app,
            "drift: engine runs 2.3.1, ledger says 2.3.0, since 11-23 08:15",
        );
        assert_eq!(buf[(x, y)].fg, ratatui::style::Color::Yellow);
        let (buf, x, y) = find(&app, "✖  since 11-22 14:02");
        assert_eq!(buf[(x, y)].fg, ratatui::style::Color::Red);
        let (buf, x, y) = find(&app, "✔  since 11-22 10:00");
        assert_eq!(buf[(x, y)].fg, ratatui::style::Color::Green);
        // api's release is selected: its tasks, with node and health.
        assert!(screen.contains("tasks · api (prod_api)"), "{screen}");
        assert!(
            screen.contains("✔ 1 running v1.4.0 node1 healthy"),
            "{screen}"
        );
        assert!(screen.contains("· 1 shutdown v1.3.2 node1"), "{screen}");
        // The failed release of worker: the failed task's error and exit code.
        select(&mut app, 7);
        let screen = render(&app);
        assert!(screen.contains("tasks · worker (prod_worker)"), "{screen}");
        assert!(screen.contains("✖ 2 failed 0.9.2 node2"), "{screen}");
        assert!(
            screen.contains("task: non-zero exit (1) (exit code 1)"),
            "{screen}"
        );
        // The selected release's service is marked.
        assert!(screen.contains("▸ worker (prod_worker)"), "{screen}");
        assert!(!screen.contains("▸ api"), "{screen}");
    }

    #[test]
    fn an_engine_that_does_not_answer_says_unknown_with_its_error_and_no_secret() {
        let mut app = fixture::app_on_releases((100, 30));
        app.releases.engine_watch = true;
        // Before the first read: said so, not "no live state".
        assert!(render(&app).contains("api  reading the engine…"));
        let error =
            "cannot reach the Docker engine: tcp://ops:hunter2@10.0.0.5:2376 \x1b[2J refused";
        services(
            &mut app,
            vec![ServiceLive::unreachable("api", "prod_api", error.into())],
        );
        let screen = render(&app);
        assert!(
            screen.contains("api (prod_api)  unknown: cannot reach the Docker engine"),
            "{screen}"
        );
        assert!(
            !screen.contains("hunter2") && !screen.contains('\x1b'),
            "{screen}"
        );
        // The approve dialog says the engine's truth: unknown, not the ledger's v1.4.0.
        update(&mut app, key('a'));
        let screen = render(&app);
        assert!(screen.contains("now  unknown: cannot reach"), "{screen}");
        assert!(!screen.contains("now  api:v1.4.0"), "{screen}");
        assert!(!screen.contains("hunter2"), "{screen}");
    }

    #[test]
    fn a_rollout_shows_task_by_task_as_the_engine_reports_it() {
        let mut app = fixture::app_with_services((100, 30));
        let task = |slot: u64, tag: &str, state: &str, desired: &str| TaskLive {
            id: format!("task{slot}{tag}"),
            slot: Some(slot),
            node: format!("node{slot}"),
            tag: tag.into(),
            state: state.into(),
            desired_state: desired.into(),
            ..Default::default()
        };
        let api = |update: &str, running: u64, tasks: Vec<TaskLive>| {
            let mut list = fixture::services();
            list[0].update_state = update.into();
            list[0].image = "registry/api:v1.5.0".into();
            list[0].tag = "v1.5.0".into();
            list[0].running = running;
            list[0].tasks = tasks;
            list
        };
        // Slot 1 starts v1.5.0 while slot 2 still runs v1.4.0.
        assert!(services(
            &mut app,
            api(
                "updating",
                0,
                vec![
                    task(1, "v1.5.0", "starting", "running"),
                    task(1, "v1.4.0", "shutdown", "shutdown"),
                    task(2, "v1.4.0", "running", "running"),
                ],
            ),
        ));
        let screen = render(&app);
        assert!(
            screen.contains("api (prod_api)  updating v1.5.0  0/2  ✖"),
            "{screen}"
        );
        assert!(
            screen.contains("updating 0/2 · update updating"),
            "{screen}"
        );
        assert!(screen.contains("⟳ 1 starting v1.5.0 node1"), "{screen}");
        assert!(screen.contains("✔ 2 running v1.4.0 node2"), "{screen}");
        // Slot 1 runs; slot 2 moves.
        services(
            &mut app,
            api(
                "updating",
                1,
                vec![
                    task(1, "v1.5.0", "running", "running"),
                    task(2, "v1.5.0", "preparing", "running"),
                    task(2, "v1.4.0", "shutdown", "shutdown"),
                ],
            ),
        );
        let screen = render(&app);
        assert!(screen.contains("✔ 1 running v1.5.0 node1"), "{screen}");
        assert!(screen.contains("⟳ 2 preparing v1.5.0 node2"), "{screen}");
        // Done.
        let done = api(
            "completed",
            2,
            vec![
                task(1, "v1.5.0", "running", "running"),
                task(2, "v1.5.0", "running", "running"),
            ],
        );
        services(&mut app, done.clone());
        let screen = render(&app);
        assert!(
            screen.contains("api (prod_api)  running v1.5.0  2/2  ✔"),
            "{screen}"
        );
        assert!(!screen.contains("⟳"), "{screen}");
        // The same state again changes nothing: no redraw.
        assert!(!services(&mut app, done));
    }

    #[test]
    fn dialogs_show_what_the_engine_runs_not_what_the_ledger_says() {
        let mut app = fixture::app_with_services((100, 30));
        // Someone ran v1.3.9 by hand: the ledger still says v1.4.0.
        let mut list = fixture::services();
        list[0].image = "registry/api:v1.3.9".into();
        list[0].tag = "v1.3.9".into();
        services(&mut app, list);
        update(&mut app, key('a'));
        let screen = render(&app);
        assert!(
            screen.contains("now  registry/api:v1.3.9  running 2/2 ✔"),
            "{screen}"
        );
        assert!(screen.contains("new  api:v1.5.0"), "{screen}");
        assert!(!screen.contains("v1.4.0 (the ledger's"), "{screen}");
        // The engine moves while the dialog is open: the dialog follows.
        let mut list = fixture::services();
        list[0].image = "registry/api:v1.4.1".into();
        services(&mut app, list);
        assert!(render(&app).contains("now  registry/api:v1.4.1"));
        update(&mut app, code(KeyCode::Esc));
        // The rollback confirm too, with the Swarm name accepted.
        select(&mut app, 6);
        give_detail(&mut app, 6, vec![]);
        update(&mut app, key('r'));
        update(&mut app, code(KeyCode::Enter));
        let screen = render(&app);
        assert!(screen.contains("now  registry/api:v1.4.1"), "{screen}");
        assert!(
            screen.contains("Type api (or prod_api) to confirm"),
            "{screen}"
        );
    }

    fn with_approved(size: (u16, u16)) -> App {
        let mut app = fixture::app_with_services(size);
        let mut list = fixture::releases();
        // web 2.4.0 approved; its deploy waits in the server's queue.
        list[1].status = Status::ManualTestPassed;
        update(&mut app, Msg::Service(Event::Releases(list)));
        app
    }

    #[test]
    fn d_deploys_an_approved_release_after_y() {
        let mut app = with_approved((100, 30));
        // Awaiting approval: not yet.
        select(&mut app, 9);
        let (cmds, _) = update(&mut app, key('d'));
        assert!(app.overlay.is_none() && cmds.iter().all(|c| !matches!(c, Cmd::Deploy { .. })));
        assert!(
            app.toasts
                .last()
                .unwrap()
                .text
                .contains("only approved releases (manual_test_passed) can be deployed")
        );
        select(&mut app, 8);
        update(&mut app, key('d'));
        assert!(matches!(app.overlay, Some(Overlay::Deploy { id: 8, .. })));
        let screen = render(&app);
        assert!(screen.contains("Deploy release 8?"), "{screen}");
        assert!(screen.contains("now  registry/web:2.3.1"), "{screen}");
        assert!(screen.contains("new  web:2.4.0"), "{screen}");
        // Anything but y cancels.
        let (cmds, _) = update(&mut app, key('n'));
        assert!(cmds.is_empty() && app.overlay.is_none());
        update(&mut app, key('d'));
        let (cmds, _) = update(&mut app, key('y'));
        assert_eq!(
            cmds,
            [Cmd::Deploy {
                id: 8,
                service: "web".into(),
                tag: "2.4.0".into()
            }]
        );
    }

    #[test]
    fn c_is_refused_in_local_mode_and_cancels_through_a_server_after_y() {
        let mut app = with_approved((110, 30));
        select(&mut app, 8);
        // Local mode: no queue. The key is greyed, says why, and opens nothing.
        let (buf, x, y) = find(&app, "c cancel");
        assert!(
            buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::CROSSED_OUT)
        );
        let (cmds, _) = update(&mut app, key('c'));
        assert!(cmds.is_empty() && app.overlay.is_none());
        assert!(
            app.toasts
                .last()
                .unwrap()
                .text
                .starts_with("local mode has no deploy queue")
        );
        update(&mut app, key('?'));
        assert!(render(&app).contains("local mode has no deploy queue"));
        update(&mut app, key('?'));
        // With a server.
        app.remote = true;
        let (buf, x, y) = find(&app, "c cancel");
        assert!(
            !buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::CROSSED_OUT)
        );
        select(&mut app, 9);
        update(&mut app, key('c'));
        assert!(app.overlay.is_none());
        assert!(app.toasts.last().unwrap().text.contains("only a queued"));
        select(&mut app, 8);
        update(&mut app, key('c'));
        assert!(render(&app).contains("Drop the queued deploy of web 2.4.0"));
        let (cmds, _) = update(&mut app, key('y'));
        assert_eq!(cmds, [Cmd::CancelDeploy { id: 8 }]);
        // A deploying release: the dialog says it stops and rolls back.
        let mut list = fixture::releases();
        list[1].status = Status::Deploying;
        update(&mut app, Msg::Service(Event::Releases(list)));
        update(&mut app, key('c'));
        assert!(
            render(&app).contains("the server stops it"),
            "{}",
            render(&app)
        );
        update(&mut app, code(KeyCode::Esc));
        // The server refuses us deploy and cancel: greyed, with its reason, no dialog.
        update(
            &mut app,
            Msg::Service(Event::Whoami {
                user: "bob".into(),
                refusals: [
                    (
                        "deploy".to_string(),
                        "bob may not deploy: needs deployers (@ops)".to_string(),
                    ),
                    (
                        "cancel".to_string(),
                        "bob may not cancel deploys: needs deployers (@ops)".to_string(),
                    ),
                ]
                .into(),
            }),
        );
        for (k, reason) in [
            ('c', "bob may not cancel deploys"),
            ('d', "bob may not deploy: needs deployers (@ops)"),
        ] {
            let (cmds, _) = update(&mut app, key(k));
            assert!(cmds.is_empty() && app.overlay.is_none(), "{k}");
            assert!(app.toasts.last().unwrap().text.starts_with(reason), "{k}");
        }
        let (buf, x, y) = find(&app, "d deploy");
        assert!(
            buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::CROSSED_OUT)
        );
    }

    #[test]
    fn brackets_jump_between_services() {
        let mut app = fixture::app_with_services((100, 30));
        // api 0..3, web 3..5, worker 5..6
        let sel = |app: &mut App, k: char| {
            update(app, key(k));
            app.releases.sel
        };
        assert_eq!(sel(&mut app, ']'), 3);
        assert_eq!(sel(&mut app, ']'), 5);
        assert_eq!(sel(&mut app, ']'), 5, "the last service stays");
        assert_eq!(sel(&mut app, '['), 3);
        assert_eq!(sel(&mut app, 'j'), 4);
        assert_eq!(
            sel(&mut app, '['),
            3,
            "first to the service's own first release"
        );
        assert_eq!(sel(&mut app, '['), 0);
        assert_eq!(sel(&mut app, '['), 0);
    }

    fn long_audit() -> Vec<crate::release::AuditEntry> {
        let mut audit = super::failed_audit();
        let reason = format!(
            "{} END-OF-REASON",
            "the health check of https://api.internal/health answered 503 three times;".repeat(6)
        );
        audit[1].note = Some(reason);
        audit
    }

    #[test]
    fn j_and_k_scroll_the_details_to_the_whole_failure_reason() {
        let mut app = fixture::app_with_services((80, 24));
        select(&mut app, 7);
        give_detail(&mut app, 7, long_audit());
        let screen = render(&app);
        assert!(!screen.contains("END-OF-REASON"), "{screen}");
        assert!(
            screen.contains("J/K 1-"),
            "the pane says it scrolls: {screen}"
        );
        let mut last = 0;
        for _ in 0..40 {
            update(&mut app, key('J'));
            if app.releases.scroll.1 == last {
                break;
            }
            last = app.releases.scroll.1;
        }
        assert!(last > 0);
        let screen = render(&app);
        assert!(screen.contains("END-OF-REASON"), "{screen}");
        // Back up to the top, past the newer entries, each kind told apart.
        let mut seen = String::new();
        for _ in 0..40 {
            seen.push_str(&render(&app));
            update(&mut app, key('K'));
        }
        for t in [
            "refused by bob",
            "automatic rollback",
            "production_failed by alice",
        ] {
            assert!(seen.contains(t), "{t}");
        }
        assert_eq!(app.releases.scroll, (7, 0), "K stops at the top");
        // Another release starts at its top.
        update(&mut app, key('J'));
        update(&mut app, key('k'));
        assert_eq!(
            app.releases
                .detail_scroll(app.releases.selected().unwrap().id),
            0
        );
    }

    #[test]
    fn enter_shows_every_note_in_full_and_scrolls() {
        let mut app = fixture::app_with_services((80, 24));
        select(&mut app, 7);
        give_detail(&mut app, 7, long_audit());
        update(&mut app, code(KeyCode::Enter));
        assert!(matches!(
            app.overlay,
            Some(Overlay::ReleaseInfo { id: 7, top: 0 })
        ));
        let screen = render(&app);
        assert!(screen.contains("initiated by github"), "{screen}");
        update(&mut app, key('G'));
        let Some(Overlay::ReleaseInfo { top, .. }) = app.overlay else {
            panic!("{:?}", app.overlay)
        };
        assert!(top > 0);
        let screen = render(&app);
        assert!(screen.contains("deploy log"), "{screen}");
        // An empty deploy log says so under its heading.
        assert!(
            screen.contains("none: this release has not been deployed"),
            "{screen}"
        );
        // j past the end stays at the end; g goes back.
        update(&mut app, key('j'));
        assert!(matches!(app.overlay, Some(Overlay::ReleaseInfo { top: t, .. }) if t == top));
        let mut seen = false;
        for _ in 0..40 {
            seen |= render(&app).contains("END-OF-REASON");
            update(&mut app, key('k'));
        }
        assert!(seen);
        update(&mut app, key('g'));
        assert!(matches!(
            app.overlay,
            Some(Overlay::ReleaseInfo { top: 0, .. })
        ));
        // `?` opens the help over the details; Esc comes back to them, scrolled as left.
        update(&mut app, key('G'));
        update(&mut app, key('?'));
        assert!(
            matches!(&app.overlay, Some(Overlay::Help { back: Some(b), .. }) if matches!(**b, Overlay::ReleaseInfo { id: 7, top: t } if t == top)),
            "{:?}",
            app.overlay
        );
        let screen = render(&app);
        assert!(screen.contains("Keys"), "{screen}");
        update(&mut app, code(KeyCode::Esc));
        assert!(matches!(app.overlay, Some(Overlay::ReleaseInfo { id: 7, top: t }) if t == top));
        update(&mut app, code(KeyCode::Esc));
        assert!(app.overlay.is_none());
    }

    #[test]
    fn the_list_order_is_kept_current_and_follows_the_engines_services() {
        let mut app = fixture::app_on_releases((100, 30));
        let check = |app: &App, why: &str| {
            assert_eq!(
                app.releases.order,
                app.releases
                    .compute(app.filters.get(&Tab::Releases).map(String::as_str)),
                "stale order after {why}"
            );
        };
        check(&app, "the first list");
        let names = |app: &App| -> Vec<String> {
            app.releases
                .order
                .groups
                .iter()
                .map(|g| g.service.clone())
                .collect()
        };
        assert_eq!(names(&app), ["api", "web", "worker"]);
        // The engine's order (the server's config) leads.
        let mut list = fixture::services();
        list.reverse();
        update(&mut app, key('j'));
        services(&mut app, list);
        check(&app, "new services");
        assert_eq!(names(&app), ["worker", "web", "api"]);
        assert_eq!(
            app.releases.selected().unwrap().id,
            6,
            "the selection stays on its release"
        );
        for c in "web".chars() {
            update(&mut app, key('/'));
            update(&mut app, key(c));
            update(&mut app, code(KeyCode::Enter));
        }
        check(&app, "a filter");
        assert_eq!(
            names(&app),
            ["web"],
            "a filter hides the services it leaves empty"
        );
        update(&mut app, code(KeyCode::Esc));
        check(&app, "clearing the filter");
        assert_eq!(names(&app).len(), 3);
        let mut releases = fixture::releases();
        releases.remove(0);
        update(&mut app, Msg::Service(Event::Releases(releases)));
        check(&app, "a new release list");
        // A configured service with no release yet shows, with its live state.
        let mut app = fixture::app((100, 30));
        app.tab = Tab::Releases;
        app.releases.service_names = vec!["billing".into()];
        crate::tui::app::reorder_releases(&mut app);
        let mut billing = fixture::services()[0].clone();
        billing.service = "billing".into();
        billing.swarm_service = "billing".into();
        services(&mut app, vec![billing]);
        let screen = render(&app);
        assert!(
            screen.contains("billing  running v1.4.0  2/2  ✔"),
            "{screen}"
        );
        assert!(screen.contains("no releases yet"), "{screen}");
    }

    /// Every Releases state at sizes down to 20x5: no panic, and what fits says what it can.
    #[test]
    fn small_terminals_do_not_panic_on_the_releases_tab() {
        let states: &[fn(&mut App)] = &[
            |_| {},
            |a| {
                update(a, key('a'));
            },
            |a| {
                select(a, 8);
                update(a, key('d'));
            },
            |a| {
                a.remote = true;
                select(a, 8);
                update(a, key('c'));
            },
            |a| {
                select(a, 6);
                give_detail(a, 6, vec![]);
                update(a, key('r'));
                update(a, code(KeyCode::Enter));
            },
            |a| {
                select(a, 7);
                give_detail(a, 7, long_audit());
                update(a, key('J'));
                update(a, code(KeyCode::Enter));
                update(a, key('G'));
            },
            |a| {
                update(a, key('?'));
            },
        ];
        for size in [
            (20, 5),
            (1, 1),
            (50, 12),
            (51, 13),
            (64, 16),
            (80, 24),
            (120, 35),
        ] {
            for (n, state) in states.iter().enumerate() {
                let mut app = with_approved(size);
                state(&mut app);
                update(&mut app, Msg::Resize(size.0, size.1));
                let screen = render(&app);
                if size.0 < 50 || size.1 < 12 {
                    assert!(
                        screen.replace('\n', "").starts_with("terminal too small")
                            || size == (1, 1),
                        "{size:?} {n}:\n{screen}"
                    );
                } else {
                    assert!(screen.contains("Releases"), "{size:?} {n}:\n{screen}");
                }
            }
        }
    }
}

/// Local mode's feed: each state the engine watch publishes becomes `Event::Services`, the
/// current one first; it ends on cancel.
#[tokio::test]
async fn local_mode_forwards_every_live_state_until_cancelled() {
    use std::sync::Arc;
    let (watch_tx, watch_rx) = tokio::sync::watch::channel(Arc::new(Vec::new()));
    let (tx, mut rx) = crate::events::channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = super::forward_services(watch_rx, tx, cancel.clone());
    let next = async |rx: &mut crate::events::EventRx| match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        rx.recv(),
    )
    .await
    {
        Ok(Some(Event::Services(s))) => s,
        other => panic!("{other:?}"),
    };
    assert!(next(&mut rx).await.is_empty());
    watch_tx.send(Arc::new(fixture::services())).unwrap();
    let got = next(&mut rx).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].tasks[1].error, "task: non-zero exit (1)");
    // Into the dashboard: the tasks of the worker's failed release.
    let mut app = fixture::app_on_releases((100, 30));
    update(&mut app, Msg::Service(Event::Services(got)));
    update(&mut app, key('G'));
    assert!(render(&app).contains("task: non-zero exit (1) (exit code 1)"));
    cancel.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the feed ends on cancel")
        .unwrap();
    // Nothing after the end, even when the engine moves.
    let _ = watch_tx.send(Arc::new(Vec::new()));
    assert!(rx.try_recv().is_err());
}

/// The request protocol: each reply carries its request's generation; closing a view
/// cancels its work; a reply to a superseded or cancelled request changes nothing.
mod requests {
    use super::*;
    use crate::export::preview::PreviewBatch;
    use crate::tui::msg::ReleaseDetail;
    use crate::tui::request::Req;

    fn batch(n: usize, done: bool) -> PreviewBatch {
        PreviewBatch {
            header: Some(vec!["allure_id".into()]),
            rows: (0..n).map(|i| vec![i.to_string()]).collect(),
            done,
            error: None,
        }
    }

    #[test]
    fn closing_a_preview_cancels_its_reader_and_its_late_rows_are_dropped() {
        let mut app = fixture::app((80, 24));
        update(&mut app, key('l'));
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        let [
            Cmd::Preview {
                generation: first, ..
            },
        ] = cmds[..]
        else {
            panic!("{cmds:?}")
        };
        update(
            &mut app,
            Msg::Preview {
                generation: first,
                batch: batch(10, false),
            },
        );
        let (cmds, _) = update(&mut app, code(KeyCode::Esc));
        assert!(app.overlay.is_none());
        assert_eq!(cmds, [Cmd::Cancel(Req::Preview)]);
        // Open it again: a batch the first reader sent before it stopped is stale.
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        let [
            Cmd::Preview {
                generation: second, ..
            },
        ] = cmds[..]
        else {
            panic!("{cmds:?}")
        };
        assert_ne!(first, second);
        let (_, changed) = update(
            &mut app,
            Msg::Preview {
                generation: first,
                batch: batch(5, false),
            },
        );
        assert!(!changed);
        update(
            &mut app,
            Msg::Preview {
                generation: second,
                batch: batch(3, true),
            },
        );
        let Some(Overlay::Preview(p)) = &app.overlay else {
            panic!()
        };
        assert_eq!(p.rows.len(), 3);
        // Read to the end: closing it now has nothing to cancel.
        let (cmds, _) = update(&mut app, code(KeyCode::Esc));
        assert!(cmds.is_empty(), "{cmds:?}");
    }

    #[test]
    fn a_diff_reply_for_a_closed_diff_is_dropped() {
        let mut app = fixture::app((80, 24));
        update(&mut app, key('l'));
        let (cmds, _) = update(&mut app, key('D'));
        let [Cmd::Diff { generation, .. }] = cmds[..] else {
            panic!("{cmds:?}")
        };
        let (cmds, _) = update(&mut app, code(KeyCode::Esc));
        assert_eq!(cmds, [Cmd::Cancel(Req::Diff)]);
        // Open the preview; the closed diff's answer must not land anywhere.
        update(&mut app, code(KeyCode::Enter));
        let (_, changed) = update(
            &mut app,
            Msg::Diff {
                generation,
                result: Err("late".into()),
            },
        );
        assert!(!changed);
        assert!(matches!(app.overlay, Some(Overlay::Preview(_))));
    }

    #[test]
    fn a_deploy_reloads_its_details_only_after_the_last_reload_answered() {
        let mut app = fixture::app_on_releases((80, 24));
        let mut list = fixture::releases();
        for r in &mut list {
            if r.id == 6 {
                r.status = crate::release::Status::Deploying;
            }
        }
        update(&mut app, Msg::Service(crate::events::Event::Releases(list)));
        let loads = |cmds: &[Cmd]| {
            cmds.iter()
                .filter(|c| matches!(c, Cmd::LoadRelease { id: 6, .. }))
                .count()
        };
        while app.releases.selected().map(|r| r.id) != Some(6) {
            update(&mut app, key('j'));
        }
        assert!(app.requests.in_flight_for(Req::Release, 6));
        let mut now = app.now;
        for _ in 0..5 {
            now += chrono::Duration::seconds(1);
            let (cmds, _) = update(&mut app, Msg::Tick(now));
            assert_eq!(loads(&cmds), 0, "{cmds:?}");
        }
        give(
            &mut app,
            ReleaseDetail {
                id: 6,
                ..Default::default()
            },
        );
        now += chrono::Duration::seconds(1);
        let (cmds, _) = update(&mut app, Msg::Tick(now));
        assert_eq!(loads(&cmds), 1, "{cmds:?}");
    }

    #[test]
    fn details_of_a_release_no_longer_selected_are_dropped() {
        let mut app = fixture::app_on_releases((80, 24));
        let (cmds, _) = update(&mut app, key('j'));
        let [
            Cmd::LoadRelease {
                id: 6, generation, ..
            },
        ] = cmds[..]
        else {
            panic!("{cmds:?}")
        };
        update(&mut app, key('j'));
        let (_, changed) = update(
            &mut app,
            Msg::ReleaseDetail {
                generation,
                detail: ReleaseDetail {
                    id: 6,
                    targets: vec![target("v1.3.2")],
                    ..Default::default()
                },
            },
        );
        assert!(!changed);
        assert!(app.releases.detail.is_none());
    }

    #[test]
    fn an_older_history_reply_does_not_overwrite_a_newer_request() {
        let mut app = fixture::app((80, 24));
        let old = crate::tui::app::load_history(&mut app);
        let new = crate::tui::app::load_history(&mut app);
        let (Cmd::LoadHistory { generation: old }, Cmd::LoadHistory { generation: new }) =
            (old, new)
        else {
            panic!()
        };
        let (_, changed) = update(
            &mut app,
            Msg::History {
                generation: old,
                history: Default::default(),
            },
        );
        assert!(!changed);
        assert!(
            !app.schedules.jobs[0].runs.is_empty(),
            "the fixture's runs were kept"
        );
        let (_, changed) = update(
            &mut app,
            Msg::History {
                generation: new,
                history: Default::default(),
            },
        );
        assert!(changed);
    }
}

/// Issue 13: the keyboard and mouse habits of k9s.
mod habits {
    use super::*;

    fn click(x: u16, y: u16) -> Msg {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: x,
            row: y,
            modifiers: KeyModifiers::NONE,
        })
    }

    fn status_line(app: &crate::tui::app::App) -> String {
        render(app).lines().last().unwrap_or_default().to_string()
    }

    #[test]
    fn slash_opens_a_visible_empty_prompt_on_every_tab_and_esc_clears() {
        for tab in ['1', '2', '3'] {
            let mut app = fixture::app_on_releases((80, 24));
            update(&mut app, key(tab));
            update(&mut app, key('/'));
            type_text(&mut app, "api");
            update(&mut app, code(KeyCode::Enter));
            assert_eq!(app.filter(), "api");
            // A second `/` starts empty instead of appending to the old filter.
            update(&mut app, key('/'));
            assert_eq!(app.filter(), "");
            type_text(&mut app, "web");
            assert!(status_line(&app).starts_with("/web▏"), "{}", render(&app));
            assert_eq!(app.filter(), "web");
            update(&mut app, code(KeyCode::Esc));
            assert_eq!(app.filter(), "");
            assert!(!status_line(&app).contains("/web"));
        }
    }

    #[test]
    fn help_scrolls_at_80x24_and_esc_goes_back_to_what_was_open() {
        let mut app = fixture::app((80, 24));
        update(&mut app, key('?'));
        let first = render(&app);
        assert!(first.contains("Keys · Esc closes · 1-20/"), "{first}");
        assert!(!first.contains(":quit"), "{first}");
        update(&mut app, key('G'));
        let last = render(&app);
        assert!(last.contains(":quit"), "the last command shows: {last}");
        assert!(!last.contains("groups pane"), "scrolled: {last}");
        update(&mut app, key('g'));
        assert!(render(&app).contains("groups pane"));
        // Any other key does not close it; Esc does.
        update(&mut app, key('x'));
        assert!(app.overlay.is_some());
        update(&mut app, code(KeyCode::Esc));
        assert!(app.overlay.is_none());
        // Opened over a preview, Esc returns to the preview, a second Esc closes it.
        update(&mut app, key('l'));
        update(&mut app, code(KeyCode::Enter));
        assert!(matches!(app.overlay, Some(Overlay::Preview(_))));
        update(&mut app, key('?'));
        assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
        update(&mut app, code(KeyCode::Esc));
        assert!(matches!(app.overlay, Some(Overlay::Preview(_))));
        update(&mut app, code(KeyCode::Esc));
        assert!(app.overlay.is_none());
    }

    #[test]
    fn the_help_is_as_wide_as_its_rows_and_wraps_what_the_screen_cannot_hold() {
        let long = "details: audit trail and deploy log (j/k/PgDn/PgUp/g/G scroll, Esc closes)";
        // At 120 columns the longest row fits on one line.
        let mut app = fixture::app_on_releases((120, 35));
        update(&mut app, key('?'));
        let wide = render(&app);
        assert!(wide.contains(long), "{wide}");
        // At 60 columns it wraps: every word is there, on two lines, nothing cut.
        let mut app = fixture::app_on_releases((60, 40));
        update(&mut app, key('?'));
        let narrow = render(&app);
        assert!(!narrow.contains(long), "{narrow}");
        let at = narrow
            .lines()
            .position(|l| l.contains("details: audit trail"))
            .unwrap_or_else(|| panic!("{narrow}"));
        let both: String = narrow.lines().skip(at).take(2).collect();
        let words: Vec<&str> = both.split(['│', ' ']).filter(|w| !w.is_empty()).collect();
        assert!(words.join(" ").contains(long), "{narrow}");
        // G scrolls to the last wrapped line: the last command shows, wrapped or not.
        update(&mut app, key('G'));
        let last = render(&app);
        assert!(last.contains(":quit"), "{last}");
        let title = last
            .lines()
            .find(|l| l.contains("Keys · Esc closes"))
            .unwrap_or_default();
        let (shown, total) = title
            .split_once(" · j/k")
            .and_then(|(a, _)| a.rsplit_once(' '))
            .and_then(|(_, n)| n.split_once('/'))
            .unwrap_or_else(|| panic!("{title}"));
        assert_eq!(shown.split('-').nth(1), Some(total), "{title}");
    }

    #[test]
    fn colon_runs_commands_with_completion_history_and_errors_in_place() {
        let mut app = fixture::app_on_releases((100, 30));
        update(&mut app, key('1'));
        update(&mut app, key(':'));
        assert!(status_line(&app).starts_with(":▏"), "{}", render(&app));
        type_text(&mut app, "rel");
        update(&mut app, code(KeyCode::Tab));
        assert!(status_line(&app).starts_with(":releases ▏"));
        type_text(&mut app, "w");
        update(&mut app, code(KeyCode::Tab));
        // Two services start with w: both are offered.
        assert!(
            status_line(&app).contains("web  worker"),
            "{}",
            render(&app)
        );
        type_text(&mut app, "e");
        update(&mut app, code(KeyCode::Tab));
        assert!(status_line(&app).starts_with(":releases web ▏"));
        update(&mut app, code(KeyCode::Enter));
        assert_eq!(app.tab, Tab::Releases);
        assert!(app.command.is_none());
        assert_eq!(
            app.releases.selected().map(|r| r.service_name.as_str()),
            Some("web")
        );
        // An unknown command keeps the line open and says why.
        update(&mut app, key(':'));
        type_text(&mut app, "bogus");
        update(&mut app, code(KeyCode::Enter));
        assert!(app.command.is_some());
        assert!(
            status_line(&app).contains("no command `bogus`"),
            "{}",
            render(&app)
        );
        update(&mut app, code(KeyCode::Esc));
        assert!(app.command.is_none());
        // Straight to the typed confirmation of a rollback to a named tag.
        update(&mut app, key(':'));
        type_text(&mut app, "rollback 6 v1.3.2");
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert!(
            cmds.iter()
                .any(|c| matches!(c, Cmd::LoadRelease { id: 6, .. })),
            "{cmds:?}"
        );
        assert!(
            matches!(&app.overlay, Some(Overlay::RollbackConfirm { id: 6, to, .. }) if to == "v1.3.2"),
            "{:?}",
            app.overlay
        );
        update(&mut app, code(KeyCode::Esc));
        // Up recalls the last command.
        update(&mut app, key(':'));
        update(&mut app, code(KeyCode::Up));
        assert!(
            status_line(&app).starts_with(":rollback 6 v1.3.2▏"),
            "{}",
            render(&app)
        );
        update(&mut app, code(KeyCode::Esc));
        // What a command cannot do is said on the line, which stays open to fix it: a
        // release that cannot be rolled back, a tag it never ran, an unknown service.
        let error_of = |app: &crate::tui::App| app.command.as_ref().and_then(|c| c.error.clone());
        for (line, says) in [
            ("rollback 9 v1.3.2", "only deployed or production_failed"),
            ("rollback 6 v9.9.9", "`v9.9.9` never ran on"),
            ("releases nosuch", "no service nosuch"),
            ("logs nosuch", "no log source nosuch"),
            ("reject 6", "only releases awaiting approval"),
        ] {
            let tab = app.tab;
            update(&mut app, key(':'));
            type_text(&mut app, line);
            update(&mut app, code(KeyCode::Enter));
            assert!(app.overlay.is_none(), "{line}");
            assert_eq!(app.tab, tab, "{line} switched the tab");
            let error = error_of(&app).unwrap_or_default();
            assert!(error.contains(says), "{line}: {error:?}");
            assert!(status_line(&app).contains(says), "{line}: {}", render(&app));
            update(&mut app, code(KeyCode::Esc));
        }
        // A long line keeps its error in view.
        update(&mut app, key(':'));
        type_text(&mut app, &format!("nosuch{}", "y".repeat(300)));
        update(&mut app, code(KeyCode::Enter));
        assert!(status_line(&app).contains("no command"), "{}", render(&app));
        update(&mut app, code(KeyCode::Esc));
        update(&mut app, key(':'));
        type_text(&mut app, "q");
        update(&mut app, code(KeyCode::Enter));
        assert!(app.quit);
    }

    #[test]
    fn a_long_command_scrolls_so_its_end_stays_in_view() {
        let mut app = fixture::app((50, 12));
        update(&mut app, key(':'));
        let long = format!("filter {}", "x".repeat(80));
        type_text(&mut app, &long);
        let line = status_line(&app);
        assert!(line.starts_with('…') || line.starts_with(":…"), "{line}");
        assert!(line.trim_end().ends_with("xx▏"), "{line}");
    }

    #[test]
    fn the_delete_question_keeps_its_keys_in_view_for_a_long_path() {
        let mut app = fixture::app((80, 24));
        let long = PathBuf::from(format!("/srv/{}/exports/file.csv", "deep/".repeat(30)));
        app.overlay = Some(Overlay::ConfirmDelete(long));
        let screen = render(&app);
        assert!(screen.contains("y delete · n/Esc keep"), "{screen}");
        assert!(screen.contains("file.csv?"), "{screen}");
    }

    #[test]
    fn a_files_filter_says_how_many_match_and_when_none_do() {
        let mut app = fixture::app((100, 24));
        let all = app.exports.files.len();
        update(&mut app, key('/'));
        type_text(&mut app, "API");
        update(&mut app, code(KeyCode::Enter));
        let shown = app.exports.visible_files(&app.filters).len();
        assert!(shown > 0 && shown < all, "{shown} of {all}");
        let screen = render(&app);
        assert!(
            screen.contains(&format!("Files: {shown} of {all}")),
            "{screen}"
        );
        update(&mut app, key('/'));
        type_text(&mut app, "nothing-is-called-this");
        let screen = render(&app);
        assert!(screen.contains("no file matches the filter"), "{screen}");
    }

    #[test]
    fn no_groups_says_how_to_add_one() {
        let mut app = fixture::app((80, 24));
        app.exports.groups.clear();
        let screen = render(&app);
        assert!(
            screen.contains("no groups to export: add [[testops.groups]]"),
            "{screen}"
        );
    }

    #[test]
    fn the_quit_question_follows_the_export_it_warns_about() {
        let mut app = fixture::app((80, 24));
        update(
            &mut app,
            progress(
                "API",
                Stage::Downloading {
                    bytes: 1,
                    total: None,
                },
            ),
        );
        update(&mut app, key('q'));
        assert!(render(&app).contains("An export is running"));
        app.exports.groups[0].status = GroupStatus::Idle;
        let screen = render(&app);
        assert!(!screen.contains("An export is running"), "{screen}");
        assert!(screen.contains("nothing is lost by quitting"), "{screen}");
    }

    #[test]
    fn readonly_hides_every_action_and_refuses_it() {
        let mut app = fixture::app_on_releases((120, 30));
        app.readonly = true;
        update(&mut app, Msg::Tick(fixture::now()));
        let screen = render(&app);
        assert!(!screen.contains("a approve"), "{screen}");
        assert!(screen.contains(" read-only "), "{screen}");
        // What waits is counted, but not as this user's to do.
        assert!(app.waiting > 0);
        let status = status_line(&app);
        assert!(
            status.contains(&format!("{} awaiting approval", app.waiting)),
            "{status}"
        );
        assert!(!status.contains("waiting on you"), "{status}");
        update(&mut app, key('a'));
        assert!(app.overlay.is_none());
        assert!(
            app.toasts
                .last()
                .is_some_and(|t| t.text.starts_with("read-only")),
            "{:?}",
            app.toasts
        );
        update(&mut app, key('1'));
        app.toasts.clear();
        let files = render(&app);
        assert!(
            files.contains("Enter preview · D diff · o pager"),
            "{files}"
        );
        assert!(!files.contains("d delete"), "{files}");
        // A title left with no keys has no trailing gap.
        assert!(files.contains("┌ Groups ─"), "{files}");
        let (cmds, _) = update(&mut app, key('E'));
        assert!(cmds.is_empty(), "{cmds:?}");
        update(&mut app, key('?'));
        let help = render(&app);
        assert!(!help.contains("export all groups now"), "{help}");
        assert!(help.contains("groups pane"), "{help}");
    }

    #[test]
    fn a_click_selects_release_rows_and_log_sources() {
        let mut app = fixture::app_on_releases((100, 30));
        // Line 0 of the list is the api header at y 3 (tab bar, border, column header);
        // api's releases follow: #9 at y 4, #6 at y 5.
        let (cmds, changed) = update(&mut app, click(10, 5));
        assert!(changed);
        assert_eq!(
            app.releases.selected().map(|r| r.id),
            Some(6),
            "{}",
            render(&app)
        );
        assert!(
            cmds.iter()
                .any(|c| matches!(c, Cmd::LoadRelease { id: 6, .. })),
            "{cmds:?}"
        );
        // A service's header selects its first release.
        let web_y = render(&app)
            .lines()
            .position(|l| l.contains("  web "))
            .expect("web header") as u16;
        update(&mut app, click(10, web_y));
        assert_eq!(
            app.releases.selected().map(|r| r.service_name.as_str()),
            Some("web")
        );
        // Logs: the second source.
        update(&mut app, key('4'));
        for (id, name) in [(0, "app"), (1, "worker")] {
            update(
                &mut app,
                Msg::Log(crate::logs::LogEvent::Added {
                    id,
                    source: crate::logs::LogSource::file(name, format!("/var/log/{name}.log")),
                }),
            );
        }
        update(&mut app, click(3, 3));
        assert_eq!(app.logs.sel, 1);
        assert_eq!(app.logs.sources[app.logs.sel].name, "worker");
    }

    #[test]
    fn an_empty_reject_reason_says_so_and_a_long_one_scrolls() {
        let mut app = fixture::app_on_releases((80, 24));
        update(&mut app, key('x'));
        let (cmds, _) = update(&mut app, code(KeyCode::Enter));
        assert!(cmds.is_empty());
        assert!(
            render(&app).contains("a rejection needs a reason"),
            "{}",
            render(&app)
        );
        let long = format!("{}END", "word ".repeat(30));
        type_text(&mut app, &long);
        let screen = render(&app);
        assert!(!screen.contains("a rejection needs a reason"), "{screen}");
        assert!(
            screen.contains("wordEND▏") || screen.contains("word END▏"),
            "{screen}"
        );
        assert!(screen.contains("> …"), "the start scrolled out: {screen}");
    }

    #[test]
    fn the_github_column_shows_the_run_id_even_with_a_link() {
        let mut app = fixture::app_on_releases((120, 30));
        let mut list = fixture::releases();
        list[0].github_action_link =
            Some("https://github.com/team/api/actions/runs/7777777777".into());
        list[1].github_run_id = None;
        list[1].github_action_link = Some("https://github.com/team/web/actions/runs/4242/".into());
        update(&mut app, Msg::Service(Event::Releases(list)));
        let screen = render(&app);
        assert!(screen.contains("run 9009"), "{screen}");
        assert!(screen.contains("run 4242"), "{screen}");
        assert!(!screen.contains("https://"), "{screen}");
    }

    #[test]
    fn testops_failing_clears_when_an_export_saves_and_ages_follow_the_clock() {
        let mut app = fixture::app_on_releases((100, 30));
        update(
            &mut app,
            Msg::Service(Event::TestOpsHealth(Err("connection refused".into()))),
        );
        assert!(
            status_line(&app).contains("TestOps"),
            "{}",
            status_line(&app)
        );
        assert!(app.testops.as_ref().is_some_and(|t| t.is_err()));
        update(
            &mut app,
            Msg::Service(Event::Export(ExportEvent::Saved {
                run_id: 1,
                group: "API".into(),
                path: PathBuf::from("/tmp/x/API_2026-11-23.csv"),
                rows: 10,
                bytes: 100,
                attempts: 1,
            })),
        );
        assert_eq!(app.testops, Some(Ok(())));
        // Release #9 is 2 h old; an hour later the list says 3h.
        assert!(render(&app).contains(" 2h "), "{}", render(&app));
        let later = app.now + chrono::Duration::hours(1);
        let (_, changed) = update(&mut app, Msg::Tick(later));
        assert!(changed);
        assert!(render(&app).contains(" 3h "), "{}", render(&app));
    }

    /// Issue 13: themes change the colours by role; NO_COLOR still wins.
    #[test]
    fn themes_colour_by_role_and_no_color_wins() {
        use ratatui::style::Color;
        let fg_of = |app: &crate::tui::app::App, text: &str| -> Option<Color> {
            let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
            t.draw(|f| crate::tui::view::draw(f, app)).unwrap();
            let buf = t.backend().buffer().clone();
            for y in 0..buf.area.height {
                let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
                if let Some(i) = row.find(text) {
                    let x = row[..i].chars().count() as u16;
                    return buf[(x, y)].fg.into();
                }
            }
            panic!("{text} not on screen")
        };
        let mut app = fixture::app_on_releases((120, 30));
        // The ✔ of a deployed release is `ok`.
        assert_eq!(fg_of(&app, "✔ deployed"), Some(Color::Green));
        app.palette = crate::tui::theme::named("light").unwrap();
        assert_eq!(fg_of(&app, "✔ deployed"), Some(Color::Rgb(0, 0x6b, 0)));
        app.palette = crate::tui::theme::named("high-contrast").unwrap();
        assert_eq!(fg_of(&app, "✔ deployed"), Some(Color::LightGreen));
        app.color = false;
        assert_eq!(fg_of(&app, "✔ deployed"), Some(Color::Reset));
    }
}

/// Issue 13: the README's picture of each tab, drawn from the fixtures the snapshot tests
/// use. A picture that no longer matches the code fails here; `OPSDECK_UPDATE_PICTURES=1
/// cargo test --lib pictures` draws them again.
mod pictures {
    use super::*;
    use crate::logs::{LogEvent, LogLine, LogSource, TailEvent};

    fn picture(app: &crate::tui::app::App) -> String {
        let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
        t.draw(|f| super::super::view::draw(f, app)).unwrap();
        super::super::svg::render(t.backend().buffer())
    }

    fn check(name: &str, app: &crate::tui::app::App) {
        let svg = picture(app);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("assets/tabs")
            .join(format!("{name}.svg"));
        if std::env::var_os("OPSDECK_UPDATE_PICTURES").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &svg).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == svg,
            "{} is stale: OPSDECK_UPDATE_PICTURES=1 cargo test --lib pictures",
            path.display()
        );
    }

    #[test]
    fn each_tab_has_a_current_picture() {
        let size = (120, 32);
        let mut exports = fixture::app(size);
        update(
            &mut exports,
            progress(
                "API",
                Stage::Downloading {
                    bytes: 1_200_000,
                    total: Some(3_000_000),
                },
            ),
        );
        check("exports", &exports);

        let mut schedules = fixture::app(size);
        update(&mut schedules, key('2'));
        check("schedules", &schedules);

        let mut releases = fixture::app_with_services(size);
        update(&mut releases, key('j'));
        check("releases", &releases);

        let mut logs = fixture::app(size);
        update(&mut logs, key('4'));
        for (id, name) in [(0, "api"), (1, "worker")] {
            update(
                &mut logs,
                Msg::Log(LogEvent::Added {
                    id,
                    source: LogSource::file(name, format!("/var/log/{name}.log")),
                }),
            );
        }
        let lines: Vec<LogLine> = (0..40)
            .map(|i| {
                let level = ["INFO", "INFO", "WARN", "INFO", "ERROR"][i % 5];
                LogLine::parse(
                    format!(
                        "2026-11-23T09:00:{i:02}Z {level} GET /v1/releases/{i} 200 in {}ms",
                        3 + i % 17
                    )
                    .as_bytes(),
                )
            })
            .collect();
        update(
            &mut logs,
            Msg::Log(LogEvent::Tail {
                id: 0,
                event: TailEvent::Lines(lines),
            }),
        );
        check("logs", &logs);
    }
}

#[test]
fn a_path_named_on_the_command_line_is_called_by_its_file_name_unless_that_is_taken() {
    let paths: Vec<String> = ["/a/app.log", "/b/app.log", "/c/web.log", "/d/opsdeck"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut taken = vec!["opsdeck".to_string()];
    let names: Vec<String> = super::path_sources(&paths, &mut taken)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["/a/app.log", "/b/app.log", "web.log", "/d/opsdeck"]);
    assert!(taken.contains(&"web.log".to_string()));
}

#[test]
fn without_testops_settings_the_status_bar_says_not_set_up_rather_than_failing() {
    let mut app = fixture::app((120, 24));
    app.lock = crate::tui::app::LockState::Off;
    // The probe still reports its reason; it is no failure here.
    update(
        &mut app,
        Msg::Service(Event::TestOpsHealth(Err(
            "testops.base_url or the token is not configured".into(),
        ))),
    );
    let screen = render(&app);
    let status = screen.lines().last().unwrap_or_default();
    assert!(status.contains("TestOps not set up"), "{status}");
    assert!(status.contains("no scheduler"), "{status}");
    assert!(!status.contains("failing"), "{status}");
    // One space between a separator and a field.
    assert!(!status.contains("│  "), "{status}");
    // Exporting says why it cannot, from the key, the job and the command line.
    for keys in ["E", "2r", ":export all\n"] {
        app.toasts.clear();
        for c in keys.chars() {
            let k = if c == '\n' {
                code(KeyCode::Enter)
            } else {
                key(c)
            };
            let (cmds, _) = update(&mut app, k);
            assert!(
                !cmds.iter().any(|c| matches!(c, Cmd::Export(_))),
                "{keys}: {cmds:?}"
            );
        }
        // A key toasts; the command line says it in place.
        let said = app
            .toasts
            .iter()
            .any(|t| t.text.starts_with("TestOps is not set up"))
            || render(&app).contains("TestOps is not set up");
        assert!(said, "{keys}: {:?}\n{}", app.toasts, render(&app));
        assert!(!app.exporting());
        update(&mut app, code(KeyCode::Esc));
        update(&mut app, key('1'));
    }
    update(&mut app, key('2'));
    let schedules = render(&app);
    assert!(schedules.contains("none: no scheduler"), "{schedules}");
    assert!(
        schedules.contains("none: TestOps is not set up"),
        "{schedules}"
    );
}

#[test]
fn export_names_a_group_once_however_often_it_is_typed() {
    let mut app = fixture::app((100, 30));
    update(&mut app, key(':'));
    type_text(&mut app, "export API UI API");
    let (cmds, _) = update(&mut app, code(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Export(g)] if g == &["API".to_string(), "UI".to_string()]),
        "{cmds:?}"
    );
}

#[test]
fn the_same_toast_twice_is_one_and_ampersand_without_a_search_says_so() {
    let mut app = fixture::app((100, 30));
    update(&mut app, key('4'));
    update(&mut app, key('&'));
    update(&mut app, key('&'));
    assert!(!app.logs.only_matching);
    assert_eq!(app.toasts.len(), 1, "{:?}", app.toasts);
    assert_eq!(app.toasts[0].text, "search first with /");
    let first_until = app.toasts[0].until;
    update(
        &mut app,
        Msg::Tick(fixture::now() + chrono::Duration::seconds(2)),
    );
    update(&mut app, key('&'));
    assert_eq!(app.toasts.len(), 1);
    assert!(
        app.toasts[0].until > first_until,
        "the repeat shows it longer"
    );
}

#[test]
fn a_command_with_words_it_does_not_read_is_refused_in_place() {
    let mut app = fixture::app((100, 30));
    for (line, said) in [
        ("q now", "`now` is too much: :quit takes nothing after it"),
        (
            "schedules extra",
            "`extra` is too much: :schedules takes nothing",
        ),
        (
            "rollback 5 v1.3.2 extra",
            "`extra` is too much: :rollback takes ID [TAG]",
        ),
    ] {
        update(&mut app, key(':'));
        type_text(&mut app, line);
        update(&mut app, code(KeyCode::Enter));
        assert!(!app.quit, "{line}");
        let screen = render(&app);
        assert!(screen.contains(said), "{line}: {screen}");
        update(&mut app, code(KeyCode::Esc));
    }
}
