//! The Schedules tab: every job with its cron, next runs, last runs and lock holder.

use chrono::Datelike;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table};

use super::{LockState, SchedulesState};
use crate::tui::keymap::Action;
use crate::tui::layout;
use crate::tui::tabs::exports::{GroupRow, GroupStatus};
use crate::tui::view::format::{countdown, span};
use crate::tui::view::{Shared, Theme, keys_title};

/// What the tab's view reads: its state, the values all tabs share, the export groups (a
/// retrying one is shown under the lock) and the scheduler lock.
pub(crate) struct View<'a> {
    pub ss: &'a SchedulesState,
    pub shared: &'a Shared<'a>,
    pub groups: &'a [GroupRow],
    /// The scheduler lock as this process sees it.
    pub lock: &'a LockState,
}

/// Draws the tab.
pub(crate) fn draw(f: &mut Frame, v: &View, theme: &Theme) {
    let (jobs_area, details_area) = layout::schedules(v.shared.size, v.ss.jobs.len());
    let visible = v.ss.visible(v.shared.filters);
    let header = Row::new(["Job", "Cron", "When", "Next run (UTC)", "State"]).style(theme.title());
    let rows = visible.iter().enumerate().map(|(n, &i)| {
        let j = &v.ss.jobs[i];
        let next = j.schedule.next_after(v.shared.now);
        let row = Row::new([
            j.name.clone(),
            j.schedule.expr().to_string(),
            j.schedule.describe(),
            match next {
                _ if j.paused => "none while paused".into(),
                _ if *v.lock == LockState::Off => "none: no scheduler".into(),
                None => "never".into(),
                Some(t) => format!(
                    "{} (in {})",
                    t.format("%m-%d %H:%M"),
                    span(t - v.shared.now)
                ),
            },
            if j.paused {
                "paused".into()
            } else {
                "active".into()
            },
        ]);
        if n == v.ss.sel {
            row.style(theme.selected())
        } else {
            row
        }
    });
    // The cron column fits the longest expression: a cut one reads as another schedule.
    let cron_w =
        v.ss.jobs
            .iter()
            .map(|j| j.schedule.expr().chars().count())
            .max()
            .unwrap_or(0)
            .clamp(12, 32) as u16
            + 1;
    let widths = [
        Constraint::Length(8),
        Constraint::Length(cron_w),
        Constraint::Min(16),
        Constraint::Length(22),
        Constraint::Length(7),
    ];
    // `p` resumes a paused job: the title says what it does to the selected one.
    let pause = match visible.get(v.ss.sel).map(|&i| v.ss.jobs[i].paused) {
        Some(true) => "p resume",
        _ => "p pause",
    };
    let title = match v.shared.filters.get(&crate::tui::tab::Tab::Schedules) {
        Some(f) if !f.is_empty() => Line::from(Span::styled(format!(" Jobs /{f} "), theme.title())),
        _ => keys_title(
            v.shared,
            theme,
            theme.title(),
            "Jobs",
            &[
                (Some(Action::RunNow), "r run now"),
                (Some(Action::Pause), pause),
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

    let Some(job) = visible.get(v.ss.sel).map(|&i| &v.ss.jobs[i]) else {
        f.render_widget(
            Paragraph::new("no job matches the filter").block(Block::bordered()),
            details_area,
        );
        return;
    };
    let [left, right] =
        Layout::horizontal([Constraint::Length(37), Constraint::Min(20)]).areas(details_area);

    // The whole description, which the list's When column may cut.
    let inner = usize::from(left.width.saturating_sub(2));
    let mut lines: Vec<Line> = crate::tui::view::wrap(&job.schedule.describe(), inner, 2)
        .into_iter()
        .map(Line::from)
        .collect();
    lines.push(Line::from(""));
    if job.paused {
        lines.push(Line::from(Span::styled("Paused", theme.busy())));
        lines.push(Line::from(Span::styled(
            "  no runs until p resumes it",
            theme.dim(),
        )));
    } else {
        lines.push(Line::from(Span::styled(
            "Next runs (UTC)  local",
            theme.title(),
        )));
        // A run in another year names it (`Fri 01-01` of next year reads as this one's).
        let this_year = v.shared.now.year();
        let shape = |year: i32| {
            if year == this_year {
                "%a %m-%d %H:%M"
            } else {
                "%Y-%m-%d %H:%M"
            }
        };
        for t in job.schedule.upcoming(v.shared.now, 5) {
            let local = t.with_timezone(&v.shared.local);
            lines.push(Line::from(format!(
                "{:<15}  {}",
                t.format(shape(t.year())).to_string(),
                local.format(shape(local.year()))
            )));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("Scheduler lock", theme.title())));
    lines.push(Line::from(match &v.lock {
        LockState::Leader => Span::styled("  held by this process", theme.ok()),
        LockState::Follower(h) => Span::styled(format!("  held by {h}"), theme.busy()),
        LockState::Unknown => Span::styled("  not known yet", theme.dim()),
        LockState::Off => Span::styled("  none: TestOps is not set up", theme.dim()),
    }));
    for g in v.groups {
        if let GroupStatus::Retrying {
            attempt, max, at, ..
        } = &g.status
        {
            lines.push(Line::from(Span::styled(
                format!(
                    "  {}: retry {}/{max} in {}",
                    g.name,
                    attempt + 1,
                    countdown(*at - v.shared.now)
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
        let tries =
            v.ss.run_attempts
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
