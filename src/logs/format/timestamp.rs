//! Timestamps at the start of a line, in the shapes logs write them: ISO 8601 / RFC 3339
//! (`T` or space, `.` or `,` fractions, `Z`, `+02:00`, a separate `+0000`, or a zone name such
//! as `PDT`), ctime (`Sun Dec 04 04:47:44 2005`), syslog (`Nov 23 10:00:01`, year inferred),
//! access logs (`23/Nov/2026:10:00:01 +0000`), nginx (`2026/11/23`), glog, logcat, Spark, HDFS,
//! and epoch seconds or milliseconds. A time without a zone is taken as UTC.

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use regex::Regex;

/// A timestamp found at the start of a text: the instant and the bytes it takes.
pub type Found = (DateTime<Utc>, usize);

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month(s: &str) -> Option<u32> {
    let s = s.get(..3)?.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1)
}

/// Offsets of the zone abbreviations logs use (abbreviations are ambiguous in general; these
/// are the common readings).
pub fn zone_offset(name: &str) -> Option<i32> {
    let h = |x: f32| Some((x * 3600.0) as i32);
    match name {
        "UTC" | "GMT" | "Z" | "UT" | "WET" => h(0.0),
        "BST" | "CET" | "WEST" | "MET" => h(1.0),
        "CEST" | "EET" | "SAST" | "MEST" => h(2.0),
        "EEST" | "MSK" => h(3.0),
        "IST" => h(5.5),
        "ICT" | "WIB" => h(7.0),
        "HKT" | "SGT" | "AWST" | "PHT" => h(8.0),
        "JST" | "KST" => h(9.0),
        "AEST" => h(10.0),
        "AEDT" => h(11.0),
        "NZST" => h(12.0),
        "NZDT" => h(13.0),
        "AST" => h(-4.0),
        "EDT" => h(-4.0),
        "EST" | "CDT" => h(-5.0),
        "CST" | "MDT" => h(-6.0),
        "MST" | "PDT" => h(-7.0),
        "PST" | "AKDT" => h(-8.0),
        "AKST" => h(-9.0),
        "HST" => h(-10.0),
        _ => None,
    }
}

/// `+0200`, `+02:00`, `-07`, `Z`.
fn numeric_offset(s: &str) -> Option<i32> {
    if s == "Z" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hh, mm) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    (hh <= 14 && mm < 60).then_some(sign * (hh * 3600 + mm * 60))
}

/// Reads an optional zone after a time: `Z`, `+02:00` glued, or ` +0000`, ` PDT`, ` UTC`
/// separated by one space. Returns the offset and the bytes taken.
fn zone_after(rest: &str) -> (Option<i32>, usize) {
    let glued_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '+' || c == '-'))
        .unwrap_or(rest.len());
    if glued_end > 0
        && let Some(o) = numeric_offset(&rest[..glued_end])
    {
        return (Some(o), glued_end);
    }
    if let Some(r) = rest.strip_prefix(' ') {
        let end = r.find([' ', ']', ',', ')']).unwrap_or(r.len());
        let tok = &r[..end];
        if let Some(o) = numeric_offset(tok).or_else(|| zone_offset(tok)) {
            return (Some(o), 1 + end);
        }
    }
    (None, 0)
}

fn frac_nanos(f: Option<regex::Match>) -> u32 {
    f.map_or(0, |m| {
        let s = m.as_str();
        let digits = &s[..s.len().min(9)];
        digits.parse::<u32>().unwrap_or(0) * 10u32.pow(9 - digits.len() as u32)
    })
}

// Year to nanosecond and offset, as the regexes capture them: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn at(
    y: i32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    nanos: u32,
    offset: Option<i32>,
) -> Option<DateTime<Utc>> {
    let naive = NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_nano_opt(h, mi, s.min(59), nanos)?;
    let off = FixedOffset::east_opt(offset.unwrap_or(0))?;
    Some(
        off.from_local_datetime(&naive)
            .single()?
            .with_timezone(&Utc),
    )
}

