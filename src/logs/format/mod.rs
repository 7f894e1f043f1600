//! Log formats as data (`formats.toml`, read once): each a regex with named groups or a
//! field map for JSON and logfmt. A source's format is detected from its first lines; every
//! line is first stripped of Docker/CRI/compose prefixes, then parsed with that format, and
//! lines the format does not match fall back to the heuristics of `level.rs`.

pub mod fields;
pub mod level;
pub mod prefix;
pub mod syslog;
pub mod timestamp;

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Deserialize;

pub use fields::FieldMap;
pub use level::Level;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    kind: Option<String>,
    regex: Option<String>,
    ts_format: Option<String>,
    #[serde(default)]
    continues: Vec<String>,
    #[serde(default)]
    level_fields: Vec<String>,
    #[serde(default)]
    ts_fields: Vec<String>,
    sample: String,
    sample_level: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Table {
    format: Vec<Spec>,
}

/// How a format reads a line.
#[derive(Debug)]
enum Kind {
    Json(FieldMap),
    Logfmt(FieldMap),
    Regex(Regex),
}

/// One entry of the format table.
#[derive(Debug)]
pub struct Format {
    pub name: String,
    kind: Kind,
    ts_format: Option<String>,
    continues: Vec<String>,
    /// A line of this format and its level, tested.
    pub sample: String,
    pub sample_level: Option<Level>,
}

// The table is embedded and every entry is checked by the tests (each sample parses to its
// own format); a broken entry is logged and left out rather than taking the process down.
static FORMATS: LazyLock<Vec<Format>> = LazyLock::new(|| {
    let table: Table = match toml::from_str(include_str!("formats.toml")) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("formats.toml does not parse: {e}");
            return Vec::new();
        }
    };
    table
        .format
        .into_iter()
        .filter_map(|s| {
            let map = FieldMap {
                level: s.level_fields,
                ts: s.ts_fields,
            };
            let kind = match (s.kind.as_deref(), s.regex) {
                (Some("json"), _) => Kind::Json(map),
                (Some("logfmt"), _) => Kind::Logfmt(map),
                (_, Some(r)) => match Regex::new(&r) {
                    Ok(r) => Kind::Regex(r),
                    Err(e) => {
                        tracing::error!("log format {}: bad regex: {e}", s.name);
                        return None;
                    }
                },
                _ => {
                    tracing::error!("log format {} has neither kind nor regex", s.name);
                    return None;
                }
            };
            Some(Format {
                name: s.name,
                kind,
                ts_format: s.ts_format,
                continues: s.continues,
                sample: s.sample,
                sample_level: s.sample_level.as_deref().and_then(Level::parse),
            })
        })
        .collect()
});

/// Every known format, in table order.
pub fn all() -> &'static [Format] {
    &FORMATS
}

/// A format's index by name.
pub fn by_name(name: &str) -> Option<usize> {
    all().iter().position(|f| f.name == name)
}

/// What a line says about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parsed {
    pub level: Option<Level>,
    pub ts: Option<DateTime<Utc>>,
    /// Bytes at the start that are prefixes and the line's leading timestamp (hidden by `t`).
    pub ts_len: usize,
    /// Where the line proper starts (after Docker/CRI/compose prefixes).
    pub inner: usize,
    /// The format recognised the line (rather than the heuristics).
    pub matched: bool,
    /// The format says this line continues the message before it (PostgreSQL `DETAIL:`).
    pub continues: bool,
}

/// What a format found in an inner line.
struct Hit {
    level: Option<Level>,
    ts: Option<DateTime<Utc>>,
    /// End of the timestamp when the line starts with it.
    lead_ts: usize,
    continues: bool,
}

impl Format {
    fn apply(&self, inner: &str, now: DateTime<Utc>) -> Option<Hit> {
        match &self.kind {
            Kind::Json(map) => {
                let obj = fields::json(inner)?;
                let (level, ts) = fields::read_json(&obj, map, now);
                Some(Hit {
                    level,
                    ts,
                    lead_ts: 0,
                    continues: false,
                })
            }
            Kind::Logfmt(map) => {
                let pairs = fields::logfmt(inner)?;
                // Logfmt only when it names a level or a time: `a=1 b=2` prose is not enough.
                let (level, ts) = fields::read_logfmt(&pairs, map, now);
                (level.is_some() || ts.is_some()).then_some(Hit {
                    level,
                    ts,
                    lead_ts: 0,
                    continues: false,
                })
            }
            Kind::Regex(re) => {
                let c = re.captures(inner)?;
                let mut continues = false;
                let level = if let Some(w) = c.name("level") {
                    if self.continues.iter().any(|x| x == w.as_str()) {
                        continues = true;
                        None
                    } else {
                        // A word that is no level means the line is not of this format.
                        Some(Level::from_word(w.as_str())?)
                    }
                } else if let Some(l) = c.name("letter") {
                    Level::from_letter(l.as_str().as_bytes()[0])
                } else if let Some(p) = c.name("pri") {
                    syslog::pri_level(p.as_str())
                } else if let Some(s) = c.name("status") {
                    Some(match s.as_str().as_bytes()[0] {
                        b'5' => Level::Error,
                        b'4' => Level::Warn,
                        _ => Level::Info,
                    })
                } else {
                    // The format has no level: the heuristics read the rest.
                    let end = c.get(0).map_or(0, |m| m.end());
                    level::heuristic(&inner[end..], false)
                };
                let (ts, lead_ts) = match c.name("ts") {
                    Some(m) => {
                        let ts = match &self.ts_format {
                            Some(f) => timestamp::parse_with(m.as_str(), f),
                            None => timestamp::parse_at_start(m.as_str(), now).map(|t| t.0),
                        };
                        let lead = if inner[..m.start()].trim_matches(['[', ' ']).is_empty() {
                            // Up to the closing bracket, if any.
                            let e = m.end();
                            e + usize::from(inner[e..].starts_with(']'))
                        } else {
                            0
                        };
                        (ts, lead)
                    }
                    None => (None, 0),
                };
                Some(Hit {
                    level,
                    ts,
                    lead_ts,
                    continues,
                })
            }
        }
    }

