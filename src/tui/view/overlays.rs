//! Dialogs and full-screen views over a tab: help, confirmations, CSV preview, diff, cron edit.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::Theme;
use crate::tui::app::{App, CronEdit, DiffView, Overlay, Preview};
use crate::tui::keymap::help_for;
use crate::tui::layout;
use crate::tui::tab::Scope;
use crate::tui::tabs::releases::{TextLine, Tone, wrap};
use unicode_width::UnicodeWidthStr;

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
        Some(Overlay::Approve { id, service, to }) => {
            let lines = vec![
                TextLine {
                    tone: Tone::Plain,
                    text: format!("Deploy {}:", service_name(app, service)),
                },
                now_line(app, service),
                TextLine {
                    tone: Tone::Plain,
                    text: format!("  new  {to}"),
                },
            ];
            release_dialog(
                f,
                theme,
                content,
                &format!(" Approve release {id}? "),
                lines,
                "y approve and deploy · n/Esc cancel",
            )
        }
        Some(Overlay::Deploy { id, service, to }) => {
            let lines = vec![
                TextLine {
                    tone: Tone::Plain,
                    text: format!(
                        "Deploy the approved release to {} (opsdeck release deploy {id}):",
                        service_name(app, service)
                    ),
                },
                now_line(app, service),
                TextLine {
                    tone: Tone::Plain,
                    text: format!("  new  {to}"),
                },
            ];
            release_dialog(
                f,
                theme,
                content,
                &format!(" Deploy release {id}? "),
                lines,
                "y deploy · n/Esc cancel",
            )
        }
        Some(Overlay::CancelDeploy {
            id,
            service,
            tag,
            deploying,
        }) => {
            let text = if *deploying {
                format!(
                    "The deploy of {service} {tag} is running: the server stops it and rolls \
                     the service back to what ran before."
                )
            } else {
                format!(
                    "Drop the queued deploy of {service} {tag}. The release stays approved; \
                     d deploys it again."
                )
            };
            let lines = vec![
                TextLine {
                    tone: Tone::Plain,
                    text,
                },
                now_line(app, service),
            ];
            release_dialog(
                f,
                theme,
                content,
                &format!(" Cancel the deploy of release {id}? "),
                lines,
                "y cancel the deploy · n/Esc keep it",
            )
        }
        Some(Overlay::Reject { id, input, empty }) => {
            let r = centered(content, 64, 6);
            f.render_widget(Clear, r);
            let w = r.width.saturating_sub(4) as usize;
            let lines = vec![
                Line::from("Why? (recorded in the audit trail)"),
                Line::from(format!("> {}", super::typed(input, w))),
                if *empty {
                    Line::from(Span::styled(
                        "a rejection needs a reason: type why, then Enter",
                        theme.bad(),
                    ))
                } else {
                    Line::from("")
                },
                Line::from(Span::styled("Enter reject · Esc cancel", theme.dim())),
            ];
            f.render_widget(
                Paragraph::new(lines)
                    .block(Block::bordered().title(format!(" Reject release {id} "))),
                r,
            );
        }
        Some(Overlay::RollbackPick {
            id,
            service,
            targets,
            sel,
        }) => {
            let r = centered(content, 72, targets.len() as u16 + 4);
            f.render_widget(Clear, r);
            // A long list (every image on the manager) scrolls with the selection.
            let rows = (r.height as usize).saturating_sub(4).max(1);
            let top = (*sel + 1).saturating_sub(rows);
            let tag_w = targets
                .iter()
                .map(|t| t.tag.width())
                .max()
                .unwrap_or(0)
                .min(24);
            let mut lines = vec![Line::from(format!("Roll {service} back to:"))];
            for (i, t) in targets.iter().enumerate().skip(top).take(rows) {
                let style = if i == *sel {
                    theme.selected()
                } else {
                    Style::default()
                };
                let tag = crate::sanitize::clean_max(&t.tag, 24);
                let pad = " ".repeat(tag_w.saturating_sub(tag.width()));
                lines.push(Line::from(vec![
                    Span::styled(format!("  {tag}{pad}  "), style),
                    Span::styled(t.when(&app.local), style.patch(theme.dim())),
                    Span::styled(format!(" · {}", t.origin.label()), theme.dim()),
                ]));
            }
            let more = if targets.len() > rows {
                format!(" ({}/{})", sel + 1, targets.len())
            } else {
                String::new()
            };
            lines.push(Line::from(Span::styled(
                format!("j/k choose · Enter next · Esc cancel{more}"),
                theme.dim(),
            )));
            f.render_widget(
                Paragraph::new(lines)
                    .block(Block::bordered().title(format!(" Roll back release {id} "))),
                r,
            );
        }
        Some(Overlay::RollbackConfirm {
            id,
            service,
            swarm,
            to,
            input,
            wrong,
        }) => {
            let ok = crate::tui::tabs::releases::confirms(input.value(), service, swarm.as_deref());
            let names = match swarm {
                Some(s) => format!("{service} (or {s})"),
                None => service.clone(),
            };
            let width = 64.min(content.width).saturating_sub(2) as usize;
            let mut lines: Vec<Line> = Vec::new();
            let now = now_line(app, service);
            for t in wrap(&now.text, width, 7) {
                lines.push(Line::from(Span::styled(t, theme.tone(now.tone))));
            }
            for t in wrap(
                &format!("Roll {service} back to {to}. Type {names} to confirm:"),
                width,
                0,
            ) {
                lines.push(Line::from(t));
            }
            let r = centered(content, 64, lines.len() as u16 + 5);
            f.render_widget(Clear, r);
            lines.extend([
                Line::from(Span::styled(
                    format!(
                        "> {}",
                        super::typed(input, r.width.saturating_sub(4) as usize)
                    ),
                    if ok { theme.ok() } else { theme.busy() },
                )),
                if *wrong {
                    Line::from(Span::styled(
                        format!(
                            "`{}` is not {names}",
                            crate::sanitize::clean_max(input.value(), 30)
                        ),
                        theme.bad(),
                    ))
                } else {
                    Line::from("")
                },
                Line::from(Span::styled(
                    "Enter roll back (when the name matches) · Esc cancel",
                    theme.dim(),
                )),
            ]);
            f.render_widget(
                Paragraph::new(lines)
                    .block(Block::bordered().title(format!(" Roll back release {id} "))),
                r,
            );
        }
        Some(Overlay::ReleaseInfo { id, top }) => release_info(f, app, *id, *top, theme, content),
    }
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
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

