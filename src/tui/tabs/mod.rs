//! The tabs as components: each owns its state, its part of `update` (actions already
//! resolved from keys, plus its messages) and its view. None imports `app.rs`: what a tab
//! may touch outside its own state comes in a [`Ctx`], and what it asks the effects to do
//! goes back as `Cmd`s.

pub mod logs;

use chrono::{DateTime, Utc};

use super::msg::Level;
use super::request::Requests;
use super::toast::Toast;

/// What a tab's `update` may use outside its own state: the terminal size, the time, the
/// toasts and the requests in flight.
pub struct Ctx<'a> {
    pub size: (u16, u16),
    pub now: DateTime<Utc>,
    pub toasts: &'a mut Vec<Toast>,
    pub requests: &'a mut Requests,
}

impl Ctx<'_> {
    /// Shows a toast.
    pub fn toast(&mut self, level: Level, text: impl Into<String>) {
        super::toast::push(self.toasts, self.now, level, text);
    }
}
