//! Which popup covers the tab; the popups draw themselves (`popups/view.rs`, the Releases
//! tab's dialogs), the help from `app::help_rows`.

use ratatui::Frame;
use ratatui::layout::Rect;

use super::Theme;
use crate::tui::app::{App, Overlay};
use crate::tui::layout;
use crate::tui::popups::view::{confirm, diff, edit_cron, preview};
use crate::tui::tab::Scope;

pub(super) fn draw(f: &mut Frame, app: &App, theme: &Theme) {
    let (_, content, _) = layout::frame(app.size);
    match &app.overlay {
        None => {}
        Some(Overlay::Help { scope, top, .. }) => help(f, app, *scope, *top, theme, content),
        Some(Overlay::ConfirmQuit) => confirm(
            f,
            theme,
            content,
            " Quit? ",
            "An export is running. Quitting cancels it (no partial file is kept).",
            "y quit · n/Esc stay",
        ),
        Some(Overlay::ConfirmDelete(path)) => confirm(
            f,
            theme,
            content,
            " Delete file? ",
            &format!("Delete {}?", path.display()),
            "y delete · n/Esc keep",
        ),
        Some(Overlay::Preview(p)) => preview(f, p, theme, content),
        Some(Overlay::Diff(d)) => diff(f, d, theme, content),
        Some(Overlay::EditCron(e)) => edit_cron(f, e, theme, content),
        Some(o) => crate::tui::tabs::releases::dialogs::draw(
            f,
            o,
            &app.releases,
            app.local,
            theme,
            content,
        ),
    }
}

fn help(f: &mut Frame, app: &App, scope: Scope, top: usize, theme: &Theme, area: Rect) {
    crate::tui::popups::view::help(f, &crate::tui::app::help_rows(app, scope), top, theme, area);
}
