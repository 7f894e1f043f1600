//! One log line as the Logs tab shows it: decoded (invalid UTF-8 replaced), ANSI colour codes
//! stripped, capped in length, and its level recognised in plain, tracing and JSON lines.

pub use super::format::Level;

/// Longest line kept whole; the rest of a longer line is dropped with a marker, so a 1 MB
/// line costs 16 KB of memory and one screen of drawing.
pub const MAX_LINE: usize = 16 * 1024;

/// A prepared log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The text, ANSI codes stripped.
    pub text: String,
    /// The text with its SGR colour codes, when it had any (the tab renders them).
    pub ansi: Option<String>,
    /// The level of the message the line belongs to (a continuation line has its head's).
    pub level: Option<Level>,
    /// The line's own time (a prefix's, or its format's), in UTC.
    pub ts: Option<chrono::DateTime<chrono::Utc>>,
    /// Bytes of `text` the prefixes and the leading timestamp take (hidden by `t`).
    pub ts_len: usize,
    /// A continuation line (stack trace, indented, untimed after a timed line) of the
    /// message before it.
    pub cont: bool,
    /// When the line was read: the merge view orders a source without timestamps by it.
    pub seen: chrono::DateTime<chrono::Utc>,
}

impl LogLine {
    /// The text without its leading timestamp.
    pub fn without_ts(&self) -> &str {
        self.text[self.ts_len..].trim_start()
    }

    /// Prepares raw bytes (without the newline) on their own: the format is detected from
    /// this line alone and it is never a continuation. Sources use a
    /// [`super::multiline::Parser`].
    pub fn parse(raw: &[u8]) -> LogLine {
        let (text, ansi) = decode(raw);
        let fmt = super::format::detect([text.as_str()]);
        let now = chrono::Utc::now();
        let p = super::format::parse(&text, fmt, now);
        LogLine {
            text,
            ansi,
            level: p.level,
            ts: p.ts,
            ts_len: p.ts_len,
            cont: false,
            seen: now,
        }
    }
}

/// Decodes raw bytes (without the newline): invalid UTF-8 replaced, `\r` dropped, capped at
/// [`MAX_LINE`] with a marker; returns the plain text and, when the line had escape codes,
/// the text with its SGR (colour) codes kept.
pub fn decode(raw: &[u8]) -> (String, Option<String>) {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let (raw, cut) = if raw.len() > MAX_LINE {
        (&raw[..MAX_LINE], raw.len() - MAX_LINE)
    } else {
        (raw, 0)
    };
    let decoded = String::from_utf8_lossy(raw);
    let mut text = strip_ansi(&decoded);
    let mut ansi = memchr::memchr(0x1b, raw).map(|_| keep_sgr(&decoded));
    if cut > 0 {
        let marker = format!(" …[{cut} more bytes]");
        text.push_str(&marker);
        if let Some(a) = ansi.as_mut() {
            a.push_str("\x1b[0m");
            a.push_str(&marker);
        }
    }
    (text, ansi)
}

/// The text with SGR sequences (`ESC [ ... m`) kept and every other escape or control
/// character removed, as [`strip_ansi`] does.
fn keep_sgr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&strip_ansi(&rest[..i]));
        let esc = &rest[i..];
        let b = esc.as_bytes();
        if b.get(1) == Some(&b'[') {
            let end = esc[2..]
                .find(|c: char| ('@'..='~').contains(&c))
                .map_or(esc.len(), |e| e + 3);
            if esc[..end].ends_with('m') {
                out.push_str(&esc[..end]);
            }
            rest = &esc[end..];
        } else {
            let end = strip_len(esc);
            rest = &esc[end..];
        }
    }
    out.push_str(&strip_ansi(rest));
    out
}

/// Bytes a non-CSI escape sequence at the start of `s` takes (OSC up to BEL or ESC, else
/// ESC and one character), skipped the way [`strip_ansi`] skips it.
fn strip_len(s: &str) -> usize {
    let mut chars = s.char_indices().skip(1);
    match chars.next() {
        Some((_, ']')) => chars
            .find(|&(_, c)| c == '\x07' || c == '\x1b')
            .map_or(s.len(), |(i, c)| i + c.len_utf8()),
        Some((i, c)) => i + c.len_utf8(),
        None => s.len(),
    }
}

