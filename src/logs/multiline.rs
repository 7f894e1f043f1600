//! Per-source parsing: the format is detected from the source's first lines (or chosen with
//! a key), and continuation lines (stack traces, indented lines, lines without a timestamp
//! after a timestamped one) are joined to the message before them: they take its level, and
//! filters, search and folding treat the message as one.

use chrono::{DateTime, Utc};

use super::format::{self, Level};
use super::line::{LogLine, decode};

/// How a source's format is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// Detected from the first lines.
    #[default]
    Auto,
    /// Chosen by the user: an index into [`format::all`], or `None` for the heuristics only.
    Fixed(Option<usize>),
}

/// Parses one source's lines in order.
#[derive(Debug, Clone, Default)]
pub struct Parser {
    pub choice: Choice,
    /// The format in use (detected or chosen).
    pub format: Option<usize>,
    /// Lines seen while detecting; detection stops at [`format::DETECT_LINES`].
    detect_seen: usize,
    /// The message the next line may continue.
    head: Option<Head>,
    /// The last message with a timestamp of its own: in such a source, a line without a
    /// timestamp and level continues the message before it (even an untimed `panic:` one).
    timed: Option<Head>,
}

#[derive(Debug, Clone, Copy)]
struct Head {
    level: Option<Level>,
    /// It had a timestamp of its own (a Docker prefix's does not count: it stamps every
    /// line, stack trace lines too).
    own_ts: bool,
    /// It had a timestamp, its own or a prefix's (which is its own after all when the next
    /// line has none: an app's RFC 3339 time looks like Docker's).
    any_ts: bool,
}

/// Starts of lines that continue a message even at column 0.
const CONTINUATIONS: &[&str] = &[
    "Traceback (most recent call last)",
    "Caused by: ",
    "During handling of the above exception",
    "The above exception was the direct cause",
    "goroutine ",
];

impl Parser {
    /// A parser with its format chosen by name (`None`: detect).
    pub fn new(choice: Choice) -> Parser {
        Parser {
            choice,
            format: match choice {
                Choice::Fixed(f) => f,
                Choice::Auto => None,
            },
            ..Default::default()
        }
    }

    /// The name of the format in use.
    pub fn format_name(&self) -> &'static str {
        self.format
            .and_then(|i| format::all().get(i))
            .map_or("plain", |f| f.name.as_str())
    }

    /// Parses a batch of raw lines (without newlines).
    pub fn parse_batch<T: AsRef<[u8]>>(&mut self, raws: &[T]) -> Vec<LogLine> {
        let decoded: Vec<(String, Option<String>)> =
            raws.iter().map(|r| decode(r.as_ref())).collect();
        self.parse_decoded(decoded)
    }

    /// Parses already decoded lines (plain text and its coloured form).
    pub fn parse_decoded(&mut self, lines: Vec<(String, Option<String>)>) -> Vec<LogLine> {
        self.observe(lines.iter().map(|(t, _)| t.as_str()));
        let now = Utc::now();
        lines
            .into_iter()
            .map(|(text, ansi)| self.line(text, ansi, now))
            .collect()
    }

    fn line(&mut self, text: String, ansi: Option<String>, now: DateTime<Utc>) -> LogLine {
        let p = format::parse(&text, self.format, now);
        let inner = &text[p.inner..];
        let cont = match self.head {
            None => false,
            Some(_) if p.continues => true,
            Some(_) if p.matched || has_own_ts(&p) || starts_with_level(&p, inner) => false,
            Some(head) => {
                let timed = |h: &Head| h.own_ts || (h.any_ts && p.ts.is_none());
                let head_timed = timed(&head) || self.timed.as_ref().is_some_and(timed);
                inner.trim().is_empty()
                    || inner.starts_with([' ', '\t'])
                    || CONTINUATIONS.iter().any(|c| inner.starts_with(c))
                    // An untimed, unlevelled line after a timed message: Python's final
                    // `ValueError: ...`, Java's `java.lang.X: ...`, Go's `main.main()`.
                    || (head_timed && p.level.is_none() && !has_own_ts(&p))
            }
        };
        let level = if cont {
            self.head.and_then(|h| h.level)
        } else {
            let head = Head {
                level: p.level,
                own_ts: has_own_ts(&p),
                any_ts: p.ts.is_some(),
            };
            if head.any_ts {
                self.timed = Some(head);
            }
            self.head = Some(head);
            p.level
        };
        LogLine {
            text,
            ansi,
            level,
            ts: if cont { None } else { p.ts },
            ts_len: p.ts_len,
            cont,
            seen: now,
        }
    }

    /// Chooses another format and forgets the message state (the lines are parsed again).
    pub fn set_choice(&mut self, choice: Choice) {
        *self = Parser::new(choice);
    }

    /// Parses lines parsed before (by another parser) again, going on from this one's state.
    pub fn parse_again(&mut self, lines: impl IntoIterator<Item = LogLine>) -> Vec<LogLine> {
        lines
            .into_iter()
            .map(|l| {
                let seen = l.seen;
                let mut n = self.line(l.text, l.ansi, seen);
                n.seen = seen;
                n
            })
            .collect()
    }

    /// Reads the first lines of a source for its format (without parsing them).
    pub fn observe<'a>(&mut self, texts: impl IntoIterator<Item = &'a str>) {
        if self.choice == Choice::Auto
            && self.format.is_none()
            && self.detect_seen < format::DETECT_LINES
        {
            let texts: Vec<&str> = texts.into_iter().collect();
            self.format = format::detect(texts.iter().copied());
            self.detect_seen += texts.len();
        }
    }
}

