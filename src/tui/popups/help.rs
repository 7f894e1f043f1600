//! The `?` help: its keys, its width and its rows wrapped to it. The rows come from
//! `app::help_rows` (the lines for this user: read-only hides the actions).

use crossterm::event::{KeyCode, KeyEvent};
use unicode_width::UnicodeWidthStr;

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
    let last = rows.saturating_sub(layout::overlay_rows_shown(size));
    let page = layout::overlay_rows_shown(size).max(1);
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

/// Columns of the key column (and the space after it).
pub const KEY_WIDTH: u16 = 11;

/// One drawn line of the help: a row's key and text, or the wrapped rest of its text (with
/// no key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpLine<'a> {
    pub row: &'a HelpRow,
    pub key: &'a str,
    pub text: String,
}

/// The popup's width on a screen `screen` columns wide: as wide as its longest row, within
/// the screen.
pub fn width(rows: &[HelpRow], screen: u16) -> u16 {
    let text = rows.iter().map(|r| r.text.width()).max().unwrap_or(0);
    let want = (KEY_WIDTH as usize + 1 + text + 2).max(40);
    (want.min(usize::from(u16::MAX)) as u16).min(screen)
}

/// The rows wrapped to a popup `width` columns wide: what the help draws and scrolls through.
/// The rest of a long text goes on lines of its own, indented, so nothing is cut.
pub fn lines(rows: &[HelpRow], width: u16) -> Vec<HelpLine<'_>> {
    let text_width = usize::from(width.saturating_sub(2 + KEY_WIDTH + 1)).max(8);
    rows.iter()
        .flat_map(|row| {
            crate::tui::view::wrap(&row.text, text_width, 2)
                .into_iter()
                .enumerate()
                .map(move |(i, text)| HelpLine {
                    row,
                    key: if i == 0 { row.key.as_str() } else { "" },
                    text,
                })
        })
        .collect()
}
