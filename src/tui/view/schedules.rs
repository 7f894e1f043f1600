//! The Schedules tab: every job with its cron, next runs, last runs and lock holder.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table};

use super::Theme;
use super::format::{countdown, span};
use crate::tui::app::{App, GroupStatus, LockState};
use crate::tui::keymap::Action;
use crate::tui::layout;

pub(super) fn draw(f: &mut Frame, app: &App, theme: &Theme) {
    let (jobs_area, details_area) = layout::schedules(app.size, app.jobs.len());
    let visible = app.visible_jobs();
    let header = Row::new(["Job", "Cron", "When", "Next run (UTC)", "State"]).style(theme.title());
    let rows = visible.iter().enumerate().map(|(n, &i)| {
        let j = &app.jobs[i];
        let next = j.schedule.next_after(app.now);
        let row = Row::new([
            j.name.clone(),
            j.schedule.expr().to_string(),
            j.schedule.describe(),
            next.map_or("never".into(), |t| {
                format!("{} (in {})", t.format("%m-%d %H:%M"), span(t - app.now))
            }),
            if j.paused {
                "paused".into()
            } else {
                "active".into()
            },
        ]);
        if n == app.job_sel {
            row.style(theme.selected())
        } else {
            row
        }
    });
    let widths = [
        Constraint::Length(8),
        Constraint::Length(13),
        Constraint::Min(16),
        Constraint::Length(22),
        Constraint::Length(7),
    ];
    let title = match app.filters.get(&crate::tui::tab::Tab::Schedules) {
        Some(f) if !f.is_empty() => Line::from(Span::styled(format!(" Jobs /{f} "), theme.title())),
        _ => super::keys_title(
            &super::Shared::of(app),
            theme,
            theme.title(),
            "Jobs",
            &[
                (Some(Action::RunNow), "r run now"),
                (Some(Action::Pause), "p pause"),
                (Some(Action::EditCron), "c edit cron"),
            ],
        ),
    };
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(title)),
        jobs_area,
    );

    let Some(job) = visible.get(app.job_sel).map(|&i| &app.jobs[i]) else {
        f.render_widget(
            Paragraph::new("no job matches the filter").block(Block::bordered()),
            details_area,
        );
        return;
    };
    let [left, right] =
        Layout::horizontal([Constraint::Length(37), Constraint::Min(20)]).areas(details_area);

    let mut lines = vec![Line::from(Span::styled(
        "Next runs (UTC)  local",
        theme.title(),
    ))];
    for t in job.schedule.upcoming(app.now, 5) {
        lines.push(Line::from(format!(
            "{}  {}",
            t.format("%a %m-%d %H:%M"),
            t.with_timezone(&app.local).format("%a %m-%d %H:%M")
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("Scheduler lock", theme.title())));
    lines.push(Line::from(match &app.lock {
        LockState::Leader => Span::styled("  held by this process", theme.ok()),
        LockState::Follower(h) => Span::styled(format!("  held by {h}"), theme.busy()),
        LockState::Unknown => Span::styled("  not known yet", theme.dim()),
    }));
    for g in &app.groups {
        if let GroupStatus::Retrying {
            attempt, max, at, ..
        } = &g.status
        {
            lines.push(Line::from(Span::styled(
                format!(
                    "  {}: retry {}/{max} in {}",
                    g.name,
                    attempt + 1,
                    countdown(*at - app.now)
                ),
                theme.busy(),
            )));
        }
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(format!(
            " {} · {} ",
            job.name,
            job.schedule.timezone()
        ))),
        left,
    );

    let header = Row::new(["Started", "Took", "Result", "Tries", "Trigger"]).style(theme.title());
    let rows = job.runs.iter().map(|r| {
        let took = r
            .finished_at
            .map_or("running".into(), |e| span(e - r.started_at));
        let style = match r.outcome.as_str() {
            "ok" => theme.ok(),
            "running" => theme.busy(),
            _ => theme.bad(),
        };
        let tries = app
            .run_attempts
            .get(&r.id)
            .map_or("—".into(), |n| n.to_string());
        Row::new([
            r.started_at.format("%m-%d %H:%M").to_string(),
            took,
            r.outcome.clone(),
            tries,
            r.trigger.clone(),
        ])
        .style(style)
    });
    let widths = [
        Constraint::Length(11),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Min(9),
    ];
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(" Last runs ")),
        right,
    );
}