/// Removes ANSI escape sequences (colours, cursor moves) and other control characters but tab.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else if chars.peek() == Some(&']') {
                // OSC: up to BEL or ESC \\.
                for c in chars.by_ref() {
                    if c == '\x07' || c == '\x1b' {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' || !c.is_control() {
            // Tabs are kept (headless output prints them); the view expands them.
            out.push(c);
        }
    }
    out
}

/// True when a chunk looks binary (NUL bytes), so the tab warns instead of showing garbage.
pub fn looks_binary(chunk: &[u8]) -> bool {
    chunk.iter().take(8192).any(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_in_plain_tracing_and_json_lines() {
        for (line, level) in [
            ("ERROR connection refused", Some(Level::Error)),
            (
                "2026-11-23 07:00:01 [WARN] disk 91% full",
                Some(Level::Warn),
            ),
            (
                "2026-11-23T07:00:01.123Z  INFO opsdeck::export: saved",
                Some(Level::Info),
            ),
            (
                "\x1b[2m2026-11-23T07:00:01Z\x1b[0m \x1b[32mDEBUG\x1b[0m polling",
                Some(Level::Debug),
            ),
            (
                r#"{"ts":"2026-11-23T07:00:01Z","level":"error","msg":"boom"}"#,
                Some(Level::Error),
            ),
            (
                r#"{"severity": "WARNING", "message": "slow"}"#,
                Some(Level::Warn),
            ),
            ("trace: entering loop", Some(Level::Trace)),
            ("user logged in", None),
            (
                "a line that mentions error later on the line, far away",
                None,
            ),
        ] {
            assert_eq!(LogLine::parse(line.as_bytes()).level, level, "{line}");
        }
    }

    #[test]
    fn leading_timestamps() {
        let l = LogLine::parse(b"2026-11-23T10:00:01.5Z  INFO started");
        assert_eq!(l.ts, Some("2026-11-23T10:00:01.5Z".parse().unwrap()));
        assert_eq!(l.without_ts(), "INFO started");
        let l = LogLine::parse(b"[2026-11-23 10:00:01,250] WARN slow");
        assert_eq!(l.ts, Some("2026-11-23T10:00:01.25Z".parse().unwrap()));
        assert_eq!(l.without_ts(), "WARN slow");
        let l = LogLine::parse(b"2026-11-23T12:00:01+02:00 x");
        assert_eq!(l.ts, Some("2026-11-23T10:00:01Z".parse().unwrap()));
        assert_eq!(LogLine::parse(b"no time here").ts, None);
        assert_eq!(LogLine::parse(b"2026-11-23 not a time").ts, None);
    }

    #[test]
    fn invalid_utf8_ansi_and_long_lines() {
        let l = LogLine::parse(b"ok \xff\xfe bytes\r");
        assert_eq!(l.text, "ok \u{fffd}\u{fffd} bytes");
        assert_eq!(
            LogLine::parse(b"\x1b[31mred\x1b[0m and \x1b]0;title\x07plain").text,
            "red and plain"
        );
        let l = LogLine::parse(b"\x1b[31mred\x1b[0m and \x1b]0;title\x07plain");
        assert_eq!(l.ansi.as_deref(), Some("\x1b[31mred\x1b[0m and plain"));
        assert_eq!(LogLine::parse(b"plain").ansi, None);
        let long = vec![b'x'; 1 << 20];
        let l = LogLine::parse(&long);
        assert!(
            l.text.len() < MAX_LINE + 40
                && l.text
                    .ends_with(&format!("[{} more bytes]", (1 << 20) - MAX_LINE))
        );
        assert!(looks_binary(b"\x7fELF\x02\x01\x01\x00\x00"));
        assert!(!looks_binary("текст".as_bytes()));
    }
}
