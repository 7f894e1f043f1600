//! The Releases tab: sections of releases, and the selected one's live service state,
//! audit trail and deploy log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::Theme;
use super::format::span;
use crate::release::Status;
use crate::tui::app::App;
use crate::tui::keymap::Action;
use crate::tui::layout;
use crate::tui::releases::{Section, ordered};

/// A status with its symbol and colour.
pub(super) fn status_span(s: Status, theme: &Theme) -> Span<'static> {
    let (sym, style) = match s {
        Status::ManualTesting => ("◆", theme.busy().add_modifier(Modifier::BOLD)),
        Status::Initiated | Status::Building | Status::ManualTestPassed => ("…", theme.dim()),
        Status::Deploying | Status::Rollback => ("⟳", theme.busy()),
        Status::Deployed => ("✔", theme.ok()),
        Status::RollbackDone => ("↶", theme.ok()),
        Status::StagingFailed
        | Status::ManualTestFailed
        | Status::ProductionFailed
        | Status::RollbackFailed => ("✖", theme.bad()),
    };
    Span::styled(format!("{sym} {s}"), style)
}

pub(super) fn draw(f: &mut Frame, app: &App, theme: &Theme) {
    let (_, content, _) = layout::frame(app.size);
    let [list_area, detail_area] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(content);
    if let Some(e) = &app.releases_error {
        f.render_widget(
            Paragraph::new(Span::styled(
                format!("the release ledger is unavailable: {e}"),
                theme.bad(),
            ))
            .block(Block::bordered().title(" Releases ")),
            content,
        );
        return;
    }
    let rows_idx = ordered(app);
    let shown = list_area.height.saturating_sub(3) as usize;
    let mut rows: Vec<Row> = Vec::new();
    let mut selected_row = 0;
    let mut last: Option<Section> = None;
    for (n, &(section, i)) in rows_idx.iter().enumerate() {
        if last != Some(section) {
            let count = rows_idx.iter().filter(|(s, _)| *s == section).count();
            let title = format!("{} ({count})", section.title());
            // The title spans the first two columns.
            let (a, b) =
                title.split_at(title.char_indices().nth(18).map_or(title.len(), |(i, _)| i));
            rows.push(Row::new([
                Cell::from(Span::styled(a.to_string(), theme.title())),
                Cell::from(Span::styled(b.to_string(), theme.title())),
            ]));
            last = Some(section);
        }
        let r = &app.releases[i];
        if n == app.release_sel {
            selected_row = rows.len();
        }
        let run = match (&r.github_run_id, &r.github_action_link) {
            (_, Some(link)) => crate::sanitize::clean(link),
            (Some(id), None) => format!("run {}", crate::sanitize::clean(id)),
            _ => "-".into(),
        };
        let row = Row::new([
            Cell::from(format!(" {}", r.service_name)),
            Cell::from(r.release_tag.clone()),
            Cell::from(status_span(r.status, theme)),
            Cell::from(crate::sanitize::clean(
                r.initiated_by.as_deref().unwrap_or("-"),
            )),
            Cell::from(span(app.now - r.created_at)),
            Cell::from(
                r.rollback_to_tag
                    .clone()
                    .map_or("-".into(), |t| format!("→ {t}")),
            ),
            Cell::from(run),
        ]);
        rows.push(if n == app.release_sel {
            row.style(theme.selected())
        } else {
            row
        });
    }
    let offset = layout::scroll_offset(selected_row, shown);
    let empty = rows.is_empty();
    let rows: Vec<Row> = rows.into_iter().skip(offset).take(shown).collect();
    let header = Row::new([
        "Service",
        "Tag",
        "Status",
        "By",
        "Age",
        "Rollback",
        "GitHub run",
    ])
    .style(theme.title());
    // Narrow terminals drop the GitHub column (Enter shows it) so the status stays whole.
    let github = if list_area.width >= 110 {
        Constraint::Min(10)
    } else {
        Constraint::Length(0)
    };
    let widths = [
        Constraint::Length(18),
        Constraint::Length(12),
        Constraint::Length(21),
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Min(9),
        github,
    ];
    let title = match app.filters.get(&crate::tui::app::Tab::Releases) {
        Some(f) if !f.is_empty() => {
            Line::from(Span::styled(format!(" Releases /{f} "), theme.title()))
        }
        _ => super::keys_title(
            app,
            theme,
            theme.title(),
            "Releases",
            &[
                (Some(Action::Approve), "a approve"),
                (Some(Action::Reject), "x reject"),
                (Some(Action::Rollback), "r roll back"),
                (None, "Enter details"),
            ],
        ),
    };
    let mut table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title));
    if empty {
        table = table.footer(
            Row::new(["  no releases yet: CI registers them with `opsdeck release create`"])
                .style(theme.dim()),
        );
    }
    f.render_widget(table, list_area);

    let Some(r) = crate::tui::releases::selected(app) else {
        f.render_widget(Block::bordered(), detail_area);
        return;
    };
    let [state_area, log_area] =
        Layout::horizontal([Constraint::Length(44), Constraint::Min(20)]).areas(detail_area);
    let mut lines = vec![Line::from(vec![
        Span::raw(format!("{} {}  ", r.service_name, r.release_tag)),
        status_span(r.status, theme),
    ])];
    // The image this release deploys, and below it what the engine runs now.
    lines.push(Line::from(format!(
        "deploys  {}",
        crate::tui::releases::release_image(r)
    )));
    let detail = app.release_detail.as_ref().filter(|d| d.id == r.id);
    match detail.and_then(|d| d.state.as_ref()) {
        Some(s) => {
            lines.push(Line::from(format!("running  {}", s.image)));
            lines.push(Line::from(format!(
                "replicas {}/{} running",
                s.running, s.desired
            )));
            let style = match s.update_state.as_str() {
                "completed" => theme.ok(),
                "updating" | "rollback_started" => theme.busy(),
                "" => Style::new(),
                _ => theme.bad(),
            };
            lines.push(Line::from(vec![
                Span::raw("update   "),
                Span::styled(s.update_state.clone(), style),
            ]));
            if !s.update_message.is_empty() {
                lines.push(Line::from(Span::styled(
                    s.update_message.clone(),
                    theme.dim(),
                )));
            }
        }
        None => lines.push(Line::from(Span::styled("no live Swarm state", theme.dim()))),
    }
    if let Some(d) = detail {
        lines.push(Line::from(""));
        for a in d.audit.iter().rev().take(4) {
            lines.push(Line::from(format!(
                "{} {} by {}",
                a.at.format("%m-%d %H:%M"),
                a.to,
                crate::sanitize::clean(&a.actor)
            )));
        }
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(format!(" release {} ", r.id))),
        state_area,
    );
    let log: Vec<Line> = detail
        .map(|d| {
            let h = log_area.height.saturating_sub(2) as usize;
            d.log
                .iter()
                .skip(d.log.len().saturating_sub(h))
                .map(|l| Line::from(l.clone()))
                .collect()
        })
        .unwrap_or_default();
    f.render_widget(
        Paragraph::new(log).block(Block::bordered().title(" deploy log ")),
        log_area,
    );
}
