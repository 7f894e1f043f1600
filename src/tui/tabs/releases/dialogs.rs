//! Drawing the Releases tab's dialogs (approve, deploy, cancel, reject, roll back) and the
//! whole details of a release, from the tab's state.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::{ReleasesState, TextLine, Tone};
use crate::tui::popups::Overlay;
use crate::tui::popups::view::centered;
use crate::tui::view::Theme;
use crate::tui::view::wrap;

/// Draws `o` over `content` when it is one of the tab's dialogs.
pub(crate) fn draw(
    f: &mut Frame,
    o: &Overlay,
    rs: &ReleasesState,
    local: chrono::FixedOffset,
    theme: &Theme,
    content: Rect,
) {
    match o {
        Overlay::Approve { id, service, to } => {
            let lines = vec![
                TextLine {
                    tone: Tone::Plain,
                    text: format!("Deploy {}:", service_name(rs, service)),
                },
                now_line(rs, service),
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
        Overlay::Deploy { id, service, to } => {
            let lines = vec![
                TextLine {
                    tone: Tone::Plain,
                    text: format!(
                        "Deploy the approved release to {} (opsdeck release deploy {id}):",
                        service_name(rs, service)
                    ),
                },
                now_line(rs, service),
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
        Overlay::CancelDeploy {
            id,
            service,
            tag,
            deploying,
        } => {
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
                now_line(rs, service),
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
        Overlay::Reject { id, input, empty } => {
            let r = centered(content, 64, 6);
            f.render_widget(Clear, r);
            let w = r.width.saturating_sub(4) as usize;
            let lines = vec![
                Line::from("Why? (recorded in the audit trail)"),
                Line::from(format!("> {}", crate::tui::view::typed(input, w))),
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
        Overlay::RollbackPick {
            id,
            service,
            targets,
            sel,
        } => {
            let r = centered(content, 72, targets.len() as u16 + 4);
            f.render_widget(Clear, r);
            // A long list (every image on the manager) scrolls with the selection.
            let rows = (r.height as usize).saturating_sub(4).max(1);
            let shown = crate::tui::popups::picker::window(*sel, targets.len(), rows);
            let tag_w = targets
                .iter()
                .map(|t| t.tag.width())
                .max()
                .unwrap_or(0)
                .min(24);
            let mut lines = vec![Line::from(format!("Roll {service} back to:"))];
            for (i, t) in targets
                .iter()
                .enumerate()
                .skip(shown.start)
                .take(shown.len())
            {
                let style = if i == *sel {
                    theme.selected()
                } else {
                    Style::default()
                };
                let tag = crate::sanitize::clean_max(&t.tag, 24);
                let pad = " ".repeat(tag_w.saturating_sub(tag.width()));
                lines.push(Line::from(vec![
                    Span::styled(format!("  {tag}{pad}  "), style),
                    Span::styled(t.when(&local), style.patch(theme.dim())),
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
        Overlay::RollbackConfirm {
            id,
            service,
            swarm,
            to,
            input,
            wrong,
        } => {
            let ok = crate::tui::tabs::releases::confirms(input.value(), service, swarm.as_deref());
            let names = match swarm {
                Some(s) => format!("{service} (or {s})"),
                None => service.clone(),
            };
            let width = 64.min(content.width).saturating_sub(2) as usize;
            let mut lines: Vec<Line> = Vec::new();
            let now = now_line(rs, service);
            for t in wrap(&now.text, width, 7) {
                lines.push(Line::from(Span::styled(t, theme.tone(now.tone))));
            }
            // Rolling back to what runs now changes nothing: say so before it is typed.
            let runs_now = rs.list.iter().find(|r| r.id == *id).is_some_and(|r| {
                rs.rollback_targets(r)
                    .iter()
                    .any(|t| t.tag == *to && t.running)
            });
            if runs_now {
                for t in wrap(
                    &format!("{to} runs now: rolling back to it changes nothing."),
                    width,
                    0,
                ) {
                    lines.push(Line::from(Span::styled(t, theme.busy())));
                }
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
                        crate::tui::view::typed(input, r.width.saturating_sub(4) as usize)
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
        Overlay::ReleaseInfo { id, top } => release_info(f, rs, local, *id, *top, theme, content),
        _ => {}
    }
}

fn release_info(
    f: &mut Frame,
    rs: &ReleasesState,
    local: chrono::FixedOffset,
    id: i64,
    top: usize,
    theme: &Theme,
    area: Rect,
) {
    f.render_widget(Clear, area);
    let width = area.width.saturating_sub(2) as usize;
    let height = area.height.saturating_sub(2) as usize;
    let lines = rs.info_lines(id, width, local);
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
fn service_name(rs: &ReleasesState, service: &str) -> String {
    match rs.live(service) {
        Some(s) if !s.swarm_service.is_empty() && s.swarm_service != service => {
            format!("{service} ({})", s.swarm_service)
        }
        _ => service.to_string(),
    }
}

/// "  now  registry/api:v1.4.0  running 2/2 ✔": what the engine runs, from `ReleasesState::services`.
fn now_line(rs: &ReleasesState, service: &str) -> TextLine {
    let (text, tone) = rs.engine_runs(service);
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
