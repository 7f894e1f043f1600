//! The yes/no dialogs (quit while exporting, delete a file): `y` confirms; n, Esc and
//! Enter cancel (Cancel is the default); any other key leaves it open.

use crossterm::event::{KeyCode, KeyEvent};

/// What a key says to a yes/no dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    /// Neither: the dialog stays.
    Open,
}

pub fn key(k: KeyEvent) -> Answer {
    match k.code {
        KeyCode::Char('y') => Answer::Yes,
        KeyCode::Char('n') | KeyCode::Esc | KeyCode::Enter => Answer::No,
        _ => Answer::Open,
    }
}
