//! Drawing the generic popups from their own data: the yes/no dialog, the CSV preview, the
//! diff, the cron editor, the help, and `centered` for placing a dialog. (The release
//! dialogs are the Releases tab's.)

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};
use unicode_width::UnicodeWidthStr;

use super::help::HelpRow;
use super::{CronEdit, DiffView, Preview};
use crate::tui::view::Theme;

pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub(crate) fn confirm(
    f: &mut Frame,
    theme: &Theme,
    area: Rect,
    title: &str,
    text: &str,
    keys: &str,
) {
    // Tall enough for the wrapped text (a long path) and the keys, which sit in the bottom
    // border so that no text can push them out of sight.
    let inner = area.width.min(60).saturating_sub(2).max(1) as usize;
    let wrapped = text.width().div_ceil(inner).max(1) as u16;
    let r = centered(area, 60, wrapped.saturating_add(3));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(Line::from(text.to_string()))
            .wrap(Wrap { trim: true })
            .block(
                Block::bordered()
                    .title(title.to_string())
                    .title_bottom(Span::styled(format!(" {keys} "), theme.title())),
            ),
        r,
    );
}

/// A cell on one line: line breaks become a visible marker.
pub(crate) fn one_line(s: &str) -> String {
    if s.contains('\n') {
        s.replace("\r\n", "⏎").replace('\n', "⏎")
    } else {
        s.to_string()
    }
}

pub(crate) fn preview(f: &mut Frame, p: &Preview, theme: &Theme, area: Rect) {
    f.render_widget(Clear, area);
    let inner_w = area.width.saturating_sub(2);
    let shown = area.height.saturating_sub(3) as usize;
    let visible_rows = || p.rows.iter().skip(p.top).take(shown);
    // Columns from `first_col` that fit, each as wide as its widest shown cell (6..40).
    let mut widths = Vec::new();
    let mut used = 0u16;
    for (c, h) in p.header.iter().enumerate().skip(p.first_col) {
        let widest = visible_rows()
            .map(|r| r.get(c).map_or(0, |v| v.chars().count()))
            .chain(std::iter::once(h.chars().count()))
            .max()
            .unwrap_or(0);
        let w = (widest as u16).clamp(6, 40);
        if used + w > inner_w && !widths.is_empty() {
            break;
        }
        widths.push(w.min(inner_w));
        used += w + 1;
    }
    let cols = p.first_col..p.first_col + widths.len();
    let needle = p.search.to_lowercase();
    let rows = p
        .rows
        .iter()
        .enumerate()
        .skip(p.top)
        .take(shown)
        .map(|(i, r)| {
            let cells = cols
                .clone()
                .map(|c| Cell::from(one_line(r.get(c).map_or("", String::as_str))));
            let row = Row::new(cells);
            if !needle.is_empty() && p.matches.binary_search(&i).is_ok() {
                row.style(theme.busy().add_modifier(Modifier::BOLD))
            } else {
                row
            }
        });
    let header = Row::new(cols.clone().map(|c| p.header[c].clone())).style(theme.title());
    let status = if p.done { "" } else { " loading…" };
    let title = format!(
        " {} · rows {}-{} of {}{status} · cols {}-{} of {} ",
        p.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        (p.top + 1).min(p.rows.len()),
        (p.top + shown).min(p.rows.len()),
        p.rows.len(),
        cols.start + 1,
        cols.end,
        p.header.len()
    );
    let bottom = match (&p.search_input, &p.error) {
        (Some(i), _) => crate::tui::view::search_prompt(i, area.width),
        (None, Some(e)) => format!(" error: {e} "),
        (None, None) if !p.search.is_empty() => {
            format!(
                " /{}: {} · n/N ",
                p.search,
                crate::tui::view::format::count(p.matches.len() as u64, "match", "matches")
            )
        }
        _ => " ←/→ columns · / search · Esc close ".into(),
    };
    let constraints: Vec<Constraint> = widths.iter().map(|w| Constraint::Length(*w)).collect();
    f.render_widget(
        Table::new(rows, constraints).header(header).block(
            Block::bordered()
                .title(title)
                .title_bottom(Span::styled(bottom, theme.dim())),
        ),
        area,
    );
}

