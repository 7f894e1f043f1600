//! The diff of two exports: its scrolling keys and its length.

use crossterm::event::{KeyCode, KeyEvent};

use super::{DiffView, Overlay};
use crate::tui::layout;

/// Lines the diff draws: the summary, then one per added, removed and changed case and one
/// per changed column (`view::diff`).
pub fn line_count(d: &DiffView) -> usize {
    match &d.result {
        Some(Ok(r)) => {
            1 + r.added.len()
                + r.removed.len()
                + r.changed.iter().map(|c| 1 + c.changes.len()).sum::<usize>()
        }
        _ => 1,
    }
}

/// j/k, pages, g/G scroll (G to the last page); Esc or q close; `?` opens the help over it.
pub fn key(mut d: Box<DiffView>, size: (u16, u16), k: KeyEvent) -> Option<Overlay> {
    let last = line_count(&d).saturating_sub(layout::overlay_rows_shown(size));
    let top = match k.code {
        KeyCode::Esc | KeyCode::Char('q') => return None,
        KeyCode::Char('?') => {
            return Some(Overlay::Help {
                scope: crate::tui::tab::Scope::Global,
                top: 0,
                back: Some(Box::new(Overlay::Diff(d))),
            });
        }
        KeyCode::Char('j') | KeyCode::Down => d.top + 1,
        KeyCode::Char('k') | KeyCode::Up => d.top.saturating_sub(1),
        KeyCode::PageDown | KeyCode::Char(' ') => d.top + layout::page_rows(size),
        KeyCode::PageUp => d.top.saturating_sub(layout::page_rows(size)),
        KeyCode::Char('g') | KeyCode::Home => 0,
        KeyCode::Char('G') | KeyCode::End => last,
        _ => d.top,
    };
    d.top = top.min(last);
    Some(Overlay::Diff(d))
}
