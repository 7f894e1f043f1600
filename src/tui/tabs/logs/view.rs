//! The Logs tab: sources on the left, the selected one's lines on the right, coloured by
//! level (or by their own ANSI colours), search matches highlighted, folded messages marked,
//! JSON pretty-printed on request; follow state, format and filters in the title. The match
//! list and an opened match take the place of the lines.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::{LogsState, MatchView};
use crate::logs::Level;
use crate::tui::layout;
use crate::tui::view::Theme;
use crate::tui::view::format::count;

fn level_style(l: Option<Level>, theme: &Theme) -> Style {
    match l {
        Some(Level::Fatal) => theme.bad().add_modifier(Modifier::BOLD),
        Some(Level::Error) => theme.bad(),
        Some(Level::Warn) => theme.busy(),
        Some(Level::Debug) | Some(Level::Trace) => theme.dim(),
        _ => Style::new(),
    }
}

/// Draws the tab into the content area of a `size` terminal.
pub(crate) fn draw(f: &mut Frame, logs: &LogsState, size: (u16, u16), theme: &Theme) {
    let (_, content, _) = layout::frame(size);
    let [list, body] = Layout::horizontal([
        Constraint::Length(logs.sources_width(size)),
        Constraint::Min(10),
    ])
    .areas(content);
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
    if let Some(view) = &logs.match_view {
        return draw_matches(f, logs, view, body, theme);
    }
    let visible = logs.visible();
    let h = body.height.saturating_sub(2) as usize;
    let end = visible.len().saturating_sub(logs.offset);
    // From the bottom up until the page is full: a pretty-printed JSON line takes several.
    let mut rows: Vec<Line> = Vec::new();
    for n in (0..end).rev() {
        let (s, i) = visible.get(n);
        if rows.len() >= h {
            break;
        }
        let mut line_rows = line_rows(logs, s, i, name_w, theme);
        // Wrapped here, not by the paragraph: counted from the bottom, the newest line is
        // the last row drawn.
        if logs.wrap {
            let width = usize::from(body.width.saturating_sub(2)).max(1);
            line_rows = line_rows
                .into_iter()
                .flat_map(|l| hard_wrap(l, width))
                .collect();
        }
        if logs.cursor == Some(n) {
            for r in &mut line_rows {
                *r = std::mem::take(r).style(Style::new().add_modifier(Modifier::UNDERLINED));
            }
        }
        line_rows.reverse();
        rows.extend(line_rows);
    }
    rows.reverse();
    let mut lines: Vec<Line> = rows.split_off(rows.len().saturating_sub(h));
    // An empty source says it is waiting, rather than leaving a blank pane (a source with a
    // note, such as a missing file, says why in the border instead).
    if visible.is_empty() && !logs.merged && src.lines.is_empty() && src.note.is_none() {
        lines = vec![Line::from(Span::styled(
            "no lines yet: they show here as they are written",
            theme.dim(),
        ))];
    }
    // A filter that hides every line says so, rather than leaving an empty pane.
    else if visible.is_empty() && (logs.min_level.is_some() || logs.only_matching) {
        let total: usize = if logs.merged {
            logs.sources.iter().map(|s| s.lines.len()).sum()
        } else {
            src.lines.len()
        };
        let why = match (logs.min_level, logs.only_matching) {
            (Some(min), false) => format!("no message at {} or above", min.as_str()),
            (None, _) => format!("no line matches /{}", logs.search),
            (Some(min), true) => format!(
                "no message at {} or above matches /{}",
                min.as_str(),
                logs.search
            ),
        };
        let undo = match (logs.min_level.is_some(), logs.only_matching) {
            (true, true) => "press l to cycle back to all levels, & to show every line",
            (true, false) => "press l to cycle back to all levels",
            _ => "press & to show every line",
        };
        let width = usize::from(body.width.saturating_sub(2));
        let why = format!("{why} in {}", count(total as u64, "line", "lines"));
        lines = [why.as_str(), undo]
            .iter()
            .flat_map(|t| crate::tui::view::wrap(t, width, 2))
            .map(|t| Line::from(Span::styled(t, theme.dim())))
            .collect();
    }
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
            format!(
                "PAUSED · {} (F follows) ",
                count(logs.new_lines as u64, "new line", "new lines")
            ),
            theme.busy(),
        ));
    }
    if let Some(min) = logs.min_level {
        title.push(Span::raw(format!("· ≥{} ", min.as_str())));
    }
    if logs.only_matching {
        title.push(Span::raw("· & only matches "));
    }
    if !logs.merged {
        title.push(Span::raw(format!("· {} ", src.parser.format_name())));
    }
    if logs.folded {
        title.push(Span::raw("· folded "));
    }
    if logs.wrap {
        title.push(Span::raw("· wrap "));
    }
    let bottom = match (&logs.search_input, &src.note) {
        (Some(i), _) => crate::tui::view::search_prompt(i, body.width),
        (None, _) if !logs.search.is_empty() => {
            let file = match &logs.file_search {
                Some(fs) if fs.finished => {
                    format!(
                        " · whole file: {} (M lists them)",
                        count(fs.matches, "matching line", "matching lines")
                    )
                }
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
        _ => " / search · l level · e/E errors · z fold · f format · J json · m merge · ? keys "
            .into(),
    };
    let p = Paragraph::new(lines).block(
        Block::bordered()
            .title(Line::from(title))
            .title_bottom(Span::styled(bottom, theme.dim())),
    );
    f.render_widget(p, body);
}

/// `line` cut into rows of `width` display columns, each span keeping its style.
fn hard_wrap(line: Line<'static>, width: usize) -> Vec<Line<'static>> {
    use unicode_width::UnicodeWidthChar;
    let style = line.style;
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in line.spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width && used > 0 {
                if !piece.is_empty() {
                    row.push(Span::styled(std::mem::take(&mut piece), span.style));
                }
                rows.push(Line::from(std::mem::take(&mut row)).style(style));
                used = 0;
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty() {
            row.push(Span::styled(piece, span.style));
        }
    }
    rows.push(Line::from(row).style(style));
    rows
}

/// The screen rows of line `i` of source `s`: one, or a pretty-printed JSON object's.
fn line_rows(
    logs: &LogsState,
    s: usize,
    i: usize,
    name_w: usize,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let l = &logs.sources[s].lines[i];
    let style = level_style(l.level, theme);
    let text = if logs.timestamps {
        l.text.as_str()
    } else {
        l.without_ts()
    };
    // Tabs are kept in the line; on screen they are four spaces.
    let expanded;
    let text = if text.contains('\t') {
        expanded = text.replace('\t', "    ");
        expanded.as_str()
    } else {
        text
    };
    let mut spans = Vec::new();
    if logs.merged {
        spans.push(Span::styled(
            format!("{:<name_w$} ", logs.sources[s].name),
            theme.title(),
        ));
    }
    let pretty = logs
        .pretty
        .then(|| crate::logs::format::fields::pretty(text))
        .flatten();
    if let Some(p) = pretty {
        let mut rows = Vec::new();
        for (k, row) in p.lines().enumerate() {
            let mut line_spans = if k == 0 {
                std::mem::take(&mut spans)
            } else {
                vec![]
            };
            line_spans.extend(highlighted(logs, row, style));
            rows.push(Line::from(line_spans));
        }
        return rows;
    }
    match (&l.ansi, theme.color, logs.search.is_empty()) {
        // The line's own colours, when it has some and no search highlights are drawn.
        (Some(a), true, true) if logs.timestamps => {
            spans.extend(ansi_spans(&a.replace('\t', "    "), style))
        }
        _ => spans.extend(highlighted(logs, text, style)),
    }
    if logs.folded && !l.cont {
        let more = logs.continuation_count(s, i);
        if more > 0 {
            spans.push(Span::styled(format!("  [+{more} lines, z]"), theme.dim()));
        }
    }
    vec![Line::from(spans)]
}

/// `text` in `style`, search matches reversed.
fn highlighted(logs: &LogsState, text: &str, style: Style) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
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
    spans
}

/// A line's SGR colours as ratatui styles (over the level's style).
fn ansi_spans(a: &str, base: Style) -> Vec<Span<'static>> {
    use ansi_to_tui::IntoText;
    match a.as_bytes().into_text() {
        Ok(text) => text
            .lines
            .into_iter()
            .flat_map(|l| l.spans)
            .map(|sp| Span::styled(sp.content.into_owned(), base.patch(sp.style)))
            .collect(),
        Err(_) => vec![Span::styled(crate::logs::line::strip_ansi(a), base)],
    }
}