    /// True when the format reads this (inner) line.
    pub fn matches(&self, inner: &str) -> bool {
        self.apply(inner, Utc::now()).is_some()
    }
}

/// Parses one line (ANSI already stripped) with format `format` (an index into [`all`]), or
/// with the heuristics only when `None`.
pub fn parse(text: &str, format: Option<usize>, now: DateTime<Utc>) -> Parsed {
    let pre = prefix::strip(text);
    let inner = &text[pre.len..];
    let mut p = Parsed {
        inner: pre.len,
        ts_len: pre.len,
        ts: pre.ts,
        ..Default::default()
    };
    if let Some(hit) = format
        .and_then(|i| all().get(i))
        .and_then(|f| f.apply(inner, now))
    {
        p.matched = true;
        p.level = hit.level;
        p.continues = hit.continues;
        p.ts = hit.ts.or(pre.ts);
        p.ts_len = pre.len + hit.lead_ts;
        return p;
    }
    // A JSON line in a source of another format is still read as JSON.
    if inner.starts_with('{')
        && let Some(hit) = all()[0].apply(inner, now)
    {
        p.level = hit.level;
        p.ts = hit.ts.or(pre.ts);
        return p;
    }
    let (ts, after) = match timestamp::parse_at_start(inner, now) {
        Some((ts, len)) => (Some(ts), len),
        None => (None, 0),
    };
    p.ts = ts.or(pre.ts);
    p.ts_len = pre.len + after;
    p.level = level::heuristic(&inner[after..], ts.is_some() || pre.ts.is_some());
    p
}

/// Lines looked at to detect a source's format.
pub const DETECT_LINES: usize = 50;

/// The format most of `lines` (their first [`DETECT_LINES`]) are written in, or `None` when
/// no format reads at least a third of them.
pub fn detect<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<usize> {
    let inners: Vec<&str> = lines
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .take(DETECT_LINES)
        .map(|l| &l[prefix::strip(l).len..])
        .collect();
    if inners.is_empty() {
        return None;
    }
    let now = Utc::now();
    let (best, hits) = all()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let hits = inners.iter().filter(|l| f.apply(l, now).is_some()).count();
            (i, hits)
        })
        // The first of equals wins: `max_by_key` keeps the last, so compare reversed index.
        .max_by_key(|&(i, hits)| (hits, std::cmp::Reverse(i)))?;
    (hits > 0 && hits * 3 >= inners.len()).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_parses_to_its_level_and_is_detected() {
        for (i, f) in all().iter().enumerate() {
            let p = parse(&f.sample, Some(i), Utc::now());
            assert!(p.matched, "{}: sample not matched", f.name);
            assert_eq!(p.level, f.sample_level, "{}", f.name);
            assert_eq!(detect([f.sample.as_str()]), Some(i), "{} detected", f.name);
            // The same line behind Docker's timestamp prefix has the same level.
            let docker = format!("2026-11-23T10:00:01.123456789Z {}", f.sample);
            assert_eq!(
                parse(&docker, detect([docker.as_str()]), Utc::now()).level,
                f.sample_level,
                "{} behind docker",
                f.name
            );
        }
    }

    #[test]
    fn timestamps_of_formats() {
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        for (line, ts) in [
            (
                r#"{"time":"2026-11-23T10:00:01Z","level":"info"}"#,
                "2026-11-23T10:00:01Z",
            ),
            (
                "<11>Nov 23 10:00:01 web01 sshd[42]: x",
                "2026-11-23T10:00:01Z",
            ),
            (
                "<165>1 2026-11-23T10:00:01.003Z web01 app 1 ID - x",
                "2026-11-23T10:00:01.003Z",
            ),
            (
                r#"10.0.0.1 - - [23/Nov/2026:10:00:01 +0100] "GET / HTTP/1.1" 200 1 "-" "-""#,
                "2026-11-23T09:00:01Z",
            ),
            (
                "E1123 10:00:01.000500 1 a.go:1] x",
                "2026-11-23T10:00:01.0005Z",
            ),
            (
                "2025-01-24T07:00:30,139 ERROR [main] x",
                "2025-01-24T07:00:30.139Z",
            ),
            ("ts=1700000000 level=info msg=x", "2023-11-14T22:13:20Z"),
        ] {
            let p = parse(line, detect([line]), now);
            assert_eq!(p.ts, Some(ts.parse().unwrap()), "{line}");
        }
    }

    #[test]
    fn log4j_with_traces_and_zones() {
        let lines = [
            "2026-11-23 10:00:01,123 ERROR [main] c.e.Api - failed",
            "java.lang.X: boom",
            "\tat a.b(C.java:1)",
            "2026-11-23 10:00:02,000 INFO [main] x - ok",
        ];
        // "INFO" is no time zone: the line is read with its level.
        assert_eq!(detect(lines), by_name("log4j"));
        let p = parse(
            "2026-11-23 10:00:01,123 PDT INFO [main] x - ok",
            by_name("log4j"),
            Utc::now(),
        );
        assert_eq!(p.level, Some(Level::Info));
        assert_eq!(p.ts, Some("2026-11-23T17:00:01.123Z".parse().unwrap()));
    }
}
