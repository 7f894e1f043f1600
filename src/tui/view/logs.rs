//! The Logs tab: sources on the left, the selected one's lines on the right, coloured by
//! level, search matches highlighted, follow state and filters in the title.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::Theme;
use crate::logs::Level;
use crate::tui::app::App;
use crate::tui::layout;

fn level_style(l: Option<Level>, theme: &Theme) -> Style {
    match l {
        Some(Level::Error) => theme.bad(),
        Some(Level::Warn) => theme.busy(),
        Some(Level::Debug) | Some(Level::Trace) => theme.dim(),
        _ => Style::new(),
    }
}

pub(super) fn draw(f: &mut Frame, app: &App, theme: &Theme) {
    let (_, content, _) = layout::frame(app.size);
    let [list, body] =
        Layout::horizontal([Constraint::Length(22), Constraint::Min(10)]).areas(content);
    let logs = &app.logs;
    let items: Vec<Line> = logs
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let text = format!("{} ({})", s.name, s.lines.len());
            if i == logs.sel {
                Line::from(Span::styled(text, theme.selected()))
            } else {
                Line::from(text)
            }
        })
        .collect();
    f.render_widget(
        Paragraph::new(items).block(Block::bordered().title(" Sources ←/→ ")),
        list,
    );

    let Some(src) = logs.sources.get(logs.sel) else {
        f.render_widget(
            Paragraph::new("no log sources").block(Block::bordered()),
            body,
        );
        return;
    };
    let name_w = logs
        .sources
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    let visible = logs.visible();
    let h = body.height.saturating_sub(2) as usize;
    let end = visible.len().saturating_sub(logs.offset);
    let start = end.saturating_sub(h);
    let lines: Vec<Line> = visible[start..end]
        .iter()
        .zip(start..)
        .map(|(&(s, i), n)| {
            let l = &logs.sources[s].lines[i];
            let style = level_style(l.level, theme);
            let text = if logs.timestamps {
                l.text.as_str()
            } else {
                l.without_ts()
            };
            let mut spans = Vec::new();
            if logs.merged {
                spans.push(Span::styled(
                    format!("{:<name_w$} ", logs.sources[s].name),
                    theme.title(),
                ));
            }
            match &logs.regex {
                Some(r) if !logs.search.is_empty() => {
                    let mut at = 0;
                    for m in r.find_iter(text) {
                        spans.push(Span::styled(text[at..m.start()].to_string(), style));
                        spans.push(Span::styled(
                            m.as_str().to_string(),
                            style.add_modifier(Modifier::REVERSED),
                        ));
                        at = m.end();
                    }
                    spans.push(Span::styled(text[at..].to_string(), style));
                }
                _ => spans.push(Span::styled(text.to_string(), style)),
            }
            let line = Line::from(spans);
            if logs.cursor == Some(n) {
                line.style(Style::new().add_modifier(Modifier::UNDERLINED))
            } else {
                line
            }
        })
        .collect();
    let shown_name = if logs.merged {
        "all sources, by time"
    } else {
        src.name.as_str()
    };
    let mut title = vec![Span::styled(format!(" {shown_name} "), theme.title())];
    if logs.follow {
        title.push(Span::styled("FOLLOW ", theme.ok()));
    } else {
        title.push(Span::styled(
            format!("PAUSED · {} new lines (F follows) ", logs.new_lines),
            theme.busy(),
        ));
    }
    if let Some(min) = logs.min_level {
        title.push(Span::raw(format!("· ≥{} ", min.as_str())));
    }
    if logs.only_matching {
        title.push(Span::raw("· & only matches "));
    }
    let bottom = match (&logs.search_input, &src.note) {
        (Some(i), _) => format!(" /{}▏", i.value()),
        (None, _) if !logs.search.is_empty() => {
            let file = match &logs.file_search {
                Some(fs) if fs.finished => format!(" · whole file: {} matching lines", fs.matches),
                Some(fs) => format!(
                    " · whole file: {} so far ({}%, Esc cancels)",
                    fs.matches,
                    (fs.done_bytes * 100)
                        .checked_div(fs.total_bytes)
                        .unwrap_or(0)
                ),
                None => String::new(),
            };
            format!(" /{} · n/N · & filter{file} ", logs.search)
        }
        (None, Some(n)) => format!(" {n} "),
        _ => " / search · & · l level · e/E errors · m merge · t time · w wrap · s save ".into(),
    };
    let mut p = Paragraph::new(lines).block(
        Block::bordered()
            .title(Line::from(title))
            .title_bottom(Span::styled(bottom, theme.dim())),
    );
    if logs.wrap {
        p = p.wrap(Wrap { trim: false });
    }
    f.render_widget(p, body);
}
