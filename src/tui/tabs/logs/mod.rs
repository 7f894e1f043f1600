//! The Logs tab's state and its part of `update`: a ring buffer per source, follow and pause,
//! search (regex, smart case) with n/N, only-matching messages, a minimum level, error jumps,
//! folded multi-line messages, a format chosen per source, pretty JSON.

pub mod rows;
pub(crate) mod view;

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent};
use regex::Regex;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::Ctx;
use crate::logs::multiline::{Choice, Parser};
use crate::logs::search::{Context, Hit};
use crate::logs::{Level, LogEvent, LogLine, SourceKind, TailEvent};
use crate::tui::keymap::Action;
use crate::tui::layout;
use crate::tui::msg::{Cmd, Level as ToastLevel};
use crate::tui::request::Req;

/// Lines kept per source (`logs.max_lines`): memory stays bounded under any log flood.
pub const MAX_LINES: usize = 100_000;

/// One source as the tab holds it.
#[derive(Debug, Clone, Default)]
pub struct SourceView {
    pub id: usize,
    pub name: String,
    pub spec: String,
    pub lines: VecDeque<LogLine>,
    /// The latest note (rotated, missing, binary).
    pub note: Option<String>,
    /// The source's format: detected from its first lines (as the tailer detects it), or
    /// chosen with `f`, in which case this parser re-reads every line.
    pub parser: Parser,
    /// Lines dropped from the front (the ring buffer was full): a line's number since the
    /// source began is `dropped + index`, which the cached rows keep.
    pub dropped: u64,
    /// The latest timestamp among the dropped lines (the merge key of the lines after them).
    pub carry: Option<chrono::DateTime<chrono::Utc>>,
    /// Bumped when the lines are rewritten (a format change): the cached rows are rebuilt.
    pub epoch: u64,
}

/// A whole-file search running (or done) in the background.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSearch {
    pub generation: u64,
    /// The source searched (its file spec).
    pub spec: String,
    pub done_bytes: u64,
    pub total_bytes: u64,
    pub matches: u64,
    pub finished: bool,
    /// The matches found so far (the first `search::KEEP`), for the match list.
    pub hits: Vec<Hit>,
}

/// The match list (`M`) and a match opened in its file (Enter), over the log view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchView {
    List {
        sel: usize,
    },
    /// Lines around match `sel`, read from the file (`None` while they are read).
    Context {
        sel: usize,
        ctx: Option<Result<Context, String>>,
    },
}

/// Matches the list shows first; the search reports as soon as it has them.
pub const FIRST_PAGE: usize = 100;
/// Lines of context shown around an opened match, each side.
pub const CONTEXT_LINES: usize = 20;

/// The tab's state.
#[derive(Debug, Clone)]
pub struct LogsState {
    pub file_search: Option<FileSearch>,
    /// The line the last jump (n/N, e/E) went to, as an index into `visible()`.
    pub cursor: Option<usize>,
    pub sources: Vec<SourceView>,
    pub sel: usize,
    /// Lines between the bottom of the view and the newest line; 0 while following.
    pub offset: usize,
    pub follow: bool,
    /// Lines that arrived while paused.
    pub new_lines: usize,
    pub search: String,
    pub regex: Option<Regex>,
    pub search_input: Option<Input>,
    pub only_matching: bool,
    pub min_level: Option<Level>,
    pub wrap: bool,
    /// All sources in one view, ordered by timestamp, each line tagged with its source.
    pub merged: bool,
    /// Show the lines' own timestamps.
    pub timestamps: bool,
    pub max_lines: usize,
    /// Show only the first line of each multi-line message.
    pub folded: bool,
    /// Pretty-print JSON lines.
    pub pretty: bool,
    pub match_view: Option<MatchView>,
    /// `visible()`'s rows, kept until an input changes.
    pub rows: rows::RowsCache,
}

