//! The Exports tab: groups with status and trend, then the export directory's files.

use ratatui::Frame;
use ratatui::layout::Constraint;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, Table};

use super::{ExportsState, GroupStatus, Pane};
use crate::export::Stage;
use crate::tui::keymap::Action;
use crate::tui::layout;
use crate::tui::view::format::{bytes, countdown, gauge, short_time, sparkline};
use crate::tui::view::{Shared, Theme, keys_title};

/// What the tab's view reads: its state and the values all tabs share.
pub(crate) struct View<'a> {
    pub es: &'a ExportsState,
    pub shared: &'a Shared<'a>,
}

/// Draws the tab.
pub(crate) fn draw(f: &mut Frame, v: &View, theme: &Theme) {
    let (groups_area, files_area) = layout::exports(v.shared.size, v.es.groups.len());

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
    let rows = v.es.groups.iter().enumerate().map(|(i, g)| {
        let last = v.es.files.iter().find(|f| f.group == g.name);
        let (when, rows, size) = match last {
            Some(f) => (
                short_time(f.taken_at),
                v.es.rows_by_file
                    .get(&f.path)
                    .map_or("?".into(), |r| r.to_string()),
                bytes(f.size),
            ),
            None => ("never".into(), "—".into(), "—".into()),
        };
        let (status, style) = status_text(v, &g.status, theme);
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
        if v.es.pane == Pane::Groups && i == v.es.group_sel {
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
        if v.es.pane == p {
            theme.title()
        } else {
            theme.dim()
        }
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(keys_title(
            v.shared,
            theme,
            focus(Pane::Groups),
            "Groups",
            &[
                (Some(Action::Export), "e export"),
                (Some(Action::ExportAll), "E all"),
            ],
        )));
    f.render_widget(table, groups_area);
    if v.es.groups.is_empty() && groups_area.height > 3 {
        // Under the header, across the columns.
        let line = ratatui::layout::Rect {
            x: groups_area.x + 1,
            y: groups_area.y + 2,
            width: groups_area.width.saturating_sub(2),
            height: 1,
        };
        f.render_widget(
            ratatui::widgets::Paragraph::new(Span::styled(
                "no groups to export: add [[testops.groups]] (name, id) to the config",
                theme.dim(),
            )),
            line,
        );
    }

    let visible = v.es.visible_files(v.shared.filters);
    let shown = layout::table_rows(files_area);
    let offset = layout::scroll_offset(v.es.file_sel, shown);
    let header = Row::new(["Taken (UTC)", "Group", "Size", "Rows", "File"]).style(theme.title());
    let rows = visible
        .iter()
        .enumerate()
        .skip(offset)
        .take(shown)
        .map(|(n, &i)| {
            let file = &v.es.files[i];
            let row = Row::new([
                file.taken_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                crate::sanitize::escape(&file.group),
                bytes(file.size),
                v.es.rows_by_file
                    .get(&file.path)
                    .map_or("?".into(), |r| r.to_string()),
                file.path
                    .file_name()
                    .map(|n| crate::sanitize::escape(&n.to_string_lossy()))
                    .unwrap_or_default(),
            ]);
            if v.es.pane == Pane::Files && n == v.es.file_sel {
                row.style(theme.selected())
            } else {
                row
            }
        });
    let mut rows: Vec<Row> = rows.collect();
    if rows.is_empty() && !v.es.files.is_empty() {
        rows.push(
            Row::new(["", "", "", "", "no file matches the filter · Esc clears it"])
                .style(theme.dim()),
        );
    }
    // The filter as it applies, like the other tabs' titles; while it is typed the prompt
    // (status bar) holds the cursor.
    let filter = match v.shared.filters.get(&crate::tui::tab::Tab::Exports) {
        Some(f) if !f.is_empty() => format!(" /{f} (Esc clears)"),
        _ => String::new(),
    };
    let count = if filter.is_empty() {
        v.es.files.len().to_string()
    } else {
        format!("{} of {}", visible.len(), v.es.files.len())
    };
    let title = Line::from(vec![
        Span::styled(
            format!(
                " Files: {count} · {} in {} ",
                bytes(v.es.total_bytes),
                v.es.export_dir.display()
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
    // Read-only hides delete here as in the help.
    let footer: Vec<&str> = [
        (Action::Open, "Enter preview"),
        (Action::Diff, "D diff"),
        (Action::Delete, "d delete"),
        (Action::Pager, "o pager"),
        (Action::Copy, "y copy path"),
    ]
    .into_iter()
    .filter(|(a, _)| !v.shared.keys.hidden(*a))
    .map(|(_, text)| text)
    .collect();
    let table =
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(title).title_bottom(Span::styled(
                format!(" {} ", footer.join(" · ")),
                theme.dim(),
            )));
    f.render_widget(table, files_area);
}

/// The status cell of a group.
fn status_text(v: &View, s: &GroupStatus, theme: &Theme) -> (String, ratatui::style::Style) {
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
                countdown(*at - v.shared.now),
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
