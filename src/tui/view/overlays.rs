//! Dialogs and full-screen views over a tab: help, confirmations, CSV preview, diff, cron edit.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table};

use super::Theme;
use crate::tui::app::{App, Overlay};
use crate::tui::keymap::help_for;
use crate::tui::layout;
use crate::tui::popups::view::{centered, confirm, diff, edit_cron, preview};
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
