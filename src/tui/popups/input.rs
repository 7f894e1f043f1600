//! A one-line text input inside a dialog (a reject reason, a typed confirmation, a cron
//! expression): Enter submits, Esc cancels, any other key edits.

use crossterm::event::{KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

/// What a key did to the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// Enter, with the text trimmed.
    Submit(String),
    Cancel,
    Edited,
}

/// Applies `k` to `input`.
pub fn key(input: &mut Input, k: KeyEvent) -> Typed {
    match k.code {
        KeyCode::Esc => Typed::Cancel,
        KeyCode::Enter => Typed::Submit(input.value().trim().to_string()),
        _ => {
            input.handle_event(&crossterm::event::Event::Key(k));
            Typed::Edited
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    #[test]
    fn enter_submits_trimmed_esc_cancels_the_rest_edits() {
        let mut i = Input::default();
        for c in " why ".chars() {
            assert_eq!(
                key(&mut i, KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
                Typed::Edited
            );
        }
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(key(&mut i, enter), Typed::Submit("why".into()));
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(key(&mut i, esc), Typed::Cancel);
    }
}