/// The match list, or an opened match with the file's lines around it.
fn draw_matches(
    f: &mut Frame,
    logs: &LogsState,
    view: &MatchView,
    body: ratatui::layout::Rect,
    theme: &Theme,
) {
    let h = body.height.saturating_sub(2) as usize;
    let Some(fs) = &logs.file_search else {
        return;
    };
    let status = if fs.finished { "" } else { " (searching…)" };
    match view {
        MatchView::List { sel } => {
            let top = sel
                .saturating_sub(h / 2)
                .min(fs.hits.len().saturating_sub(h));
            let rows: Vec<Line> = fs
                .hits
                .iter()
                .enumerate()
                .skip(top)
                .take(h)
                .map(|(k, hit)| {
                    let line = Line::from(vec![
                        Span::styled(format!("{:>9} ", hit.line), theme.dim()),
                        Span::raw(crate::logs::line::strip_ansi(&hit.text).replace('\t', "    ")),
                    ]);
                    if k == *sel {
                        line.style(theme.selected())
                    } else {
                        line
                    }
                })
                .collect();
            let title = format!(
                " /{} · {}{status} · listed: {} ",
                logs.search,
                count(fs.matches, "matching line", "matching lines"),
                fs.hits.len()
            );
            f.render_widget(
                Paragraph::new(rows).block(
                    Block::bordered()
                        .title(Span::styled(title, theme.title()))
                        .title_bottom(Span::styled(
                            " j/k choose · Enter opens in the file · Esc back ",
                            theme.dim(),
                        )),
                ),
                body,
            );
        }
        MatchView::Context { sel, ctx } => {
            let hit = fs.hits.get(*sel);
            let first = hit.map_or(0, |h| h.line);
            let rows: Vec<Line> = match ctx {
                None => vec![Line::from("reading…")],
                Some(Err(e)) => vec![Line::from(Span::styled(e.clone(), theme.bad()))],
                Some(Ok(c)) => c
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(k, text)| {
                        let n = (first + k as u64).saturating_sub(c.at as u64);
                        let line = Line::from(vec![
                            Span::styled(format!("{n:>9} "), theme.dim()),
                            Span::raw(text.replace('\t', "    ")),
                        ]);
                        if k == c.at {
                            line.style(theme.selected())
                        } else {
                            line
                        }
                    })
                    .collect(),
            };
            let title = format!(
                " {} · line {first} · match {} of {} ",
                fs.spec,
                sel + 1,
                fs.matches
            );
            f.render_widget(
                Paragraph::new(rows).block(
                    Block::bordered()
                        .title(Span::styled(title, theme.title()))
                        .title_bottom(Span::styled(
                            " j/k next/previous match · Esc back to the list ",
                            theme.dim(),
                        )),
                ),
                body,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use ratatui::style::{Color, Style};

    #[test]
    fn ansi_colours_become_styles_over_the_level_style() {
        let spans = super::ansi_spans(
            "\x1b[31mred\x1b[0m plain \x1b[1;32mbold green\x1b[0m",
            Style::new().bg(Color::Black),
        );
        let text: String = spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, "red plain bold green");
        assert_eq!(spans[0].style.fg, Some(Color::Red));
        assert_eq!(
            spans[0].style.bg,
            Some(Color::Black),
            "the level's style stays under"
        );
        let green = spans.iter().find(|s| s.content == "bold green").unwrap();
        assert_eq!(green.style.fg, Some(Color::Green));
        assert!(
            green
                .style
                .add_modifier
                .contains(ratatui::style::Modifier::BOLD)
        );
    }
}