/// A year for a date written without one (syslog, glog, logcat): this year, or last year
/// when that would put the date more than a day in the future.
pub fn infer_year(mo: u32, d: u32, h: u32, now: DateTime<Utc>) -> i32 {
    let y = now.year();
    match NaiveDate::from_ymd_opt(y, mo, d).and_then(|nd| nd.and_hms_opt(h, 0, 0)) {
        Some(n) if n.and_utc() > now + chrono::Duration::days(1) => y - 1,
        _ => y,
    }
}

/// A time without a year or zone, captured as month, day, hour, minute, second, fraction
/// (logcat, glog): the year inferred, UTC.
fn yearless(c: &regex::Captures, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (mo, d, h) = (n(c, 1), n(c, 2), n(c, 3));
    at(
        infer_year(mo, d, h, now),
        mo,
        d,
        h,
        n(c, 4),
        n(c, 5),
        frac_nanos(c.get(6)),
        None,
    )
}

fn n(c: &regex::Captures, i: usize) -> u32 {
    c.get(i).map_or(0, |m| m.as_str().parse().unwrap_or(0))
}

macro_rules! re {
    ($s:expr) => {{
        static R: LazyLock<Regex> = LazyLock::new(|| Regex::new($s).expect("timestamp regex"));
        &*R
    }};
}

/// Finds a timestamp at the start of `text` (after blanks and one `[`), with `now` for
/// inferring a missing year.
pub fn parse_at_start(text: &str, now: DateTime<Utc>) -> Option<Found> {
    let lead = text.len() - text.trim_start().len();
    let t = &text[lead..];
    let (open, t) = match t.strip_prefix('[') {
        Some(r) => (1, r),
        None => (0, t),
    };
    let (ts, len) = parse_bare(t, now)?;
    let mut len = lead + open + len;
    if open == 1 && text[len..].starts_with(']') {
        len += 1;
    }
    Some((ts, len))
}

