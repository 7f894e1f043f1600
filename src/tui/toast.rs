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

/// Adds a toast shown from `now`; at most three are kept (the oldest leaves).
pub fn push(toasts: &mut Vec<Toast>, now: DateTime<Utc>, level: Level, text: impl Into<String>) {
    toasts.push(Toast {
        text: crate::sanitize::clean_max(&text.into(), 200),
        level,
        until: now + chrono::Duration::seconds(TOAST_SECS),
    });
    if toasts.len() > 3 {
        toasts.remove(0);
    }
}
