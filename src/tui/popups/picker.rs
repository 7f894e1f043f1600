//! A list to choose one item from (the rollback targets): j/k and arrows move, g/G and
//! PgUp/PgDn jump, Enter chooses, Esc or q cancels; a list taller than its box scrolls with
//! the selection.

use std::ops::Range;

use crossterm::event::{KeyCode, KeyEvent};

/// What a key did to the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picked {
    Chosen(usize),
    Cancel,
    /// The selection now (maybe unchanged).
    At(usize),
}

/// Applies `k` to selection `sel` of `len` items, `page` of them visible.
pub fn key(sel: usize, len: usize, page: usize, k: KeyEvent) -> Picked {
    let last = len.saturating_sub(1);
    match k.code {
        KeyCode::Esc | KeyCode::Char('q') => Picked::Cancel,
        KeyCode::Enter if len > 0 => Picked::Chosen(sel.min(last)),
        KeyCode::Char('j') | KeyCode::Down => Picked::At((sel + 1).min(last)),
        KeyCode::Char('k') | KeyCode::Up => Picked::At(sel.saturating_sub(1)),
        KeyCode::PageDown => Picked::At((sel + page.max(1)).min(last)),
        KeyCode::PageUp => Picked::At(sel.saturating_sub(page.max(1))),
        KeyCode::Char('g') | KeyCode::Home => Picked::At(0),
        KeyCode::Char('G') | KeyCode::End => Picked::At(last),
        _ => Picked::At(sel),
    }
}

/// The items shown in `rows` lines so that `sel` is visible.
pub fn window(sel: usize, len: usize, rows: usize) -> Range<usize> {
    let rows = rows.max(1);
    let top = (sel + 1).saturating_sub(rows);
    top..(top + rows).min(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn k(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn moves_stay_in_bounds_and_the_window_follows() {
        assert_eq!(key(0, 3, 2, k(KeyCode::Up)), Picked::At(0));
        assert_eq!(key(2, 3, 2, k(KeyCode::Down)), Picked::At(2));
        assert_eq!(key(0, 30, 10, k(KeyCode::PageDown)), Picked::At(10));
        assert_eq!(key(5, 30, 10, k(KeyCode::Char('G'))), Picked::At(29));
        assert_eq!(key(4, 30, 10, k(KeyCode::Enter)), Picked::Chosen(4));
        assert_eq!(key(0, 0, 10, k(KeyCode::Enter)), Picked::At(0));
        assert_eq!(key(4, 30, 10, k(KeyCode::Char('q'))), Picked::Cancel);
        assert_eq!(window(0, 30, 10), 0..10);
        assert_eq!(window(29, 30, 10), 20..30);
        assert_eq!(window(1, 3, 10), 0..3);
    }
}
