//! The diff of two exports: its scrolling keys.

use crossterm::event::{KeyCode, KeyEvent};

use super::{DiffView, Overlay};
use crate::tui::layout;

/// j/k, pages and g scroll; Esc or q close.
pub fn key(mut d: Box<DiffView>, size: (u16, u16), k: KeyEvent) -> Option<Overlay> {
    match k.code {
        KeyCode::Esc | KeyCode::Char('q') => None,
        KeyCode::Char('j') | KeyCode::Down => {
            d.top += 1;
            Some(Overlay::Diff(d))
        }
        KeyCode::Char('k') | KeyCode::Up => {
            d.top = d.top.saturating_sub(1);
            Some(Overlay::Diff(d))
        }
        KeyCode::PageDown => {
            d.top += layout::page_rows(size);
            Some(Overlay::Diff(d))
        }
        KeyCode::PageUp => {
            d.top = d.top.saturating_sub(layout::page_rows(size));
            Some(Overlay::Diff(d))
        }
        KeyCode::Char('g') => {
            d.top = 0;
            Some(Overlay::Diff(d))
        }
        _ => Some(Overlay::Diff(d)),
    }
}
