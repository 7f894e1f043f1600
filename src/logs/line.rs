//! One log line as the Logs tab shows it: decoded (invalid UTF-8 replaced), ANSI colour codes
//! stripped, capped in length, and its level recognised in plain, tracing and JSON lines.

/// A log level, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    fn from_word(w: &str) -> Option<Level> {
        let w =
            w.trim_matches(|c: char| matches!(c, '[' | ']' | ':' | '"' | '<' | '>' | '(' | ')'));
        Some(match w.to_ascii_uppercase().as_str() {
            "ERROR" | "ERR" | "FATAL" | "CRIT" | "CRITICAL" | "E" => Level::Error,
            "WARN" | "WARNING" | "W" => Level::Warn,
            "INFO" | "I" | "NOTICE" => Level::Info,
            "DEBUG" | "DBG" | "D" => Level::Debug,
            "TRACE" | "T" => Level::Trace,
            _ => return None,
        })
    }
}

/// Longest line kept whole; the rest of a longer line is dropped with a marker, so a 1 MB
/// line costs 16 KB of memory and one screen of drawing.
pub const MAX_LINE: usize = 16 * 1024;

/// A prepared log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub text: String,
    pub level: Option<Level>,
    /// The leading timestamp, when the line starts with one (RFC 3339, or `YYYY-MM-DD
    /// HH:MM:SS[.fff]`, optionally in brackets), taken as UTC when it has no offset.
    pub ts: Option<chrono::DateTime<chrono::Utc>>,
    /// Bytes of `text` the timestamp takes (hidden by `t`).
    pub ts_len: usize,
}

impl LogLine {
    /// The text without its leading timestamp.
    pub fn without_ts(&self) -> &str {
        self.text[self.ts_len..].trim_start()
    }
}

/// Finds a timestamp at the start of a line.
pub fn parse_ts(text: &str) -> Option<(chrono::DateTime<chrono::Utc>, usize)> {
    let lead = text.len() - text.trim_start().len();
    let t = &text[lead..];
    let (open, t) = match t.strip_prefix('[') {
        Some(rest) => (1, rest),
        None => (0, t),
    };
    let first_end = t.find(char::is_whitespace).unwrap_or(t.len());
    let first = t[..first_end].trim_end_matches(']');
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(first) {
        let len = lead + open + first_end;
        return Some((dt.with_timezone(&chrono::Utc), len));
    }
    // "2026-11-23 10:00:01" and "2026-11-23 10:00:01.123" / ",123".
    if first.len() == 10 && first.as_bytes().get(4) == Some(&b'-') {
        let rest = &t[first_end..];
        let second_start = rest.len() - rest.trim_start().len();
        let second_end = rest[second_start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |e| second_start + e);
        let second = rest[second_start..second_end]
            .trim_end_matches(']')
            .replace(',', ".");
        let joined = format!("{first} {second}");
        for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S"] {
            if let Ok(n) = chrono::NaiveDateTime::parse_from_str(&joined, fmt) {
                return Some((n.and_utc(), lead + open + first_end + second_end));
            }
        }
    }
    None
}

impl LogLine {
    /// Prepares raw bytes (without the newline).
    pub fn parse(raw: &[u8]) -> LogLine {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (raw, cut) = if raw.len() > MAX_LINE {
            (&raw[..MAX_LINE], raw.len() - MAX_LINE)
        } else {
            (raw, 0)
        };
        let mut text = strip_ansi(&String::from_utf8_lossy(raw));
        if cut > 0 {
            text.push_str(&format!(" …[{cut} more bytes]"));
        }
        let level = detect_level(&text);
        let (ts, ts_len) = parse_ts(&text).map_or((None, 0), |(t, l)| (Some(t), l));
        LogLine {
            text,
            level,
            ts,
            ts_len,
        }
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
        } else if c == '\t' {
            out.push_str("    ");
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// Finds the level: a JSON `"level"` field, or one of the first few words (plain, bracketed,
/// or after a timestamp as tracing writes it).
pub fn detect_level(text: &str) -> Option<Level> {
    let t = text.trim_start();
    if t.starts_with('{') {
        for key in ["\"level\"", "\"lvl\"", "\"severity\""] {
            if let Some(pos) = t.find(key) {
                let rest = t[pos + key.len()..]
                    .trim_start()
                    .strip_prefix(':')?
                    .trim_start();
                let word: String = rest
                    .trim_start_matches('"')
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                return Level::from_word(&word);
            }
        }
        return None;
    }
    t.split_whitespace()
        .take(4)
        .find_map(|w| (w.len() > 1).then(|| Level::from_word(w)).flatten())
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
