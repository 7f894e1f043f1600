//! Level words (as the many logging libraries spell them) and the heuristics for lines of no
//! known format.

/// A log level, most severe first (so `level <= min` means "at least as severe as `min`").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Fatal,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Upper case, as the tab shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Fatal => "FATAL",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Notice => "NOTICE",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// Lower case, as `--json` and `--level` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Fatal => "fatal",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// A level word of any library (case-insensitive): `ERROR`, `warning`, `SEVERE`, `FINE`,
    /// `crit`, `debug2`, logrus' four-letter `ERRO`/`DEBU`, `Information`. Single letters
    /// are not words here; see [`Level::from_letter`].
    pub fn from_word(w: &str) -> Option<Level> {
        if w.len() < 3 || w.len() > 11 {
            return None;
        }
        let mut buf = [0u8; 11];
        for (b, c) in buf.iter_mut().zip(w.bytes()) {
            *b = c.to_ascii_uppercase();
        }
        let u = &buf[..w.len()];
        Some(match u {
            b"FATAL" | b"FATA" | b"PANIC" | b"PANI" | b"DPANIC" | b"EMERG" | b"EMERGENCY"
            | b"ALERT" | b"CRIT" | b"CRITICAL" => Level::Fatal,
            b"ERROR" | b"ERRO" | b"ERR" | b"SEVERE" | b"FAILURE" => Level::Error,
            b"WARN" | b"WARNING" => Level::Warn,
            b"NOTICE" => Level::Notice,
            b"INFO" | b"INFORMATION" | b"LOG" | b"CONFIG" => Level::Info,
            b"DEBUG" | b"DEBU" | b"DBG" | b"FINE" => Level::Debug,
            b"TRACE" | b"TRAC" | b"FINER" | b"FINEST" | b"VERBOSE" => Level::Trace,
            _ if u.starts_with(b"DEBUG") && u[5..].iter().all(u8::is_ascii_digit) => Level::Debug,
            _ if u.starts_with(b"TRACE") && u[5..].iter().all(u8::is_ascii_digit) => Level::Trace,
            _ => return None,
        })
    }

    /// One-letter levels of glog (`IWEF`) and Android (`VDIWEFA`).
    pub fn from_letter(c: u8) -> Option<Level> {
        Some(match c {
            b'F' | b'A' => Level::Fatal,
            b'E' => Level::Error,
            b'W' => Level::Warn,
            b'N' => Level::Notice,
            b'I' => Level::Info,
            b'D' => Level::Debug,
            b'V' | b'T' => Level::Trace,
            _ => return None,
        })
    }

    /// A syslog severity (0 emerg … 7 debug), as in `<PRI>` and journald's `PRIORITY`.
    pub fn from_syslog(sev: u64) -> Option<Level> {
        Some(match sev {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 => Level::Notice,
            6 => Level::Info,
            7 => Level::Debug,
            _ => return None,
        })
    }

    /// A numeric level: bunyan/pino (10 trace … 60 fatal) from 10 up, syslog below.
    pub fn from_number(n: f64) -> Option<Level> {
        if n < 0.0 {
            return None;
        }
        if n < 10.0 {
            return Level::from_syslog(n as u64);
        }
        Some(match n as u64 {
            10..=19 => Level::Trace,
            20..=29 => Level::Debug,
            30..=39 => Level::Info,
            40..=49 => Level::Warn,
            50..=59 => Level::Error,
            _ => Level::Fatal,
        })
    }

    /// Parses `--level` and the names of [`Level::name`] (and the usual synonyms).
    pub fn parse(s: &str) -> Option<Level> {
        Level::from_word(s)
    }
}

/// Words looked at by the heuristic: BGL puts its level ninth, OpenStack sixth.
const WORDS: usize = 10;

/// The level of a line of no known format, from its first words:
/// - an upper-case level word (`ERROR`, `WARNING`, `SEVERE`), bare or in brackets, or glued to
///   a name (`local.ERROR:`, `::INFO::`);
/// - a level word in any case in brackets or angle brackets (`[error]`, `<warn>`);
/// - a level word in any case as the first word after a leading timestamp, or as the first
///   word of the line when a colon follows it (`warning: ...`).
///
/// So "Debug mode: on" and "Stack trace:" are not levels: prose starts that way.
pub fn heuristic(text: &str, after_ts: bool) -> Option<Level> {
    for (i, raw) in text.split_whitespace().take(WORDS).enumerate() {
        let bracketed = raw.starts_with(['[', '<', '(']);
        let w = raw.trim_matches(|c: char| {
            matches!(
                c,
                '[' | ']' | ':' | '"' | '<' | '>' | '(' | ')' | ',' | '|' | '-'
            )
        });
        if w.is_empty() {
            continue;
        }
        let upper = w
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if let Some(l) = Level::from_word(w) {
            let first = i == 0;
            if upper || bracketed || (first && (after_ts || raw.ends_with(':'))) {
                return Some(l);
            }
            continue;
        }
        // Glued: `local.ERROR:`, `app::WARN::`, `[pid] ERROR:` is handled above.
        if let Some(l) = w
            .rsplit(['.', ':', '/'])
            .next()
            .filter(|s| s.len() < w.len() && s.bytes().all(|b| b.is_ascii_uppercase()))
            .and_then(Level::from_word)
        {
            return Some(l);
        }
        if let Some(l) = w
            .split("::")
            .find(|s| s.len() >= 4 && s.bytes().all(|b| b.is_ascii_uppercase()))
            .filter(|s| s.len() < w.len())
            .and_then(Level::from_word)
        {
            return Some(l);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_many_libraries() {
        for (w, l) in [
            ("FINE", Level::Debug),
            ("SEVERE", Level::Error),
            ("alert", Level::Fatal),
            ("EMERG", Level::Fatal),
            ("crit", Level::Fatal),
            ("PANIC", Level::Fatal),
            ("debug2", Level::Debug),
            ("ERRO", Level::Error),
            ("Information", Level::Info),
            ("notice", Level::Notice),
        ] {
            assert_eq!(Level::from_word(w), Some(l), "{w}");
        }
        assert_eq!(Level::from_word("E"), None);
        assert_eq!(Level::from_word("errors"), None);
        assert_eq!(Level::from_number(30.0), Some(Level::Info));
        assert_eq!(Level::from_number(60.0), Some(Level::Fatal));
        assert_eq!(Level::from_number(3.0), Some(Level::Error));
    }

    #[test]
    fn heuristics_without_false_positives() {
        for (line, after_ts, level) in [
            ("Debug mode: on", false, None),
            ("Stack trace:", false, None),
            ("Stack trace: 3 frames", true, None),
            ("user logged in", false, None),
            ("an error occurred", false, None),
            ("trace: entering loop", false, Some(Level::Trace)),
            ("warning: low disk", false, Some(Level::Warn)),
            ("Info   CBS  Loaded", true, Some(Level::Info)),
            ("[error] [client 1.2.3.4] denied", false, Some(Level::Error)),
            ("[12] ERROR: relation missing", false, Some(Level::Error)),
            ("production.ERROR: boom", false, Some(Level::Error)),
            ("app::INFO:: started", false, Some(Level::Info)),
            ("a b c d e f g FATAL x", false, Some(Level::Fatal)),
        ] {
            assert_eq!(heuristic(line, after_ts), level, "{line}");
        }
    }
}
