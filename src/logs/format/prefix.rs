//! Prefixes other programs put before an application's own line: Docker's `--timestamps`
//! (what the Engine API gives for Swarm services), CRI's `<time> stdout F`, and compose's or
//! the Swarm CLI's `name  | `. They are stripped first so the inner line is parsed as if it
//! stood alone.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;

#[allow(
    clippy::unwrap_used,
    reason = "a constant pattern, exercised by the tests"
)]
static DOCKER_TS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d) ").unwrap()
});
#[allow(
    clippy::unwrap_used,
    reason = "a constant pattern, exercised by the tests"
)]
static CRI_STREAM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:stdout|stderr) [FP] ").unwrap());
#[allow(
    clippy::unwrap_used,
    reason = "a constant pattern, exercised by the tests"
)]
static COMPOSE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][\w.@-]*)\s*\| ").unwrap());

/// What the prefixes said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefix {
    /// Where the inner line starts.
    pub len: usize,
    /// The time Docker or CRI stamped the line with.
    pub ts: Option<DateTime<Utc>>,
}

/// Finds the prefixes at the start of `text` (several may nest: `web-1  | <docker time> ...`).
pub fn strip(text: &str) -> Prefix {
    let mut p = Prefix::default();
    for _ in 0..3 {
        let rest = &text[p.len..];
        if let Some(m) = DOCKER_TS.find(rest) {
            p.ts = chrono::DateTime::parse_from_rfc3339(m.as_str().trim_end())
                .ok()
                .map(|t| t.with_timezone(&Utc));
            p.len += m.end();
            if let Some(cri) = CRI_STREAM.find(&text[p.len..]) {
                p.len += cri.end();
            }
            continue;
        }
        if let Some(c) = COMPOSE.captures(rest)
            && super::level::Level::from_word(&c[1]).is_none()
        {
            p.len += c.get(0).map_or(0, |m| m.end());
            continue;
        }
        break;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_cri_and_compose() {
        let t = "2026-11-23T10:00:01.123456789Z ERROR boom";
        let p = strip(t);
        assert_eq!(&t[p.len..], "ERROR boom");
        assert_eq!(
            p.ts,
            Some("2026-11-23T10:00:01.123456789Z".parse().unwrap())
        );
        let t = "2026-11-23T10:00:01.1Z stderr F {\"level\":\"warn\"}";
        assert_eq!(&t[strip(t).len..], "{\"level\":\"warn\"}");
        let t = "web-1  | 2026-11-23T10:00:01Z hello";
        assert_eq!(&t[strip(t).len..], "hello");
        let t = "api.1.x7k2@node1    | started";
        assert_eq!(&t[strip(t).len..], "started");
        // Not prefixes: a level before a pipe, a timestamp with a comma.
        for t in ["INFO | started", "2025-01-24T07:00:30,139 ERROR x", "plain"] {
            assert_eq!(strip(t).len, 0, "{t}");
        }
    }
}
