//! Drawing. Pure: reads `&App` only, never the clock or the disk (`app.now` is the time).

pub(crate) mod format;
mod overlays;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use unicode_width::UnicodeWidthStr;

use super::app::{App, LockState};
use super::layout;
use super::msg::Level;
use super::tab::Tab;

pub use format::{bytes, sparkline, wrap};

/// Styles by role, from the palette of `ui.theme`; they honour `NO_COLOR` (modifiers
/// stay, colours go).
pub(crate) struct Theme<'a> {
    pub(crate) color: bool,
    pub(crate) palette: &'a super::theme::Palette,
}

impl Theme<'_> {
    pub(crate) fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }
    pub(crate) fn ok(&self) -> Style {
        self.fg(self.palette.ok)
    }
    pub(crate) fn bad(&self) -> Style {
        self.fg(self.palette.bad).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn busy(&self) -> Style {
        self.fg(self.palette.busy)
    }
    pub(crate) fn dim(&self) -> Style {
        self.fg(self.palette.dim)
    }
    pub(crate) fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    pub(crate) fn title(&self) -> Style {
        self.fg(self.palette.title).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn badge(&self) -> Style {
        if self.color {
            Style::new()
                .bg(self.palette.badge)
                .fg(Color::Black)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }
    pub(crate) fn tone(&self, t: super::tabs::releases::Tone) -> Style {
        use super::tabs::releases::Tone;
        match t {
            Tone::Plain => Style::new(),
            Tone::Title => self.title(),
            Tone::Ok => self.ok(),
            Tone::Warn => self.busy(),
            Tone::Bad => self.bad(),
            Tone::Dim => self.dim(),
        }
    }
}

/// Whether an action is hidden (read-only) or refused (and why): what the keys in the
/// tabs' titles look like. `App` answers it; the tab views ask it without the state.
pub(crate) trait KeyPolicy {
    fn hidden(&self, action: crate::tui::keymap::Action) -> bool;
    fn refused(&self, action: crate::tui::keymap::Action) -> Option<&str>;
}

impl KeyPolicy for App {
    fn hidden(&self, action: crate::tui::keymap::Action) -> bool {
        App::hidden(self, action)
    }
    fn refused(&self, action: crate::tui::keymap::Action) -> Option<&str> {
        App::refused(self, action)
    }
}

/// What every tab's view may read besides its own state.
pub(crate) struct Shared<'a> {
    pub size: (u16, u16),
    pub now: chrono::DateTime<chrono::Utc>,
    pub local: chrono::FixedOffset,
    pub filters: &'a std::collections::HashMap<Tab, String>,
    pub keys: &'a dyn KeyPolicy,
}

impl<'a> Shared<'a> {
    pub(crate) fn of(app: &'a App) -> Self {
        Shared {
            size: app.size,
            now: app.now,
            local: app.local,
            filters: &app.filters,
            keys: app,
        }
    }
}

/// Draws the whole dashboard.
pub fn draw(f: &mut Frame, app: &App) {
    let theme = Theme {
        color: app.color,
        palette: &app.palette,
    };
    let area = f.area();
    if area.width < layout::MIN_SIZE.0 || area.height < layout::MIN_SIZE.1 {
        let msg = format!(
            "terminal too small: {}x{}, opsdeck needs {}x{}",
            area.width,
            area.height,
            layout::MIN_SIZE.0,
            layout::MIN_SIZE.1
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let (tabs, _, status) = layout::frame((area.width, area.height));
    draw_tabs(f, app, &theme, tabs);
    match app.tab {
        Tab::Exports => {
            let shared = Shared::of(app);
            let view = super::tabs::exports::view::View {
                es: &app.exports,
                shared: &shared,
            };
            super::tabs::exports::view::draw(f, &view, &theme)
        }
        Tab::Schedules => {
            let shared = Shared::of(app);
            let view = super::tabs::schedules::view::View {
                ss: &app.schedules,
                shared: &shared,
                groups: &app.exports.groups,
                lock: &app.lock,
            };
            super::tabs::schedules::view::draw(f, &view, &theme)
        }
        Tab::Releases => {
            let shared = Shared::of(app);
            let view = super::tabs::releases::view::View {
                rs: &app.releases,
                shared: &shared,
            };
            super::tabs::releases::view::draw(f, &view, &theme)
        }
        Tab::Logs => super::tabs::logs::view::draw(f, &app.logs, app.size, &theme),
    }
    draw_status(f, app, &theme, status);
    overlays::draw(f, app, &theme);
    draw_toasts(f, app, &theme, status);
}

fn draw_tabs(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let mut spans = Vec::new();
    for (tab, label, _, _) in layout::tab_labels() {
        let style = if tab == app.tab {
            theme.selected().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::styled("│", theme.dim()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
    if app.demo {
        let badge = " DEMO ";
        let w = badge.len() as u16;
        let r = Rect {
            x: area.x + area.width.saturating_sub(w),
            width: w.min(area.width),
            ..area
        };
        f.render_widget(Paragraph::new(Span::styled(badge, theme.badge())), r);
    }
}

/// What is typed in `input`, fitted to `width` columns: the part around the cursor, with
/// the cursor drawn as `▏` (long input scrolls instead of running off the box).
pub(crate) fn typed(input: &tui_input::Input, width: usize) -> String {
    let width = width.max(2);
    let chars: Vec<char> = crate::sanitize::clean_max(input.value(), 100_000)
        .chars()
        .collect();
    let cursor = input.cursor().min(chars.len());
    let room = width - 1;
    let start = (cursor + 1).saturating_sub(room);
    let end = (start + room).min(chars.len());
    let mut out: String = chars[start..cursor].iter().collect();
    out.push('▏');
    out.extend(&chars[cursor..end]);
    if start > 0 {
        out.replace_range(..out.chars().next().map_or(0, char::len_utf8), "…");
    }
    out
}

/// A `/` search typed in a pane's bottom border (Logs, the CSV preview), fitted to `width`:
/// long input scrolls, and the keys are said while there is room.
pub(crate) fn search_prompt(input: &tui_input::Input, width: u16) -> String {
    let hint = " · Enter searches · Esc cancels ";
    let room = (width as usize).saturating_sub(4);
    if room > hint.width() + 20 {
        format!(" /{}{hint}", typed(input, room - hint.width()))
    } else {
        format!(" /{} ", typed(input, room))
    }
}

/// The `:` command line or the `/` filter, in place of the status bar while typed.
fn draw_prompt(f: &mut Frame, app: &App, theme: &Theme, area: Rect) -> bool {
    let clean = |s: &str| crate::sanitize::clean_max(s, 400);
    let mut spans = match (&app.command, &app.filter_input) {
        (Some(c), _) => {
            // An error keeps up to half the line, so long input never hides it.
            let width = area.width.saturating_sub(1) as usize;
            let error = c.error.as_ref().map(|e| format!("  {}", clean(e)));
            let text_room = match &error {
                Some(e) => width.saturating_sub(e.width()).max(width / 2),
                None => width,
            };
            let mut spans = vec![
                Span::styled(":", theme.title()),
                Span::raw(typed(&c.input, text_room)),
            ];
            if let Some(e) = error {
                spans.push(Span::styled(e, theme.bad()));
                f.render_widget(Paragraph::new(Line::from(spans)), area);
                return true;
            } else if !c.candidates.is_empty() {
                spans.push(Span::styled(
                    format!("  {}", clean(&c.candidates.join("  "))),
                    theme.dim(),
                ));
            } else {
                spans.push(Span::styled(
                    "  Tab completes · ↑ history · Enter runs · Esc closes",
                    theme.dim(),
                ));
            }
            spans
        }
        (None, Some(input)) => vec![
            Span::styled("/", theme.title()),
            Span::raw(typed(input, area.width.saturating_sub(1) as usize)),
            Span::styled("  Enter keeps the filter · Esc clears it", theme.dim()),
        ],
        _ => return false,
    };
    // The hint goes when the typed text needs the room.
    let used: usize = spans.iter().take(2).map(|s| s.content.width()).sum();
    if used + 2 >= area.width as usize {
        spans.truncate(2);
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
    true
}

fn draw_status(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    if draw_prompt(f, app, theme, area) {
        return;
    }
    let sep = || Span::styled(" │ ", theme.dim());
    // Each field is written without leading space; one space leads the bar or follows a
    // badge.
    let mut spans = vec![];
    if app.readonly {
        spans.push(Span::styled(
            " read-only ",
            theme.busy().add_modifier(Modifier::REVERSED),
        ));
    }
    spans.push(Span::raw(" "));
    if let Some(row) = &app.ledger_tampered {
        let text = format!(
            " ledger tampered at {} ",
            crate::sanitize::clean_max(row, 40)
        );
        spans.push(Span::styled(
            text,
            theme.bad().add_modifier(Modifier::REVERSED),
        ));
        spans.push(Span::raw(" "));
    }
    if let Some(sessions) = &app.sessions {
        // "server · 3 sessions (alice, bob)": who else is looking.
        let mut users: Vec<&str> = sessions.iter().map(|s| s.user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        spans.push(Span::styled(
            format!(
                "server · {} session{} ({})",
                sessions.len(),
                if sessions.len() == 1 { "" } else { "s" },
                users.join(", ")
            ),
            theme.ok(),
        ));
        spans.push(sep());
    }
    if app.waiting > 0 {
        // Read-only cannot approve here: the count only says what waits.
        let label = if app.readonly {
            "awaiting approval"
        } else {
            "waiting on you"
        };
        spans.push(Span::styled(
            format!("{} {label}", app.waiting),
            theme.busy().add_modifier(Modifier::BOLD),
        ));
        spans.push(sep());
    }
    if let Some(f) = app.notify_failing.first() {
        let more = app.notify_failing.len() - 1;
        spans.push(Span::styled(
            format!(
                "notify {} failing{}",
                f.sink,
                if more > 0 {
                    format!(" (+{more})")
                } else {
                    String::new()
                }
            ),
            theme.bad(),
        ));
        spans.push(sep());
    }
    spans.push(Span::raw("TestOps "));
    spans.push(match &app.testops {
        _ if app.testops_off() => Span::styled("not set up", theme.dim()),
        None => Span::styled("checking…", theme.dim()),
        Some(Ok(())) => Span::styled("ok", theme.ok()),
        Some(Err(e)) => {
            // Keep room for the other fields; the whole reason is in the log and `opsdeck check`.
            let room = (area.width as usize).saturating_sub(62).max(12);
            let reason: String = if e.chars().count() > room {
                e.chars()
                    .take(room - 1)
                    .chain(std::iter::once('…'))
                    .collect()
            } else {
                e.clone()
            };
            Span::styled(format!("failing: {reason}"), theme.bad())
        }
    });
    spans.push(sep());
    spans.push(Span::raw(match app.disk_free {
        Some(b) => format!("{} free", bytes(b)),
        None => "disk …".into(),
    }));
    spans.push(sep());
    spans.push(match &app.lock {
        LockState::Unknown => Span::styled("scheduler …", theme.dim()),
        LockState::Off => Span::styled("no scheduler", theme.dim()),
        LockState::Leader => Span::styled("scheduler: here", theme.ok()),
        LockState::Follower(h) => Span::styled(format!("scheduler: {h}"), theme.busy()),
    });
    let clock = format!(" {} UTC │ ? help ", app.now.format("%H:%M"));
    let left: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let room = (area.width as usize).saturating_sub(clock.chars().count());
    let line = if left > room {
        // Narrow terminal: shorten the left part from its end, each part keeping its style
        // (a red "ledger tampered" stays red), and keep the clock.
        let mut budget = room.saturating_sub(1);
        let mut kept = Vec::new();
        for span in spans {
            let n = span.content.chars().count();
            if n <= budget {
                budget -= n;
                kept.push(span);
            } else {
                // Whole words only: "scheduler:" alone, or half a word, says the wrong thing.
                let mut cut = String::new();
                for w in span.content.split_inclusive(' ') {
                    if cut.chars().count() + w.trim_end().chars().count() > budget {
                        break;
                    }
                    cut.push_str(w);
                }
                let cut = cut.trim_end();
                if !cut.is_empty() && !cut.ends_with(':') {
                    kept.push(Span::styled(format!("{cut} "), span.style));
                }
                break;
            }
        }
        // A separator left last goes with the field it separated.
        if kept.last().is_some_and(|s| s.content == " │ ") {
            kept.pop();
            kept.push(Span::raw(" "));
        }
        kept.push(Span::raw("…"));
        let used: usize = kept.iter().map(|s| s.content.chars().count()).sum();
        kept.push(Span::raw(" ".repeat(room.saturating_sub(used))));
        kept.push(Span::styled(clock, theme.dim()));
        Line::from(kept)
    } else {
        spans.push(Span::raw(" ".repeat(room - left)));
        spans.push(Span::styled(clock, theme.dim()));
        Line::from(spans)
    };
    f.render_widget(
        Paragraph::new(line).style(theme.dim().add_modifier(Modifier::REVERSED)),
        area,
    );
}

fn draw_toasts(f: &mut Frame, app: &App, theme: &Theme, status: Rect) {
    // Newest at the bottom, stacked upwards; a toast wider than the screen wraps.
    let mut bottom = status.y;
    for t in app.toasts.iter().rev() {
        let width = status.width.saturating_sub(2).max(1);
        let lines = wrap(&t.text, width as usize, 0);
        let w = lines.iter().map(|l| l.width()).max().unwrap_or(0) as u16 + 2;
        let h = lines.len() as u16;
        if bottom <= h {
            break;
        }
        bottom -= h;
        let r = Rect {
            x: status.width.saturating_sub(w),
            y: bottom,
            width: w.min(status.width),
            height: h,
        };
        let style = match t.level {
            Level::Info => theme.ok().add_modifier(Modifier::REVERSED),
            Level::Error => theme.bad().add_modifier(Modifier::REVERSED),
        };
        let text: Vec<Line> = lines
            .into_iter()
            .map(|l| Line::from(format!(" {l}")))
            .collect();
        f.render_widget(ratatui::widgets::Clear, r);
        f.render_widget(Paragraph::new(text).style(style), r);
    }
}

/// A pane title naming its keys: " Jobs  r run now · p pause ". A key the server would refuse
/// us is greyed and struck through; `?` or pressing it gives the reason.
pub(crate) fn keys_title(
    shared: &Shared,
    theme: &Theme,
    style: Style,
    name: &str,
    keys: &[(Option<crate::tui::keymap::Action>, &'static str)],
) -> Line<'static> {
    // Read-only hides the actions rather than greying them.
    let keys: Vec<_> = keys
        .iter()
        .filter(|(a, _)| !a.is_some_and(|a| shared.keys.hidden(a)))
        .collect();
    if keys.is_empty() {
        return Line::from(Span::styled(format!(" {name} "), style));
    }
    let mut spans = vec![Span::styled(format!(" {name}  "), style)];
    for (i, (action, text)) in keys.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", style));
        }
        let refused = action.is_some_and(|a| shared.keys.refused(a).is_some());
        spans.push(Span::styled(
            *text,
            if refused {
                theme.dim().add_modifier(Modifier::CROSSED_OUT)
            } else {
                style
            },
        ));
    }
    spans.push(Span::styled(" ", style));
    Line::from(spans)
}