fn confirm(f: &mut Frame, theme: &Theme, area: Rect, title: &str, text: &str, keys: &str) {
    let r = centered(area, 60, 6);
    f.render_widget(Clear, r);
    let lines = vec![
        Line::from(text.to_string()),
        Line::from(""),
        Line::from(Span::styled(keys.to_string(), theme.title())),
    ];
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(title.to_string())),
        r,
    );
}

/// A cell on one line: line breaks become a visible marker.
fn one_line(s: &str) -> String {
    if s.contains('\n') {
        s.replace("\r\n", "⏎").replace('\n', "⏎")
    } else {
        s.to_string()
    }
}

fn preview(f: &mut Frame, p: &Preview, theme: &Theme, area: Rect) {
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
        (Some(i), _) => format!(" /{}▏", i.value()),
        (None, Some(e)) => format!(" error: {e} "),
        (None, None) if !p.search.is_empty() => {
            format!(" /{}: {} matches · n/N ", p.search, p.matches.len())
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

fn diff(f: &mut Frame, d: &DiffView, theme: &Theme, area: Rect) {
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

fn release_info(f: &mut Frame, app: &App, id: i64, top: usize, theme: &Theme, area: Rect) {
    f.render_widget(Clear, area);
    let width = area.width.saturating_sub(2) as usize;
    let height = area.height.saturating_sub(2) as usize;
    let lines = app.releases.info_lines(id, width, app.local);
    let top = top.min(lines.len().saturating_sub(height));
    let bottom = format!(
        " j/k PgDn/PgUp g/G scroll · Esc close · {}-{} of {} ",
        (top + 1).min(lines.len()),
        (top + height).min(lines.len()),
        lines.len()
    );
    let shown: Vec<TextLine> = lines.into_iter().skip(top).take(height).collect();
    f.render_widget(
        Paragraph::new(crate::tui::tabs::releases::view::text_lines(&shown, theme)).block(
            Block::bordered()
                .title(format!(" Release {id} "))
                .title_bottom(Span::styled(bottom, theme.dim())),
        ),
        area,
    );
}

/// "api (prod_api)" when the engine names the service otherwise.
fn service_name(app: &App, service: &str) -> String {
    match app.releases.live(service) {
        Some(s) if !s.swarm_service.is_empty() && s.swarm_service != service => {
            format!("{service} ({})", s.swarm_service)
        }
        _ => service.to_string(),
    }
}

/// "  now  registry/api:v1.4.0  running 2/2 ✔": what the engine runs, from `app.releases.services`.
fn now_line(app: &App, service: &str) -> TextLine {
    let (text, tone) = app.releases.engine_runs(service);
    TextLine {
        tone,
        text: format!("  now  {text}"),
    }
}

/// A release confirm dialog: its lines wrapped, then the keys.
fn release_dialog(
    f: &mut Frame,
    theme: &Theme,
    area: Rect,
    title: &str,
    lines: Vec<TextLine>,
    keys: &str,
) {
    let width = 72.min(area.width);
    let inner = width.saturating_sub(2) as usize;
    let mut out: Vec<Line> = Vec::new();
    for l in &lines {
        for t in wrap(&l.text, inner, if l.text.starts_with("  ") { 7 } else { 0 }) {
            out.push(Line::from(Span::styled(t, theme.tone(l.tone))));
        }
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(keys.to_string(), theme.title())));
    let r = centered(area, width, out.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(out).block(Block::bordered().title(title.to_string())),
        r,
    );
}

fn edit_cron(f: &mut Frame, e: &CronEdit, theme: &Theme, area: Rect) {
    let r = centered(area, 64, 7);
    f.render_widget(Clear, r);
    let check = match &e.check {
        Ok(next) => Span::styled(
            format!("next run: {}", next.format("%Y-%m-%d %H:%M UTC")),
            theme.ok(),
        ),
        Err(err) => Span::styled(err.clone(), theme.bad()),
    };
    let lines = vec![
        Line::from(vec![
            Span::raw("> "),
            Span::raw(e.input.value().to_string()),
            Span::raw("▏"),
        ]),
        Line::from(check),
        Line::from(""),
        Line::from(Span::styled(
            "Enter save to the config file · Esc cancel",
            theme.dim(),
        )),
    ];
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!(" Cron for {} ", e.job))),
        r,
    );
}