impl Default for LogsState {
    fn default() -> Self {
        LogsState {
            file_search: None,
            cursor: None,
            sources: vec![],
            sel: 0,
            offset: 0,
            follow: true,
            new_lines: 0,
            search: String::new(),
            regex: None,
            search_input: None,
            only_matching: false,
            min_level: None,
            wrap: false,
            merged: false,
            timestamps: true,
            max_lines: MAX_LINES,
            folded: false,
            pretty: false,
            match_view: None,
            rows: Default::default(),
        }
    }
}

impl LogsState {
    /// Continuation lines after line `i` of source `s` (folded away when `folded`).
    pub fn continuation_count(&self, s: usize, i: usize) -> usize {
        self.sources[s]
            .lines
            .range(i + 1..)
            .take_while(|l| l.cont)
            .count()
    }

    /// The lines the view shows, as (source, line index): the selected source's, or with
    /// `merged` every source's, ordered by timestamp (see `rows` for the order), that
    /// pass the filters: a message shows when its head's level is at least `min_level` and,
    /// with `only_matching`, the search matches any of its lines. Cached: the order of every
    /// line is rebuilt only when the selection, the merge or the search change; a filter
    /// change is one pass over per-line flags; new lines are added to both.
    pub fn visible(&self) -> rows::Visible {
        self.rows.get(self)
    }
}

/// A regex with smart case: case-insensitive unless the pattern has an upper-case letter.
/// A regex error on one line: the parser's reason without its drawn pointer
/// (`unclosed group`), for a toast.
pub fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}

pub fn smart_regex(pattern: &str) -> Result<Regex, regex::Error> {
    let insensitive = !pattern.chars().any(char::is_uppercase);
    regex::RegexBuilder::new(pattern)
        .case_insensitive(insensitive)
        .build()
}

impl LogsState {
    /// Applies the tailer's report. A new source named `recall` (remembered from the last
    /// run) is selected, and `recall` is cleared. False when the report is for no known
    /// source.
    pub fn on_event(&mut self, ev: LogEvent, recall: &mut Option<String>) -> bool {
        match ev {
            LogEvent::Added { id, source } => {
                let spec = match &source.kind {
                    SourceKind::File(s) => s.clone(),
                    SourceKind::Service(s) => format!("swarm service {s}"),
                };
                // The source remembered from the last run is selected when it comes back.
                if recall.as_deref() == Some(source.name.as_str()) {
                    *recall = None;
                    self.sel = self.sources.len();
                }
                self.sources.push(SourceView {
                    id,
                    name: source.name,
                    spec,
                    ..Default::default()
                });
            }
            LogEvent::Tail { id, event } => {
                let max = self.max_lines;
                let Some(source) = self.sources.iter().position(|s| s.id == id) else {
                    return false;
                };
                let shown = source == self.sel || self.merged;
                let src = &mut self.sources[source];
                match event {
                    TailEvent::Note(n) => src.note = Some(n),
                    TailEvent::Lines(lines) => {
                        let lines = if matches!(src.parser.choice, Choice::Fixed(_)) {
                            src.parser.parse_again(lines)
                        } else {
                            src.parser.observe(lines.iter().map(|l| l.text.as_str()));
                            lines
                        };
                        let added = lines.len();
                        src.lines.extend(lines);
                        // Whole messages leave, so the buffer never starts halfway through one
                        // (its continuation lines would pass or fail the filters without
                        // their head). A message longer than the buffer is cut, and the cached
                        // rows are rebuilt.
                        let len = src.lines.len();
                        let mut overflow = len.saturating_sub(max);
                        while overflow > 0 && overflow < len && src.lines[overflow].cont {
                            overflow += 1;
                        }
                        if overflow == len && len > 0 {
                            overflow = len - max.min(len);
                            src.epoch += 1;
                        }
                        for l in src.lines.drain(..overflow) {
                            src.carry = src.carry.max(l.ts);
                        }
                        src.dropped += overflow as u64;
                        if shown && !self.follow {
                            // Paused: keep the view where it is and count what arrived.
                            self.new_lines += added;
                            self.offset += added;
                        }
                    }
                }
            }
        }
        true
    }