fn parse_bare(t: &str, now: DateTime<Utc>) -> Option<Found> {
    let b = t.as_bytes();
    let first = *b.first()?;
    if first.is_ascii_digit() {
        // ISO: 2026-11-23T10:00:01.123Z, 2026-11-23 10:00:01,123 +0000, 2026/11/23 10:00:01.
        let iso = re!(r"^(\d{4})[-/](\d\d)[-/](\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?");
        if let Some(c) = iso.captures(t) {
            let end = c.get(0)?.end();
            let (off, zlen) = zone_after(&t[end..]);
            let ts = at(
                n(&c, 1) as i32,
                n(&c, 2),
                n(&c, 3),
                n(&c, 4),
                n(&c, 5),
                n(&c, 6),
                frac_nanos(c.get(7)),
                off,
            )?;
            return Some((ts, end + zlen));
        }
        // Access logs: 23/Nov/2026:10:00:01 +0000.
        let access = re!(r"^(\d\d)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d)");
        if let Some(c) = access.captures(t) {
            let end = c.get(0)?.end();
            let (off, zlen) = zone_after(&t[end..]);
            let ts = at(
                n(&c, 3) as i32,
                month(&c[2])?,
                n(&c, 1),
                n(&c, 4),
                n(&c, 5),
                n(&c, 6),
                0,
                off,
            )?;
            return Some((ts, end + zlen));
        }
        // Logcat: 03-17 16:13:38.811 (no year).
        let logcat = re!(r"^(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?");
        if let Some(c) = logcat.captures(t) {
            return Some((yearless(&c, now)?, c.get(0)?.end()));
        }
        // Spark: 17/06/09 20:10:40; HDFS: 081109 203615.
        let short = re!(r"^(\d\d)/?(\d\d)/?(\d\d) (\d\d):?(\d\d):?(\d\d)\b");
        if let Some(c) = short.captures(t) {
            let ts = at(
                2000 + n(&c, 1) as i32,
                n(&c, 2),
                n(&c, 3),
                n(&c, 4),
                n(&c, 5),
                n(&c, 6),
                0,
                None,
            )?;
            return Some((ts, c.get(0)?.end()));
        }
        // Epoch seconds (10 digits) or milliseconds (13), as a word of its own.
        let epoch = re!(r"^(\d{10}|\d{13})(?:\.(\d{1,9}))?(?:\s|$|\])");
        if let Some(c) = epoch.captures(t) {
            let digits = c.get(1)?;
            let v: i64 = digits.as_str().parse().ok()?;
            let ts = if digits.len() == 13 {
                DateTime::from_timestamp_millis(v)?
            } else {
                DateTime::from_timestamp(v, frac_nanos(c.get(2)))?
            };
            let end = c.get(2).map_or(digits.end(), |m| m.end());
            return Some((ts, end));
        }
        return None;
    }
    if first.is_ascii_alphabetic() {
        // ctime: Sun Dec 04 04:47:44 2005 (Apache error log), optional fraction; date(1)'s
        // Mon Nov 23 10:00:01 UTC 2026 (shell scripts) with its zone.
        let ctime = re!(
            r"^[A-Za-z]{3} ([A-Za-z]{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?: ([A-Z]{1,5}|[+-]\d{4}))? (\d{4})"
        );
        if let Some(c) = ctime.captures(t) {
            let off = match c.get(7) {
                Some(z) => Some(zone_offset(z.as_str()).or_else(|| numeric_offset(z.as_str()))?),
                None => None,
            };
            let ts = at(
                n(&c, 8) as i32,
                month(&c[1])?,
                n(&c, 2),
                n(&c, 3),
                n(&c, 4),
                n(&c, 5),
                frac_nanos(c.get(6)),
                off,
            )?;
            return Some((ts, c.get(0)?.end()));
        }
        // Syslog: Nov 23 10:00:01 (no year; a `Nov 23 2026 10:00:01` year is read too).
        let syslog =
            re!(r"^([A-Za-z]{3}) +(\d{1,2})(?: (\d{4}))? (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?");
        if let Some(c) = syslog.captures(t) {
            let (mo, d, h) = (month(&c[1])?, n(&c, 2), n(&c, 4));
            let y = match c.get(3) {
                Some(y) => y.as_str().parse().ok()?,
                None => infer_year(mo, d, h, now),
            };
            let end = c.get(0)?.end();
            let (off, zlen) = zone_after(&t[end..]);
            let ts = at(y, mo, d, h, n(&c, 5), n(&c, 6), frac_nanos(c.get(7)), off)?;
            return Some((ts, end + zlen));
        }
        // glog: I0517 12:34:56.789012 (no year).
        let glog = re!(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?");
        if let Some(c) = glog.captures(t) {
            // The level letter is not part of the time.
            return Some((yearless(&c, now)?, c.get(0)?.end()));
        }
    }
    None
}

/// A timestamp value of its own (a JSON field): any text shape above, or epoch seconds,
/// milliseconds, microseconds or nanoseconds by magnitude.
pub fn parse_value(v: &serde_json::Value, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match v {
        serde_json::Value::String(s) => {
            if let Ok(x) = s.parse::<f64>() {
                return from_epoch(x);
            }
            parse_at_start(s, now).map(|(t, _)| t)
        }
        serde_json::Value::Number(x) => from_epoch(x.as_f64()?),
        _ => None,
    }
}

/// Epoch seconds, ms, µs or ns, by magnitude.
pub fn from_epoch(x: f64) -> Option<DateTime<Utc>> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let per_sec: i64 = if x < 1e11 {
        1
    } else if x < 1e14 {
        1_000
    } else if x < 1e17 {
        1_000_000
    } else {
        1_000_000_000
    };
    if x.fract() == 0.0 {
        let v = x as i64;
        let nanos = (v % per_sec) * (1_000_000_000 / per_sec);
        return DateTime::from_timestamp(v / per_sec, nanos as u32);
    }
    // A fraction (zap's 1700000000.123456): microseconds are what a double keeps.
    let secs = x / per_sec as f64;
    let micros = (secs * 1e6).round() as i64;
    DateTime::from_timestamp_micros(micros)
}

