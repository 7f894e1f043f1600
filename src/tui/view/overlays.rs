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
    draw_one(f, app, app.overlay.as_ref(), theme, content);
}

fn draw_one(f: &mut Frame, app: &App, overlay: Option<&Overlay>, theme: &Theme, content: Rect) {
    match overlay {
        None => {}
        // The view the help returns to stays underneath it.
        Some(Overlay::Help { scope, top, back }) => {
            draw_one(f, app, back.as_deref(), theme, content);
            help(f, app, *scope, *top, theme, content)
        }
        // Drawn from the state: the export may end while the question is open.
        Some(Overlay::ConfirmQuit) => confirm(
            f,
            theme,
            content,
            " Quit? ",
            if app.exporting() {
                "An export is running. Quitting cancels it (no partial file is kept)."
            } else {
                "The export has finished: nothing is lost by quitting now."
            },
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
