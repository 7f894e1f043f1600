//! Toasts: transient messages in the corner. App and the tabs push them through the same
//! function, so every toast is cleaned, timed and capped alike.

use chrono::{DateTime, Utc};

use super::msg::Level;

/// A transient message in the corner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub text: String,
    pub level: Level,
    pub until: DateTime<Utc>,
}

const TOAST_SECS: i64 = 4;

/// How long a toast of `chars` characters stays: 4 s, one more per 20 characters past the
/// first 40 (a long error needs reading), an error twice as long.
fn shown_for(chars: usize, level: Level) -> chrono::Duration {
    let secs = TOAST_SECS + (chars.saturating_sub(40) / 20) as i64;
    chrono::Duration::seconds(match level {
        Level::Error => secs * 2,
        Level::Info => secs,
    })
}

/// Adds a toast shown from `now`; at most three are kept (the oldest leaves).
pub fn push(toasts: &mut Vec<Toast>, now: DateTime<Utc>, level: Level, text: impl Into<String>) {
    let text = crate::sanitize::clean_max(&text.into(), 200);
    let until = now + shown_for(text.chars().count(), level);
    // The same message again (a key pressed four times) stays one toast, shown longer.
    if let Some(last) = toasts.last_mut()
        && last.text == text
        && last.level == level
    {
        last.until = until;
        return;
    }
    toasts.push(Toast { text, level, until });
    if toasts.len() > 3 {
        toasts.remove(0);
    }
}