/// True when a timed line starts with its level word (after spaces): a message of its own
/// even where the time is read as a Docker prefix, as with tracing's padded `...Z  INFO`.
fn starts_with_level(p: &format::Parsed, inner: &str) -> bool {
    p.ts.is_some()
        && p.level.is_some()
        && inner
            .split_whitespace()
            .next()
            .is_some_and(|w| Level::from_word(w.trim_matches(['[', ']', ':'])).is_some())
}

/// True when the line's timestamp is its own (not only a Docker prefix's): a Docker prefix
/// stamps every line, stack trace lines included.
fn has_own_ts(p: &format::Parsed) -> bool {
    p.ts.is_some() && p.ts_len > p.inner
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Vec<LogLine> {
        Parser::new(Choice::Auto).parse_batch(lines)
    }

    #[test]
    fn java_python_and_go_traces_join_their_message() {
        let java = parse(&[
            "2026-11-23 10:00:01,123 ERROR [main] c.e.Api - request failed",
            "java.lang.IllegalStateException: boom",
            "\tat com.example.Api.handle(Api.java:42)",
            "Caused by: java.io.IOException: reset",
            "\t... 12 more",
            "2026-11-23 10:00:02,000 INFO [main] c.e.Api - next",
        ]);
        let conts: Vec<bool> = java.iter().map(|l| l.cont).collect();
        assert_eq!(conts, [false, true, true, true, true, false]);
        assert!(java[..5].iter().all(|l| l.level == Some(Level::Error)));
        assert_eq!(java[5].level, Some(Level::Info));

        let py = parse(&[
            "2026-11-23 10:00:01,123 - worker - ERROR - job failed",
            "Traceback (most recent call last):",
            "  File \"w.py\", line 3, in <module>",
            "ValueError: bad",
        ]);
        assert!(
            py[1..]
                .iter()
                .all(|l| l.cont && l.level == Some(Level::Error))
        );

        let go = parse(&[
            "2026-11-23T10:00:01Z ERROR panic in handler",
            "panic: runtime error: index out of range",
            "",
            "goroutine 1 [running]:",
            "main.main()",
            "\t/app/main.go:12 +0x1d",
        ]);
        // Go's `panic:` is a message of its own, and the goroutine dump is part of it.
        assert!(!go[1].cont && go[1].level == Some(Level::Fatal));
        assert!(
            go[2..]
                .iter()
                .all(|l| l.cont && l.level == Some(Level::Fatal))
        );
    }

    #[test]
    fn stack_trace_heading_is_not_a_level_and_docker_prefix_does_not_split() {
        let lines = parse(&[
            "2026-11-23T10:00:00.1Z 2026-11-23 10:00:01,123 ERROR [main] c.e.Api - failed",
            "2026-11-23T10:00:00.2Z Stack trace:",
            "2026-11-23T10:00:00.3Z \tat com.example.Api.handle(Api.java:42)",
        ]);
        assert!(lines[1].cont && lines[2].cont);
        assert!(lines.iter().all(|l| l.level == Some(Level::Error)));
    }

    #[test]
    fn tracing_lines_with_a_padded_level_are_messages_of_their_own() {
        // Rust's `tracing` pads INFO and WARN to five columns: `...Z  INFO`, two spaces.
        // Opsdeck's own log is written so.
        let lines = [
            "2026-12-03T10:00:01.000001Z  INFO opsdeck::server: listening on /run/opsdeck.sock",
            "2026-12-03T10:00:02.000001Z ERROR opsdeck::notify: delivery failed: 502",
            "2026-12-03T10:00:03.000001Z  WARN span{id=7}:opsdeck::desk: slow engine",
            "    at the second attempt",
            "2026-12-03T10:00:04.000001Z  INFO opsdeck::notify: delivered",
        ];
        let mut p = Parser::new(Choice::Auto);
        let parsed = p.parse_batch(&lines);
        assert_eq!(p.format_name(), "tracing");
        assert_eq!(
            parsed.iter().map(|l| l.cont).collect::<Vec<_>>(),
            [false, false, false, true, false]
        );
        assert_eq!(
            parsed.iter().map(|l| l.level).collect::<Vec<_>>(),
            [
                Some(Level::Info),
                Some(Level::Error),
                Some(Level::Warn),
                Some(Level::Warn),
                Some(Level::Info)
            ]
        );
        // The same behind Docker's prefix, and with the format chosen as plain (heuristics
        // only): a timed line that starts with its level is a message of its own.
        let docker: Vec<String> = lines
            .iter()
            .map(|l| format!("2026-12-03T10:00:05.1Z {l}"))
            .collect();
        for choice in [Choice::Auto, Choice::Fixed(None)] {
            let conts: Vec<bool> = Parser::new(choice)
                .parse_batch(&docker)
                .iter()
                .map(|l| l.cont)
                .collect();
            assert_eq!(conts, [false, false, false, true, false], "{choice:?}");
        }
        let plain: Vec<bool> = Parser::new(Choice::Fixed(None))
            .parse_batch(&lines)
            .iter()
            .map(|l| l.cont)
            .collect();
        assert_eq!(plain, [false, false, false, true, false]);
    }

    #[test]
    fn postgres_detail_continues() {
        let lines = parse(&[
            "2026-11-23 10:00:01.123 UTC [1234] ERROR:  duplicate key",
            "2026-11-23 10:00:01.123 UTC [1234] DETAIL:  Key (id)=(1) already exists.",
            "2026-11-23 10:00:02.000 UTC [1234] LOG:  checkpoint",
        ]);
        assert_eq!(
            lines.iter().map(|l| l.cont).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(lines[1].level, Some(Level::Error));
    }

    #[test]
    fn untimed_sources_only_join_indented_lines() {
        let lines = parse(&["first", "second", "at noon it ran", "  indented"]);
        assert_eq!(
            lines.iter().map(|l| l.cont).collect::<Vec<_>>(),
            [false, false, false, true]
        );
    }

    #[test]
    fn a_shell_scripts_date_lines_behind_docker_keep_their_level_and_zone() {
        // `echo "$(date) ERROR ..."` in a Swarm service: Docker's time, then date(1)'s.
        let lines = parse(&[
            "2026-11-23T17:00:01.000000001Z Mon Nov 23 10:00:01 PDT 2026 INFO starting",
            "2026-11-23T17:00:02.000000001Z Mon Nov 23 10:00:02 PDT 2026 ERROR crash: exit 3",
        ]);
        assert_eq!(lines[0].level, Some(Level::Info));
        assert_eq!(lines[1].level, Some(Level::Error));
        assert!(!lines[1].cont);
        assert_eq!(lines[1].ts, Some("2026-11-23T17:00:02Z".parse().unwrap()));
    }
}
