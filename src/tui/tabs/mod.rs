//! The tabs as components: each owns its state, its part of `update` (actions already
//! resolved from keys, plus its messages) and its view. None imports `app.rs`: what a tab
//! may touch outside its own state comes in a [`Ctx`], and what it asks the effects to do
//! goes back as `Cmd`s.

pub mod exports;
pub mod logs;
pub mod releases;
pub mod schedules;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::msg::Level;
use super::popups::Overlay;
use super::request::Requests;
use super::tab::Tab;
use super::toast::Toast;

/// What a tab's `update` may use outside its own state: the terminal size, the time, the
/// active tab, the toasts, the requests in flight, the overlay (a tab opens its dialogs
/// there) and the tabs' filters.
pub struct Ctx<'a> {
    pub size: (u16, u16),
    pub now: DateTime<Utc>,
    /// The user's UTC offset, for local times.
    pub local: chrono::FixedOffset,
    pub tab: Tab,
    pub toasts: &'a mut Vec<Toast>,
    pub requests: &'a mut Requests,
    pub overlay: &'a mut Option<Overlay>,
    pub filters: &'a mut HashMap<Tab, String>,
}

/// Moves a selection among `len` rows by `delta` (clamped to the rows).
pub(crate) fn step(sel: &mut usize, len: usize, delta: i64) {
    let max = len.saturating_sub(1) as i64;
    *sel = (*sel as i64).saturating_add(delta).clamp(0, max) as usize;
}

/// The [`Ctx`] of an `App`, borrowing its shared fields only, so that a tab component
/// (another field) can be borrowed beside it: `app.logs.update(action, &mut ctx!(app))`.
macro_rules! ctx {
    ($app:expr) => {
        $crate::tui::tabs::Ctx {
            size: $app.size,
            now: $app.now,
            local: $app.local,
            tab: $app.tab,
            toasts: &mut $app.toasts,
            requests: &mut $app.requests,
            overlay: &mut $app.overlay,
            filters: &mut $app.filters,
        }
    };
}
pub(crate) use ctx;

impl Ctx<'_> {
    /// Shows a toast.
    pub fn toast(&mut self, level: Level, text: impl Into<String>) {
        super::toast::push(self.toasts, self.now, level, text);
    }
}