/// Parses a timestamp with an explicit chrono format (format tables use this for shapes
/// like BGL's `2005-06-03-15.42.50.675872`).
pub fn parse_with(s: &str, fmt: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, fmt)
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn ts(s: &str) -> Option<(String, usize)> {
        parse_at_start(s, now()).map(|(t, l)| (t.to_rfc3339(), l))
    }

    #[test]
    fn shapes_zones_and_offsets() {
        let utc = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap().to_rfc3339());
        for (line, want, len) in [
            ("2026-11-23T10:00:01.5Z x", "2026-11-23T10:00:01.500Z", 22),
            (
                "2025-01-24T07:00:30,139 INFO",
                "2025-01-24T07:00:30.139Z",
                23,
            ),
            ("2026-11-23 10:00:01 PDT x", "2026-11-23T17:00:01Z", 23),
            (
                "2026-11-23 10:00:01.250 +0200 x",
                "2026-11-23T08:00:01.250Z",
                29,
            ),
            ("2026-11-23T12:00:01+02:00 x", "2026-11-23T10:00:01Z", 25),
            ("2026-11-23 10:00:01 INFO x", "2026-11-23T10:00:01Z", 19),
            ("[23/Nov/2026:10:00:01 -0700] x", "2026-11-23T17:00:01Z", 28),
            ("Sun Dec 04 04:47:44 2005 x", "2005-12-04T04:47:44Z", 24),
            (
                "Mon Nov 23 10:00:01 PDT 2026 ERROR x",
                "2026-11-23T17:00:01Z",
                28,
            ),
            ("2026/11/23 10:00:01 [error]", "2026-11-23T10:00:01Z", 19),
            ("17/06/09 20:10:40 INFO", "2017-06-09T20:10:40Z", 17),
            ("081109 203615 148 INFO", "2008-11-09T20:36:15Z", 13),
            ("1700000000 x", "2023-11-14T22:13:20Z", 10),
            ("1700000000123 x", "2023-11-14T22:13:20.123Z", 13),
        ] {
            let got = ts(line);
            assert_eq!(
                got.as_ref().map(|g| g.0.clone()),
                utc(want),
                "{line}: {got:?}"
            );
            assert_eq!(got.unwrap().1, len, "{line}");
        }
        assert_eq!(ts("no time here"), None);
        assert_eq!(ts("2026-11-23 not a time"), None);
        assert_eq!(ts("12345 apples"), None);
    }

    #[test]
    fn missing_year_is_inferred() {
        // March 2026: a February line is this year, a December line last year.
        assert_eq!(
            ts("Feb 28 23:59:59 host sshd[1]: x").unwrap().0,
            "2026-02-28T23:59:59+00:00"
        );
        assert_eq!(
            ts("Dec 31 23:59:59 host x").unwrap().0,
            "2025-12-31T23:59:59+00:00"
        );
        assert_eq!(
            ts("E1231 23:59:59.000001 1 a.go:1] x").unwrap().0,
            "2025-12-31T23:59:59.000001+00:00"
        );
    }

    #[test]
    fn json_values() {
        let v =
            |s: &str| parse_value(&serde_json::from_str(s).unwrap(), now()).map(|t| t.to_rfc3339());
        assert_eq!(v("1700000000").unwrap(), "2023-11-14T22:13:20+00:00");
        assert_eq!(v("1700000000123").unwrap(), "2023-11-14T22:13:20.123+00:00");
        assert_eq!(
            v("\"1700000000000000\"").unwrap(),
            "2023-11-14T22:13:20+00:00"
        );
        assert_eq!(
            v("\"2026-11-23T10:00:01Z\"").unwrap(),
            "2026-11-23T10:00:01+00:00"
        );
        assert_eq!(v("true"), None);
    }
}