    /// Scrolls by `delta` lines (negative: towards older lines); leaving the bottom pauses.
    pub fn scroll(&mut self, delta: i64, size: (u16, u16)) {
        let total = self.visible().len();
        let h = layout::page_rows(size);
        let max_offset = total.saturating_sub(h) as i64;
        let offset = (self.offset as i64 - delta).clamp(0, max_offset.max(0)) as usize;
        self.offset = offset;
        if offset == 0 {
            self.resume();
        } else {
            self.follow = false;
        }
    }

    fn resume(&mut self) {
        self.cursor = None;
        self.follow = true;
        self.offset = 0;
        self.new_lines = 0;
    }

    /// Puts visible line `idx` (an index into `visible()`) on screen, pausing the follow.
    fn show_line(&mut self, idx: usize, total: usize, size: (u16, u16)) {
        let h = layout::page_rows(size);
        self.offset = total
            .saturating_sub(idx + h / 2 + 1)
            .min(total.saturating_sub(h));
        self.follow = self.offset == 0;
    }

    /// The visible index at the middle of the screen.
    fn current(&self, total: usize, size: (u16, u16)) -> usize {
        let h = layout::page_rows(size);
        total.saturating_sub(self.offset + h / 2 + 1)
    }

    fn jump(&mut self, forward: bool, hit: impl Fn(&LogLine) -> bool, what: &str, ctx: &mut Ctx) {
        let visible = self.visible();
        let total = visible.len();
        let line = |i: usize| {
            let (s, l) = visible.get(i);
            &self.sources[s].lines[l]
        };
        // From the last jump's line; else following, the newest line; else the middle of the
        // screen.
        let here = match self.cursor {
            Some(c) => c,
            None if self.follow => total,
            None => self.current(total, ctx.size),
        };
        let found = if forward {
            (here + 1..total).find(|&i| hit(line(i)))
        } else {
            (0..here).rev().find(|&i| hit(line(i)))
        };
        match found {
            Some(i) => {
                self.show_line(i, total, ctx.size);
                self.cursor = Some(i);
                self.follow = false;
            }
            None => ctx.toast(
                ToastLevel::Info,
                format!("no {what} {}", if forward { "below" } else { "above" }),
            ),
        }
    }

    /// Keys while the match list or an opened match is shown.
    fn match_view_action(&mut self, action: Action, ctx: &mut Ctx, cmds: &mut Vec<Cmd>) {
        let n = self.file_search.as_ref().map_or(0, |f| f.hits.len());
        let page = layout::page_rows(ctx.size) as i64;
        let Some(view) = self.match_view.as_mut() else {
            return;
        };
        let in_context = matches!(view, MatchView::Context { .. });
        let (MatchView::List { sel } | MatchView::Context { sel, .. }) = view;
        let delta = match action {
            Action::Down => 1,
            Action::Up => -1,
            Action::PageDown => page,
            Action::PageUp => -page,
            Action::Top => i64::MIN / 2,
            Action::Bottom => i64::MAX / 2,
            Action::Open => {
                let sel = *sel;
                self.open_match(sel, ctx, cmds);
                return;
            }
            Action::MatchList => {
                self.match_view = None;
                return;
            }
            _ => return,
        };
        let new = (*sel as i64 + delta).clamp(0, n.saturating_sub(1) as i64) as usize;
        *sel = new;
        // In an opened match, j/k go to the next/previous match and open it.
        if in_context {
            self.open_match(new, ctx, cmds);
        }
    }

    fn open_match(&mut self, sel: usize, ctx: &mut Ctx, cmds: &mut Vec<Cmd>) {
        let Some(fs) = self.file_search.as_ref() else {
            return;
        };
        let Some(hit) = fs.hits.get(sel) else {
            return;
        };
        let (spec, offset) = (fs.spec.clone(), hit.offset);
        let generation = ctx.requests.start(Req::Context);
        cmds.push(Cmd::ReadContext {
            spec,
            offset,
            generation,
        });
        self.match_view = Some(MatchView::Context { sel, ctx: None });
    }

