//! The CSV preview's keys (its view is in `view/overlays.rs`).

use crossterm::event::{KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::{Overlay, Preview};
use crate::tui::keymap::{Action, action_for};
use crate::tui::layout;
use crate::tui::tab::Scope;

/// Keys of the CSV preview: scrolling, columns, `/` search with n/N, `?` help.
pub fn key(mut p: Box<Preview>, size: (u16, u16), k: KeyEvent) -> Option<Overlay> {
    if let Some(input) = p.search_input.as_mut() {
        match k.code {
            KeyCode::Enter | KeyCode::Esc => {
                let search = if k.code == KeyCode::Enter {
                    input.value().to_string()
                } else {
                    String::new()
                };
                p.search_input = None;
                p.search = search;
                let needle = p.search.to_lowercase();
                p.matches = if needle.is_empty() {
                    vec![]
                } else {
                    (0..p.rows.len())
                        .filter(|&i| row_matches(&p.rows[i], &needle))
                        .collect()
                };
                jump_match(&mut p, true);
            }
            _ => {
                input.handle_event(&crossterm::event::Event::Key(k));
            }
        }
        return Some(Overlay::Preview(p));
    }
    let page = layout::page_rows(size).saturating_sub(2);
    let last = p.rows.len().saturating_sub(1);
    match action_for(Scope::Preview, &k) {
        Some(Action::Close) | Some(Action::Quit) => return None,
        Some(Action::Down) => p.top = (p.top + 1).min(last),
        Some(Action::Up) => p.top = p.top.saturating_sub(1),
        Some(Action::PageDown) => p.top = (p.top + page).min(last),
        Some(Action::PageUp) => p.top = p.top.saturating_sub(page),
        Some(Action::Top) => p.top = 0,
        Some(Action::Bottom) => p.top = last,
        Some(Action::Left) => p.first_col = p.first_col.saturating_sub(1),
        Some(Action::Right) => {
            p.first_col = (p.first_col + 1).min(p.header.len().saturating_sub(1))
        }
        Some(Action::Search) => p.search_input = Some(Input::default()),
        Some(Action::NextMatch) => jump_match(&mut p, true),
        Some(Action::PrevMatch) => jump_match(&mut p, false),
        Some(Action::Help) => {
            return Some(Overlay::Help {
                scope: Scope::Preview,
                top: 0,
                back: Some(Box::new(Overlay::Preview(p))),
            });
        }
        _ => {}
    }
    Some(Overlay::Preview(p))
}

/// Whether a preview row has a cell containing `needle` (lower case).
pub fn row_matches(row: &[String], needle: &str) -> bool {
    row.iter().any(|c| c.to_lowercase().contains(needle))
}

fn jump_match(p: &mut Preview, forward: bool) {
    let next = if forward {
        p.matches.iter().find(|&&m| m > p.top).or(p.matches.first())
    } else {
        p.matches
            .iter()
            .rev()
            .find(|&&m| m < p.top)
            .or(p.matches.last())
    };
    if let Some(&m) = next {
        p.top = m;
    }
}
