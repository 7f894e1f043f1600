//! The Releases tab: each service's live line (what the engine runs), its drift, and its
//! releases; below, the selected release's details, its service's tasks and its deploy log.
//! Only the rows on screen are built, so 10 000 releases cost what 20 do.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::{Group, ReleasesState, Section, TextLine, Tone, status_look, update_message};
use crate::release::engine::{ServiceLive, TaskLive};
use crate::release::{Release, Status};
use crate::tui::keymap::Action;
use crate::tui::layout;
use crate::tui::tab::Tab;
use crate::tui::view::format::span;
use crate::tui::view::wrap;
use crate::tui::view::{Shared, Theme, keys_title};

/// What the tab's view reads: its state and the values all tabs share.
pub(crate) struct View<'a> {
    pub rs: &'a ReleasesState,
    pub shared: &'a Shared<'a>,
}

/// A status with its symbol and colour.
pub(crate) fn status_span(s: Status, theme: &Theme) -> Span<'static> {
    let (sym, tone) = status_look(s);
    let mut style = theme.tone(tone);
    if s == Status::ManualTesting {
        style = style.add_modifier(Modifier::BOLD);
    }
    Span::styled(format!("{sym} {s}"), style)
}

/// `s` cut or padded to exactly `w` columns, the last one a space (a column of a row).
fn fit(s: &str, w: usize) -> String {
    if w == 0 {
        return String::new();
    }
    let sw = s.width();
    if sw < w {
        return format!("{s}{}", " ".repeat(w - sw));
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw + 2 > w {
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push('…');
    used += 1;
    out.push_str(&" ".repeat(w.saturating_sub(used)));
    out
}

pub(crate) fn text_lines(lines: &[TextLine], theme: &Theme) -> Vec<Line<'static>> {
    lines
        .iter()
        .map(|l| Line::from(Span::styled(l.text.clone(), theme.tone(l.tone))))
        .collect()
}

pub(crate) fn draw(f: &mut Frame, t: &View, theme: &Theme) {
    let (_, content, _) = layout::frame(t.shared.size);
    if let Some(e) = &t.rs.error {
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
    let areas = layout::releases(t.shared.size, t.rs.list_lines());
    draw_list(f, t, theme, areas.list);
    let Some(r) = t.rs.selected() else {
        f.render_widget(Block::bordered(), areas.detail);
        f.render_widget(Block::bordered(), areas.tasks);
        if let Some(a) = areas.log {
            f.render_widget(Block::bordered(), a);
        }
        return;
    };
    draw_detail(f, t, r, theme, areas.detail);
    draw_tasks(f, t, &r.service_name, theme, areas.tasks);
    if let Some(area) = areas.log {
        let detail = t.rs.detail.as_ref().filter(|d| d.id == r.id);
        let h = area.height.saturating_sub(2) as usize;
        let log: Vec<Line> = detail
            .map(|d| {
                d.log
                    .iter()
                    .skip(d.log.len().saturating_sub(h))
                    // The deploy log is a script's output: escapes and secrets stop here too.
                    .map(|l| Line::from(crate::sanitize::clean_max(l, 1000)))
                    .collect()
            })
            .unwrap_or_default();
        f.render_widget(
            Paragraph::new(log).block(Block::bordered().title(" deploy log ")),
            area,
        );
    }
}

fn draw_list(f: &mut Frame, t: &View, theme: &Theme, area: Rect) {
    let inner_w = area.width.saturating_sub(2) as usize;
    let shown = area.height.saturating_sub(3) as usize;
    let sel = t.rs.sel;
    let groups = &t.rs.order.groups;
    let offset = t.rs.list_offset(shown);
    let end = offset + shown;
    let mut lines: Vec<Line> = Vec::with_capacity(shown + 1);
    lines.push(Line::from(Span::styled(
        fit(
            &format!(
                "  {}{}{}{}{}{}{}",
                fit("id", 7),
                fit("tag", 14),
                fit("status", 21),
                fit("by", 9),
                fit("age", 5),
                fit("rollback", 12),
                if inner_w >= 108 { "GitHub run" } else { "" }
            ),
            inner_w,
        ),
        theme.title(),
    )));
    let mut at = 0;
    for g in groups {
        let (s, extra) = t.rs.group_extra(g);
        let n = 1 + extra + g.rows.len();
        if at + n <= offset {
            at += n;
            continue;
        }
        if at >= end {
            break;
        }
        let mut emit = |line: Line<'static>, at: &mut usize| {
            if *at >= offset && *at < end {
                lines.push(line);
            }
            *at += 1;
        };
        emit(clip(group_header(t, g, s, theme), inner_w), &mut at);
        if let Some(s) = s {
            if let Some(d) = &s.drift {
                let text = format!("  {}", d.text(&t.shared.local));
                emit(
                    Line::from(Span::styled(fit(&text, inner_w + 1), theme.busy())),
                    &mut at,
                );
            }
            if let Some(m) = update_message(s) {
                emit(
                    Line::from(Span::styled(
                        fit(&format!("  {m}"), inner_w + 1),
                        theme.bad(),
                    )),
                    &mut at,
                );
            }
        }
        // Only the visible rows of the group are built.
        let first = g.rows.start + offset.saturating_sub(at);
        let last = g.rows.end.min(g.rows.start + end.saturating_sub(at));
        if first < last {
            for row in first..last {
                let (section, i) = t.rs.ordered()[row];
                lines.push(release_line(
                    t,
                    &t.rs.list[i],
                    section,
                    row == sel,
                    inner_w,
                    theme,
                ));
            }
        }
        at += g.rows.len();
    }
    // Configured services show without releases; the hint says where releases come from.
    if t.rs.list.is_empty() && lines.len() <= shown {
        lines.push(Line::from(Span::styled(
            "  no releases yet: CI registers them with `opsdeck release create`",
            theme.dim(),
        )));
    }
    let title = match t.shared.filters.get(&Tab::Releases) {
        Some(f) if !f.is_empty() => {
            Line::from(Span::styled(format!(" Releases /{f} "), theme.title()))
        }
        _ => {
            let mut keys = vec![
                (Some(Action::Approve), "a approve"),
                (Some(Action::Reject), "x reject"),
                (Some(Action::Rollback), "r roll back"),
                (Some(Action::Deploy), "d deploy"),
                (Some(Action::CancelDeploy), "c cancel"),
            ];
            if inner_w >= 100 {
                keys.push((None, "Enter details"));
            }
            keys_title(t.shared, theme, theme.title(), "Releases", &keys)
        }
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

/// A line cut to `width` columns with `…` when longer, each span keeping its style.
fn clip(line: Line<'static>, width: usize) -> Line<'static> {
    if line.width() <= width {
        return line;
    }
    let mut budget = width.saturating_sub(1);
    let mut spans = Vec::new();
    for s in line.spans {
        let w = s.content.width();
        if w <= budget {
            budget -= w;
            spans.push(s);
        } else {
            let cut = fit(&s.content, budget + 1);
            spans.push(Span::styled(cut.trim_end().to_string(), s.style));
            return Line::from(spans);
        }
    }
    Line::from(spans)
}

/// "▸ api (prod_api)  running v1.4.0  2/2  ✔  since 11-28 14:02": the `▸` marks the
/// service whose tasks are shown.
fn group_header(t: &View, g: &Group, s: Option<&ServiceLive>, theme: &Theme) -> Line<'static> {
    let mark = if g.rows.contains(&t.rs.sel) {
        "▸ "
    } else {
        "  "
    };
    let name = match s {
        Some(s) if !s.swarm_service.is_empty() && s.swarm_service != s.service => {
            format!("{} ({})", s.service, s.swarm_service)
        }
        _ => g.service.clone(),
    };
    let mut spans = vec![
        Span::styled(mark, theme.title()),
        Span::styled(
            crate::sanitize::clean_max(&name, 80),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw("  "),
    ];
    match s {
        None if t.rs.engine_watch => spans.push(Span::styled("reading the engine…", theme.dim())),
        None => spans.push(Span::styled("no live state", theme.dim())),
        Some(s) => match &s.error {
            Some(e) => spans.push(Span::styled(
                format!("unknown: {}", crate::sanitize::clean_max(e, 300)),
                theme.bad(),
            )),
            None => {
                let word = s.status_word();
                let tone = match word {
                    "running" => Tone::Ok,
                    "updating" | "rolling back" => Tone::Warn,
                    _ => Tone::Bad,
                };
                let what = if s.tag.is_empty() { &s.image } else { &s.tag };
                spans.push(Span::styled(
                    format!("{word} {}", crate::sanitize::clean_max(what, 80)),
                    theme.tone(tone),
                ));
                spans.push(Span::raw(format!("  {}/{}  ", s.running, s.desired)));
                spans.push(if s.healthy() {
                    Span::styled("✔", theme.ok())
                } else {
                    Span::styled("✖", theme.bad())
                });
                if let Some(at) = s.updated_at {
                    spans.push(Span::styled(
                        format!(
                            "  since {}",
                            at.with_timezone(&t.shared.local).format("%m-%d %H:%M")
                        ),
                        theme.dim(),
                    ));
                }
            }
        },
    }
    Line::from(spans)
}

fn release_line(
    t: &View,
    r: &Release,
    section: Section,
    selected: bool,
    width: usize,
    theme: &Theme,
) -> Line<'static> {
    let clean = |t: &str| crate::sanitize::clean_max(t, 200);
    // The run id reads in a narrow column; a link is cut to its last path segment (the
    // run id of `…/actions/runs/123`). The details pane shows the whole link.
    let run = match (&r.github_run_id, &r.github_action_link) {
        (Some(id), _) => format!("run {}", clean(id)),
        (None, Some(link)) => {
            let last = link
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(link);
            format!("run {}", clean(last))
        }
        _ => "-".into(),
    };
    let status = match t.rs.work_of(r.id).filter(|w| w.queued) {
        // Approved and waiting for another deploy of its service: say so on the row.
        Some(w) => Span::styled(
            match &w.behind {
                Some(b) => format!("◌ queued after {}", clean(b.split(' ').next().unwrap_or(b))),
                None => "◌ queued".into(),
            },
            theme.tone(Tone::Warn),
        ),
        None => status_span(r.status, theme),
    };
    let history = section == Section::History;
    let mut spans = vec![
        Span::raw(format!("  {}", fit(&format!("#{}", r.id), 7))),
        Span::raw(fit(&clean(&r.release_tag), 14)),
        Span::styled(fit(&status.content, 21), status.style),
        Span::raw(fit(&clean(r.initiated_by.as_deref().unwrap_or("-")), 9)),
        Span::raw(fit(&span(t.shared.now - r.created_at), 5)),
        Span::raw(fit(
            &r.rollback_to_tag
                .as_deref()
                .map_or("-".into(), |t| format!("→ {}", clean(t))),
            12,
        )),
    ];
    if width >= 108 {
        spans.push(Span::raw(run));
    }
    let used: usize = spans.iter().map(|s| s.content.width()).sum();
    spans.push(Span::raw(" ".repeat(width.saturating_sub(used))));
    let line = Line::from(spans);
    if selected {
        line.style(theme.selected())
    } else if history {
        line.style(theme.dim())
    } else {
        line
    }
}

fn draw_detail(f: &mut Frame, t: &View, r: &Release, theme: &Theme, area: Rect) {
    let width = area.width.saturating_sub(2) as usize;
    let height = area.height.saturating_sub(2) as usize;
    let lines = t.rs.detail_lines(r, width, t.shared.local);
    let max = lines.len().saturating_sub(height);
    let top = t.rs.detail_scroll(r.id).min(max);
    let title = if max > 0 {
        format!(
            " release {} · J/K {}-{} of {} ",
            r.id,
            top + 1,
            (top + height).min(lines.len()),
            lines.len()
        )
    } else {
        format!(" release {} ", r.id)
    };
    let shown: Vec<TextLine> = lines.into_iter().skip(top).take(height).collect();
    f.render_widget(
        Paragraph::new(text_lines(&shown, theme)).block(Block::bordered().title(title)),
        area,
    );
}

/// A task's symbol and tone: running, failed, on its way, or an old one.
fn task_look(t: &TaskLive) -> (&'static str, Tone) {
    if t.failed() || t.health.as_deref() == Some("unhealthy") {
        ("✖", Tone::Bad)
    } else if t.desired_state != "running" {
        ("·", Tone::Dim)
    } else if t.state == "running" {
        ("✔", Tone::Ok)
    } else {
        ("⟳", Tone::Warn)
    }
}

/// The lines of the tasks pane: the service's update, then each task with its state, tag,
/// node and health, and a failed one's error and exit code in full.
pub(crate) fn task_lines(t: &View, service: &str, width: usize) -> Vec<TextLine> {
    let clean = |t: &str| crate::sanitize::clean_max(t, 2000);
    let mut out = Vec::new();
    let mut push = |tone: Tone, text: &str, indent: usize| {
        out.extend(
            wrap(text, width, indent)
                .into_iter()
                .map(|text| TextLine { tone, text }),
        )
    };
    let Some(s) = t.rs.live(service) else {
        if t.rs.engine_watch {
            push(Tone::Dim, "reading the engine…", 0);
        } else {
            push(Tone::Dim, "no live state (the command deployer)", 0);
        }
        return out;
    };
    if let Some(e) = &s.error {
        push(Tone::Bad, &format!("unknown: {}", clean(e)), 2);
        return out;
    }
    let update = if s.update_state.is_empty() {
        String::new()
    } else {
        format!(" · update {}", s.update_state)
    };
    push(
        if s.healthy() { Tone::Ok } else { Tone::Warn },
        &format!("{} {}/{}{update}", s.status_word(), s.running, s.desired),
        2,
    );
    if s.tasks.is_empty() {
        push(Tone::Dim, "no tasks", 0);
    }
    for t in &s.tasks {
        let (sym, tone) = task_look(t);
        let mut text = format!(
            "{sym} {} {} {} {}",
            t.slot.map_or("-".into(), |n| n.to_string()),
            t.state,
            clean(&t.tag),
            if t.node.is_empty() {
                "-".into()
            } else {
                clean(&t.node)
            }
        );
        if let Some(h) = &t.health {
            text.push_str(&format!(" {h}"));
        }
        push(tone, &text, 4);
        let error = if t.error.is_empty() {
            &t.message
        } else {
            &t.error
        };
        if t.failed() && !error.is_empty() || !t.error.is_empty() {
            let mut why = format!("    {}", clean(error));
            if let Some(c) = t.exit_code.filter(|c| *c != 0) {
                why.push_str(&format!(" (exit code {c})"));
            }
            push(Tone::Bad, &why, 4);
        }
    }
    out
}

fn draw_tasks(f: &mut Frame, t: &View, service: &str, theme: &Theme, area: Rect) {
    let width = area.width.saturating_sub(2) as usize;
    let height = area.height.saturating_sub(2) as usize;
    let mut lines = task_lines(t, service, width);
    if lines.len() > height && height > 0 {
        let more = lines.len() - (height - 1);
        lines.truncate(height - 1);
        lines.push(TextLine {
            tone: Tone::Dim,
            text: format!("… {more} more lines (opsdeck services)"),
        });
    }
    let name = match t.rs.live(service) {
        Some(s) if !s.swarm_service.is_empty() && s.swarm_service != service => {
            format!("{service} ({})", s.swarm_service)
        }
        _ => service.to_string(),
    };
    f.render_widget(
        Paragraph::new(text_lines(&lines, theme)).block(Block::bordered().title(format!(
            " tasks · {} ",
            crate::sanitize::clean_max(&name, 60)
        ))),
        area,
    );
}