    /// The tab's part of `update`: an action of the Logs tab (a key already looked up in
    /// the key table); what the effects should do.
    pub fn update(&mut self, action: Action, ctx: &mut Ctx) -> Vec<Cmd> {
        let mut cmds = vec![];
        self.action(action, ctx, &mut cmds);
        cmds
    }

    fn action(&mut self, action: Action, ctx: &mut Ctx, cmds: &mut Vec<Cmd>) {
        if self.match_view.is_some() {
            return self.match_view_action(action, ctx, cmds);
        }
        let page = layout::page_rows(ctx.size) as i64;
        match action {
            Action::Down => self.scroll(1, ctx.size),
            Action::Up => self.scroll(-1, ctx.size),
            Action::PageDown => self.scroll(page, ctx.size),
            Action::PageUp => self.scroll(-page, ctx.size),
            Action::Top => self.scroll(i64::MIN / 2, ctx.size),
            Action::Bottom | Action::Follow => self.resume(),
            Action::Left => self.select(self.sel.saturating_sub(1)),
            Action::Right => self.select(self.sel + 1),
            // A new search starts empty, like the filters' `/`; n/N repeat the last one.
            Action::Search => self.search_input = Some(Input::default()),
            Action::NextMatch | Action::PrevMatch => match self.regex.clone() {
                Some(r) => self.jump(
                    action == Action::NextMatch,
                    |l| r.is_match(&l.text),
                    "match",
                    ctx,
                ),
                None => ctx.toast(ToastLevel::Info, "search first with /"),
            },
            // Nothing to match: turning it on would show every line and say "only matches".
            Action::OnlyMatching if !self.only_matching && self.search.is_empty() => {
                ctx.toast(ToastLevel::Info, "search first with /")
            }
            Action::OnlyMatching => {
                self.only_matching = !self.only_matching;
                self.offset = 0;
                self.follow = true;
            }
            Action::LevelCycle => {
                self.min_level = match self.min_level {
                    None => Some(Level::Error),
                    Some(Level::Error) => Some(Level::Warn),
                    Some(Level::Warn) => Some(Level::Info),
                    Some(Level::Notice) | Some(Level::Info) => Some(Level::Debug),
                    Some(Level::Fatal) => Some(Level::Error),
                    Some(Level::Debug) | Some(Level::Trace) => None,
                };
                self.offset = 0;
                self.follow = true;
            }
            Action::NextError | Action::PrevError => self.jump(
                action == Action::NextError,
                |l| !l.cont && l.level.is_some_and(|v| v <= Level::Error),
                "error",
                ctx,
            ),
            Action::Wrap => self.wrap = !self.wrap,
            Action::Save => {
                let visible = self.visible();
                let lines = visible
                    .iter()
                    .map(|(s, i)| {
                        let l = &self.sources[s].lines[i];
                        if self.merged {
                            format!("[{}] {}", self.sources[s].name, l.text)
                        } else {
                            l.text.clone()
                        }
                    })
                    .collect();
                let name = if self.merged {
                    "merged".to_string()
                } else {
                    self.sources
                        .get(self.sel)
                        .map_or("log".into(), |s| s.name.clone())
                };
                cmds.push(Cmd::SaveLog { name, lines });
            }
            Action::Merge => {
                self.merged = !self.merged;
                self.resume();
            }
            Action::Timestamps => self.timestamps = !self.timestamps,
            Action::Fold => {
                self.folded = !self.folded;
                self.cursor = None;
            }
            Action::Pretty => self.pretty = !self.pretty,
            Action::Format => self.cycle_format(ctx),
            Action::MatchList => match &self.file_search {
                Some(_) => self.match_view = Some(MatchView::List { sel: 0 }),
                None => ctx.toast(ToastLevel::Info, "search first with /"),
            },
            _ => {}
        }
    }

