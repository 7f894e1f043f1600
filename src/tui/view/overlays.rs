//! Dialogs and full-screen views over a tab: help, confirmations, CSV preview, diff, cron edit.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Clear, Row, Table};

use super::Theme;
use crate::tui::app::{App, Overlay};
use crate::tui::keymap::help_for;
use crate::tui::layout;
use crate::tui::popups::view::{centered, confirm, diff, edit_cron, preview};
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
    let bindings = help_for(scope);
    let total = crate::tui::app::help_rows(app, scope);
    let r = centered(area, 72, total as u16 + 2);
    // A key the server would refuse is greyed, with the server's reason in place of its help;
    // read-only hides the actions altogether.
    let keys =
        bindings
            .iter()
            .filter(|b| !app.hidden(b.action))
            .map(|b| match app.refused(b.action) {
                Some(reason) => Row::new([
                    Cell::from(Span::styled(b.label, theme.dim())),
                    Cell::from(Span::styled(
                        crate::sanitize::clean_max(reason, 120),
                        theme.dim(),
                    )),
                ]),
                None => Row::new([
                    Cell::from(Span::styled(b.label, theme.title())),
                    Cell::from(b.help),
                ]),
            });
    let commands = crate::tui::command::COMMANDS
        .iter()
        .filter(|c| !(app.readonly && c.acts))
        .map(|c| {
            Row::new([
                Cell::from(Span::styled(format!(":{}", c.name), theme.title())),
                Cell::from(format!("{} {}", c.args, c.help).trim().to_string()),
            ])
        });
    let rows: Vec<Row> = keys
        .chain(std::iter::once(Row::new([
            Cell::from(""),
            Cell::from(Span::styled("commands after :", theme.dim())),
        ])))
        .chain(commands)
        .collect();
    let shown = r.height.saturating_sub(2) as usize;
    let more = if rows.len() > shown {
        format!(
            " {}-{}/{} j/k scroll",
            top + 1,
            (top + shown).min(rows.len()),
            rows.len()
        )
    } else {
        String::new()
    };
    f.render_widget(Clear, r);
    f.render_widget(
        Table::new(
            rows.into_iter().skip(top),
            [Constraint::Length(11), Constraint::Min(20)],
        )
        .block(Block::bordered().title(format!(" Keys · Esc closes{more} "))),
        r,
    );
}
