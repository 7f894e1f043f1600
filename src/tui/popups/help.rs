//! The `?` help's keys; `rows` (how many lines the help of a scope has) comes from
//! `app::help_rows` (the lines for this user: read-only hides the actions).

use crossterm::event::{KeyCode, KeyEvent};

use super::Overlay;
use crate::tui::layout;
use crate::tui::tab::Scope;

/// One line of the help: a key (or `:command`) and what it does; `greyed` when the server
/// would refuse it (its text is then the reason); a heading has no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpRow {
    pub key: String,
    pub text: String,
    pub greyed: bool,
}

/// `?`: j/k, pages, g/G scroll; Esc, q or `?` go back to what was open before.
pub fn key(
    scope: Scope,
    top: usize,
    back: Option<Box<Overlay>>,
    rows: usize,
    size: (u16, u16),
    k: KeyEvent,
) -> Option<Overlay> {
    let last = rows.saturating_sub(layout::help_rows_shown(size));
    let page = layout::help_rows_shown(size).max(1);
    let top = match k.code {
        KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') => return back.map(|b| *b),
        KeyCode::Char('j') | KeyCode::Down => top + 1,
        KeyCode::Char('k') | KeyCode::Up => top.saturating_sub(1),
        KeyCode::PageDown | KeyCode::Char(' ') => top + page,
        KeyCode::PageUp => top.saturating_sub(page),
        KeyCode::Char('g') | KeyCode::Home => 0,
        KeyCode::Char('G') | KeyCode::End => last,
        _ => top,
    };
    Some(Overlay::Help {
        scope,
        top: top.min(last),
        back,
    })
}