    /// `f`: the selected source's next format (detected, each of the table, plain), its lines
    /// read again with it.
    fn cycle_format(&mut self, ctx: &mut Ctx) {
        let Some(src) = self.sources.get_mut(self.sel) else {
            return;
        };
        let n = crate::logs::format::all().len();
        let next = match src.parser.choice {
            Choice::Auto => Choice::Fixed(Some(0)),
            Choice::Fixed(Some(i)) if i + 1 < n => Choice::Fixed(Some(i + 1)),
            Choice::Fixed(Some(_)) => Choice::Fixed(None),
            Choice::Fixed(None) => Choice::Auto,
        };
        let mut parser = Parser::new(next);
        let lines: Vec<LogLine> = src.lines.drain(..).collect();
        if next == Choice::Auto {
            parser.observe(lines.iter().map(|l| l.text.as_str()));
        }
        // Auto re-reads with the detected format too, so the lines agree with the title.
        let mut reader = Parser::new(Choice::Fixed(parser.format));
        src.lines = reader.parse_again(lines).into();
        src.parser = parser;
        src.epoch += 1;
        let name = match next {
            Choice::Auto => format!("format: detected ({})", src.parser.format_name()),
            _ => format!("format: {}", src.parser.format_name()),
        };
        ctx.toast(ToastLevel::Info, name);
    }

    /// The source list's width on a `size` terminal (it fits the longest name).
    pub fn sources_width(&self, size: (u16, u16)) -> u16 {
        let longest = self
            .sources
            .iter()
            .map(|s| unicode_width::UnicodeWidthStr::width(s.name.as_str()))
            .max()
            .unwrap_or(0);
        layout::log_sources_width(layout::frame(size).1.width, longest)
    }

    /// The source under a click on the source list (one line each, inside its border).
    pub fn source_at(&self, size: (u16, u16), x: u16, y: u16) -> Option<usize> {
        let (_, content, _) = layout::frame(size);
        let first = content.y + 1;
        let inside = x >= content.x && x < content.x + self.sources_width(size) && y >= first;
        let i = (y - first.min(y)) as usize;
        (inside && i < self.sources.len()).then_some(i)
    }

    /// A click at (x, y): selects the source under it; false when it hit none.
    pub fn click(&mut self, size: (u16, u16), x: u16, y: u16) -> bool {
        match self.source_at(size, x, y) {
            Some(i) => {
                self.click_source(i);
                true
            }
            None => false,
        }
    }

    /// A click on source `i`.
    pub fn click_source(&mut self, i: usize) {
        self.select(i);
    }

