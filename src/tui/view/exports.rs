//! The Exports tab: groups with status and trend, then the export directory's files.

use ratatui::Frame;
use ratatui::layout::Constraint;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, Table};

use super::Theme;
use super::format::{bytes, countdown, gauge, short_time, sparkline};
use crate::export::Stage;
use crate::tui::app::{App, GroupStatus, Pane};
use crate::tui::keymap::Action;
use crate::tui::layout;

pub(super) fn draw(f: &mut Frame, app: &App, theme: &Theme) {
    let (groups_area, files_area) = layout::exports(app.size, app.groups.len());

    // The trend gets the room a wide terminal has; at 80 columns the status needs it.
    let trend_width = if groups_area.width >= 140 {
        30
    } else if groups_area.width >= 110 {
        15
    } else {
        8
    };
    let header = Row::new(["Group", "Last export", "Rows", "Size", "Status", "Trend"])
        .style(theme.title().add_modifier(Modifier::BOLD));
    let rows = app.groups.iter().enumerate().map(|(i, g)| {
        let last = app.files.iter().find(|f| f.group == g.name);
        let (when, rows, size) = match last {
            Some(f) => (
                short_time(f.taken_at),
                app.rows_by_file
                    .get(&f.path)
                    .map_or("?".into(), |r| r.to_string()),
                bytes(f.size),
            ),
            None => ("never".into(), "—".into(), "—".into()),
        };
        let (status, style) = status_text(app, &g.status, theme);
        let row = Row::new([
            Cell::from(g.name.clone()),
            Cell::from(when),
            Cell::from(rows),
            Cell::from(size),
            Cell::from(Span::styled(status, style)),
            Cell::from(sparkline(
                &g.trend[g.trend.len().saturating_sub(trend_width)..],
            )),
        ]);
        if app.pane == Pane::Groups && i == app.group_sel {
            row.style(theme.selected())
        } else {
            row
        }
    });
    let widths = [
        Constraint::Length(8),
        Constraint::Length(11),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Min(20),
        Constraint::Length(trend_width as u16),
    ];
    let focus = |p: Pane| {
        if app.pane == p {
            theme.title()
        } else {
            theme.dim()
        }
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(super::keys_title(
            &super::Shared::of(app),
            theme,
            focus(Pane::Groups),
            "Groups",
            &[
                (Some(Action::Export), "e export"),
                (Some(Action::ExportAll), "E all"),
            ],
        )));
    f.render_widget(table, groups_area);

    let visible = app.visible_files();
    let shown = layout::table_rows(files_area);
    let offset = layout::scroll_offset(app.file_sel, shown);
    let header = Row::new(["Taken (UTC)", "Group", "Size", "Rows", "File"]).style(theme.title());
    let rows = visible
        .iter()
        .enumerate()
        .skip(offset)
        .take(shown)
        .map(|(n, &i)| {
            let file = &app.files[i];
            let row = Row::new([
                file.taken_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                crate::sanitize::escape(&file.group),
                bytes(file.size),
                app.rows_by_file
                    .get(&file.path)
                    .map_or("?".into(), |r| r.to_string()),
                file.path
                    .file_name()
                    .map(|n| crate::sanitize::escape(&n.to_string_lossy()))
                    .unwrap_or_default(),
            ]);
            if app.pane == Pane::Files && n == app.file_sel {
                row.style(theme.selected())
            } else {
                row
            }
        });
    let filter = match (
        &app.filter_input,
        app.filters.get(&crate::tui::tab::Tab::Exports),
    ) {
        (Some(input), _) => format!(" /{}▏", input.value()),
        (None, Some(f)) if !f.is_empty() => format!(" /{f} (Esc clears)"),
        _ => String::new(),
    };
    let title = Line::from(vec![
        Span::styled(
            format!(
                " Files: {} · {} in {} ",
                app.files.len(),
                bytes(app.total_bytes),
                app.export_dir.display()
            ),
            focus(Pane::Files),
        ),
        Span::styled(filter, theme.busy()),
    ]);
    let widths = [
        Constraint::Length(19),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Min(10),
    ];
    let table =
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(title).title_bottom(Span::styled(
                " Enter preview · D diff · d delete · o pager · y copy path ",
                theme.dim(),
            )));
    f.render_widget(table, files_area);
}

/// The status cell of a group.
fn status_text(app: &App, s: &GroupStatus, theme: &Theme) -> (String, ratatui::style::Style) {
    match s {
        GroupStatus::Idle => ("—".into(), theme.dim()),
        GroupStatus::Saved { .. } => ("ok".into(), theme.ok()),
        GroupStatus::Failed { error, .. } => (
            format!("failed: {}", crate::sanitize::clean(error)),
            theme.bad(),
        ),
        GroupStatus::Retrying {
            attempt,
            max,
            at,
            error,
        } => (
            format!(
                "retry {}/{max} in {}: {}",
                attempt + 1,
                countdown(*at - app.now),
                crate::sanitize::clean(error)
            ),
            theme.busy(),
        ),
        GroupStatus::Running {
            attempt,
            max,
            stage,
        } => {
            let (step, what) = match stage {
                Stage::Requesting => (1, "requesting".to_string()),
                Stage::Preparing { poll } => (2, format!("preparing (poll {poll})")),
                Stage::Downloading { bytes: b, total } => (
                    3,
                    match total {
                        Some(t) if *t > 0 => format!("↓ {}/{}", bytes(*b), bytes(*t)),
                        _ => format!("↓ {}", bytes(*b)),
                    },
                ),
                Stage::Checking => (4, "checking".to_string()),
            };
            (
                format!("{} {what} {attempt}/{max}", gauge(step, 5)),
                theme.busy(),
            )
        }
    }
}