pub(crate) fn diff(f: &mut Frame, d: &DiffView, theme: &Theme, area: Rect) {
    f.render_widget(Clear, area);
    let name = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let title = format!(" {} → {} ", name(&d.old), name(&d.new));
    let mut lines: Vec<Line> = Vec::new();
    match &d.result {
        None => lines.push(Line::from("comparing…")),
        Some(Err(e)) => lines.push(Line::from(Span::styled(
            format!("cannot compare: {e}"),
            theme.bad(),
        ))),
        Some(Ok(r)) => {
            lines.push(Line::from(vec![
                Span::styled(format!("+{} added", r.added.len()), theme.ok()),
                Span::raw("  "),
                Span::styled(format!("-{} removed", r.removed.len()), theme.bad()),
                Span::raw("  "),
                Span::styled(format!("~{} changed", r.changed.len()), theme.busy()),
                Span::raw(format!(
                    "   ({} → {} test cases, keyed by {})",
                    r.old_rows, r.new_rows, r.key_column
                )),
            ]));
            for c in &r.added {
                lines.push(Line::from(Span::styled(
                    format!("+ {}  {}", c.key, one_line(&c.name)),
                    theme.ok(),
                )));
            }
            for c in &r.removed {
                lines.push(Line::from(Span::styled(
                    format!("- {}  {}", c.key, one_line(&c.name)),
                    theme.bad(),
                )));
            }
            for c in &r.changed {
                lines.push(Line::from(Span::styled(
                    format!("~ {}  {}", c.key, one_line(&c.name)),
                    theme.busy(),
                )));
                for ch in &c.changes {
                    lines.push(Line::from(format!(
                        "    {}: {} → {}",
                        ch.column,
                        one_line(&ch.old),
                        one_line(&ch.new)
                    )));
                }
            }
        }
    }
    // The keys scroll by this count (`diff::line_count`): it must stay the lines drawn.
    debug_assert_eq!(lines.len(), super::diff::line_count(d));
    let top = d.top.min(lines.len().saturating_sub(1));
    let body: Vec<Line> = lines.into_iter().skip(top).collect();
    f.render_widget(
        Paragraph::new(body).block(
            Block::bordered()
                .title(title)
                .title_bottom(Span::styled(" j/k scroll · Esc close ", theme.dim())),
        ),
        area,
    );
}

pub(crate) fn edit_cron(f: &mut Frame, e: &CronEdit, theme: &Theme, area: Rect) {
    let r = centered(area, 64, 7);
    f.render_widget(Clear, r);
    let check = match &e.check {
        Ok(next) if e.paused => Span::styled(
            format!(
                "paused; once resumed (p), next run: {}",
                next.format("%Y-%m-%d %H:%M UTC")
            ),
            theme.dim(),
        ),
        Ok(next) => Span::styled(
            format!("next run: {}", next.format("%Y-%m-%d %H:%M UTC")),
            theme.ok(),
        ),
        Err(err) => Span::styled(err.clone(), theme.bad()),
    };
    let lines = vec![
        Line::from(vec![
            Span::raw("> "),
            Span::raw(crate::tui::view::typed(
                &e.input,
                r.width.saturating_sub(4) as usize,
            )),
        ]),
        Line::from(check),
    ];
    // The keys sit in the border: a long error wraps without pushing them out.
    let keys = if e.check.is_ok() {
        " Enter save to the config file · Esc cancel "
    } else {
        " fix it to save · Esc cancel "
    };
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(format!(" Cron for {} ", e.job))
                .title_bottom(Span::styled(keys, theme.dim())),
        ),
        r,
    );
}

/// The help: `rows`, wrapped to the popup's width, from line `top`, with a position count
/// when they do not all fit.
pub(crate) fn help(f: &mut Frame, rows: &[HelpRow], top: usize, theme: &Theme, area: Rect) {
    let width = super::help::width(rows, area.width);
    let lines = super::help::lines(rows, width);
    let r = centered(area, width, lines.len() as u16 + 2);
    let shown = r.height.saturating_sub(2) as usize;
    let more = if lines.len() > shown {
        format!(
            " · {}-{}/{} · j/k scroll",
            top + 1,
            (top + shown).min(lines.len()),
            lines.len()
        )
    } else {
        String::new()
    };
    let table: Vec<Row> = lines
        .iter()
        .skip(top)
        .map(|l| {
            let h = l.row;
            let key = if h.greyed { theme.dim() } else { theme.title() };
            let text = if h.greyed || h.key.is_empty() {
                theme.dim()
            } else {
                ratatui::style::Style::new()
            };
            Row::new([
                Cell::from(Span::styled(l.key, key)),
                Cell::from(Span::styled(l.text.clone(), text)),
            ])
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Table::new(
            table,
            [
                Constraint::Length(super::help::KEY_WIDTH),
                Constraint::Min(8),
            ],
        )
        .block(Block::bordered().title(format!(" Keys · Esc closes{more} "))),
        r,
    );
}