    /// Selects the source named `name` (exactly, else the only one whose name contains it);
    /// false when none or several fit.
    pub fn select_named(&mut self, name: &str) -> bool {
        let sources = &self.sources;
        let exact = sources.iter().position(|s| s.name == name);
        let found = exact.or_else(|| {
            let mut fits = sources
                .iter()
                .enumerate()
                .filter(|(_, s)| s.name.contains(name) || s.spec.contains(name));
            match (fits.next(), fits.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        });
        match found {
            Some(i) => {
                self.select(i);
                true
            }
            None => false,
        }
    }

    fn select(&mut self, i: usize) {
        self.sel = i.min(self.sources.len().saturating_sub(1));
        self.resume();
    }

    /// Keys while the search is typed; what the effects should do.
    pub fn search_key(&mut self, k: KeyEvent, ctx: &mut Ctx) -> Vec<Cmd> {
        let mut cmds = vec![];
        let Some(input) = self.search_input.as_mut() else {
            return cmds;
        };
        match k.code {
            KeyCode::Esc => self.search_input = None,
            KeyCode::Enter => {
                let pattern = input.value().to_string();
                self.search_input = None;
                if pattern.is_empty() {
                    self.search.clear();
                    self.regex = None;
                    return cmds;
                }
                match smart_regex(&pattern) {
                    Ok(r) => {
                        self.search = pattern.clone();
                        self.regex = Some(r.clone());
                        // The whole file too, beyond what the ring buffer holds.
                        if let Some(src) = self.sources.get(self.sel) {
                            let generation = ctx.requests.start(Req::Search);
                            self.file_search = Some(FileSearch {
                                generation,
                                spec: src.spec.clone(),
                                ..Default::default()
                            });
                            self.match_view = None;
                            cmds.push(Cmd::SearchFile {
                                spec: src.spec.clone(),
                                pattern,
                                generation,
                            });
                        }
                        // Jump to the newest match at or above the view.
                        self.jump(false, |l| r.is_match(&l.text), "match", ctx);
                    }
                    Err(e) => ctx.toast(
                        ToastLevel::Error,
                        format!("not a regex: {}", regex_error(&e)),
                    ),
                }
            }
            _ => {
                input.handle_event(&crossterm::event::Event::Key(k));
            }
        }
        cmds
    }

    /// Progress or the end of a whole-file search.
    pub fn on_search(
        &mut self,
        generation: u64,
        done: u64,
        total: u64,
        matches: u64,
        finished: bool,
        hits: Vec<Hit>,
    ) -> bool {
        match self.file_search.as_mut() {
            Some(fs) if fs.generation == generation => {
                fs.done_bytes = done;
                fs.total_bytes = total;
                fs.matches = matches;
                fs.finished = finished;
                fs.hits.extend(hits);
                true
            }
            _ => false,
        }
    }

    /// The lines around an opened match arrived.
    pub fn on_context(&mut self, c: Result<Context, String>) -> bool {
        match self.match_view.as_mut() {
            Some(MatchView::Context { ctx, .. }) => {
                *ctx = Some(c);
                true
            }
            _ => false,
        }
    }

    /// Esc on the Logs tab: back from an opened match to the list, from the list to the log;
    /// else stop a running file search and clear the search.
    pub fn clear_search(&mut self) {
        match self.match_view.take() {
            Some(MatchView::Context { sel, .. }) => {
                self.match_view = Some(MatchView::List { sel });
                return;
            }
            Some(MatchView::List { .. }) => return,
            None => {}
        }
        // `update` cancels the search this leaves without a view (`Cmd::Cancel`).
        self.file_search = None;
        self.search.clear();
        self.regex = None;
        self.only_matching = false;
    }
}

/// The background search of a source's file (run on a blocking thread): the first page of
/// matches as soon as it is found, then progress and new matches at most every 100 ms.
pub fn search_task(
    spec: &str,
    pattern: &str,
    generation: u64,
    cancel: &std::sync::atomic::AtomicBool,
    results: &tokio::sync::mpsc::Sender<crate::tui::msg::Msg>,
) {
    use crate::logs::search;
    use std::time::{Duration, Instant};
    let Some(path) = crate::logs::tail::resolve(spec).filter(|p| p.is_file()) else {
        return;
    };
    let Ok(m) = search::matcher(pattern) else {
        return;
    };
    let mut last = Instant::now();
    let mut sent = 0;
    let msg =
        |r: &search::SearchResult, total, sent: usize, finished| crate::tui::msg::Msg::Search {
            generation,
            done: r.bytes,
            total,
            matches: r.matches,
            finished,
            hits: r.hits[sent..].to_vec(),
        };
    let res = search::search_file(&path, &m, cancel, |r, total| {
        let first_page = sent < FIRST_PAGE && r.hits.len() >= FIRST_PAGE;
        if (first_page || last.elapsed() >= Duration::from_millis(100))
            && results.try_send(msg(r, total, sent, false)).is_ok()
        {
            last = Instant::now();
            sent = r.hits.len();
        }
    });
    if let Some(r) = res.ok().filter(|r| !r.cancelled) {
        let total = std::fs::metadata(&path).map_or(r.bytes, |m| m.len());
        let _ = results.blocking_send(msg(&r, total, sent, true));
    }
}

/// Reads the lines around `offset` of a source's file (run on a blocking thread).
pub fn context_task(spec: &str, offset: u64) -> Result<Context, String> {
    let path = crate::logs::tail::resolve(spec).ok_or_else(|| format!("{spec}: no file"))?;
    crate::logs::search::read_context(&path, offset, CONTEXT_LINES)
        .map_err(|e| format!("{}: {e}", path.display()))
}
