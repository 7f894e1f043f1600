//! Which popup covers the tab, and the help's lines (what the keys and commands do for this
//! user: refused keys greyed with the reason, read-only hiding the actions); the popups
//! draw themselves (`popups/view.rs`, the Releases tab's dialogs).

use ratatui::Frame;
use ratatui::layout::Rect;

use super::Theme;
use crate::tui::app::{App, Overlay};
use crate::tui::keymap::help_for;
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

/// The help's lines for `scope`: its keys (greyed with the server's reason when refused;
/// hidden in read-only mode), then the `:` commands.
fn help_rows(app: &App, scope: Scope) -> Vec<crate::tui::popups::help::HelpRow> {
    use crate::tui::popups::help::HelpRow;
    let keys = help_for(scope)
        .into_iter()
        .filter(|b| !app.hidden(b.action))
        .map(|b| match app.refused(b.action) {
            Some(reason) => HelpRow {
                key: b.label.to_string(),
                text: crate::sanitize::clean_max(reason, 120),
                greyed: true,
            },
            None => HelpRow {
                key: b.label.to_string(),
                text: b.help.to_string(),
                greyed: false,
            },
        });
    let commands = crate::tui::command::COMMANDS
        .iter()
        .filter(|c| !(app.readonly && c.acts))
        .map(|c| HelpRow {
            key: format!(":{}", c.name),
            text: format!("{} {}", c.args, c.help).trim().to_string(),
            greyed: false,
        });
    keys.chain(std::iter::once(HelpRow {
        key: String::new(),
        text: "commands after :".into(),
        greyed: false,
    }))
    .chain(commands)
    .collect()
}

fn help(f: &mut Frame, app: &App, scope: Scope, top: usize, theme: &Theme, area: Rect) {
    crate::tui::popups::view::help(f, &help_rows(app, scope), top, theme, area);
}
