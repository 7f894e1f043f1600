//! Cron expressions (croner) evaluated in UTC or an IANA zone, as absolute instants.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed cron expression plus the zone it is evaluated in.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    cron: Cron,
    tz: Tz,
}

impl CronSchedule {
    /// Parses a 5-field (or 6-field, with seconds) expression; `tz` defaults to UTC.
    pub fn parse(expr: &str, tz: Option<Tz>) -> Result<Self, String> {
        let fields = expr.split_whitespace().count();
        if fields == 0 {
            return Err(format!("the cron expression is empty: {WANTS}"));
        }
        // Croner also reads a 7th field (years); opsdeck's schedules are 5 or 6 fields, or a
        // nickname (`@daily`).
        if !(5..=6).contains(&fields) && !expr.trim_start().starts_with('@') {
            let noun = if fields == 1 { "field" } else { "fields" };
            return Err(format!(
                "`{expr}` is not a valid cron expression: it has {fields} {noun}; {WANTS}"
            ));
        }
        let cron = cron_parser().parse(expr.trim()).map_err(|e| {
            format!(
                "`{expr}` is not a valid cron expression: {}",
                explain(expr, &e.to_string())
            )
        })?;
        Ok(Self {
            expr: expr.trim().to_string(),
            cron,
            tz: tz.unwrap_or(chrono_tz::UTC),
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The expression in plain words, with its zone.
    pub fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.cron.describe().trim_end_matches('.'),
            self.tz.name()
        )
    }

    /// The first run strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The latest run at or before `t`.
    pub fn prev_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The next `n` runs after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut cur = t;
        while out.len() < n {
            match self.next_after(cur) {
                Some(next) => {
                    out.push(next);
                    cur = next;
                }
                None => break,
            }
        }
        out
    }
}

/// The fields of a 5-field expression and their ranges (a 6th, seconds, goes first).
const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

/// What a cron expression is made of, for errors.
const WANTS: &str =
    "cron wants 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first";

fn cron_parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).build()
}

/// Croner's error in the user's terms: which field is wrong and what it accepts. `expr` has
/// 5 or 6 fields.
fn explain(expr: &str, croner: &str) -> String {
    if expr.trim_start().starts_with('@') {
        return "the nicknames are @yearly, @monthly, @weekly, @daily and @hourly".into();
    }
    let parts: Vec<&str> = expr.split_whitespace().collect();
    let mut fields: Vec<(&str, u32, u32)> = Vec::new();
    if parts.len() == 6 {
        fields.push(("second", 0, 59));
    }
    fields.extend(FIELDS);
    let named: Vec<(&str, (&str, u32, u32))> =
        parts.iter().copied().zip(fields.iter().copied()).collect();
    // Numbers of each list item (`1-5`, `*/15`, `30`); a step is no value of the field.
    let ranges = |part: &str| -> Vec<Vec<u32>> {
        part.split(',')
            .map(|item| {
                item.split('/')
                    .next()
                    .unwrap_or(item)
                    .split('-')
                    .filter_map(|n| n.parse::<u32>().ok())
                    .collect()
            })
            .collect()
    };
    for &(part, (name, ..)) in &named {
        if let Some(r) = ranges(part).iter().find(|r| r.len() == 2 && r[0] > r[1]) {
            return format!(
                "the {name} range {}-{} runs backwards; write {}-{}",
                r[0], r[1], r[1], r[0]
            );
        }
    }
    if croner.contains("out of bounds") {
        for &(part, (name, lo, hi)) in &named {
            if let Some(n) = ranges(part)
                .concat()
                .into_iter()
                .find(|&n| n < lo || n > hi)
            {
                return format!("{name} {n} is out of range {lo}-{hi}");
            }
        }
    }
    if let Some(c) = croner
        .split("illegal character '")
        .nth(1)
        .and_then(|r| r.chars().next())
    {
        let field = named
            .iter()
            .find(|(p, _)| p.to_ascii_uppercase().contains(c.to_ascii_uppercase()))
            .map_or(String::new(), |&(p, (name, ..))| {
                if p == c.to_string() {
                    format!(" in the {name} field")
                } else {
                    format!(" in the {name} field `{p}`")
                }
            });
        return format!("`{c}` is not allowed{field}");
    }
    if croner.contains("Step cannot be zero") {
        return "a step of 0 (`*/0`) never moves; use 1 or more".into();
    }
    // Anything else: the field that fails alone (every other one `*`), in croner's words.
    let words = {
        let rest = croner.rsplit(": ").next().unwrap_or(croner);
        let mut chars = rest.trim_end_matches('.').chars();
        chars
            .next()
            .map(|f| f.to_lowercase().chain(chars).collect::<String>())
            .unwrap_or_default()
    };
    let alone = |i: usize| {
        let probe: Vec<&str> = (0..parts.len())
            .map(|j| if j == i { parts[j] } else { "*" })
            .collect();
        cron_parser().parse(&probe.join(" ")).is_err()
    };
    match (0..parts.len()).find(|&i| alone(i)) {
        Some(i) => {
            let (part, (name, lo, hi)) = named[i];
            // Croner's "invalid start of range" for `-1` or `MON-`.
            let words = if words.contains("of range") {
                "a range needs a value on each side of `-`".to_string()
            } else {
                words
            };
            format!("the {name} field `{part}` is not valid ({lo}-{hi}): {words}")
        }
        None => words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn default_daily_schedule_is_utc() {
        let c = CronSchedule::parse("0 7 * * *", None).unwrap();
        assert_eq!(
            c.next_after(utc("2026-11-23T06:59:59Z")),
            Some(utc("2026-11-23T07:00:00Z"))
        );
        assert_eq!(
            c.next_after(utc("2026-11-23T07:00:00Z")),
            Some(utc("2026-11-24T07:00:00Z"))
        );
        assert_eq!(
            c.prev_at_or_before(utc("2026-11-23T07:00:00Z")),
            Some(utc("2026-11-23T07:00:00Z"))
        );
    }

    #[test]
    fn invalid_expression_is_explained() {
        let e = CronSchedule::parse("0 25 * * *", None).unwrap_err();
        assert!(e.contains("0 25 * * *"), "{e}");
        assert!(CronSchedule::parse("every day", None).is_err());
        let said = |e: &str| CronSchedule::parse(e, None).unwrap_err();
        for (expr, why) in [
            ("0 25 * * *", "hour 25 is out of range 0-23"),
            ("61 * * * *", "minute 61 is out of range 0-59"),
            ("0 7 32 * *", "day of month 32 is out of range 1-31"),
            ("0 7 * 13 *", "month 13 is out of range 1-12"),
            ("0 7 * * 1-9", "day of week 9 is out of range 0-7"),
            ("*/90 7-24 * * *", "hour 24 is out of range 0-23"),
            ("0 0 7 * * 9", "day of week 9 is out of range 0-7"),
            ("0 7 * *", "it has 4 fields; cron wants 5"),
            ("every day", "it has 2 fields"),
            ("0 7 * * * * *", "it has 7 fields"),
            ("", "the cron expression is empty: cron wants 5 fields"),
            (
                "0 7 5-1 * *",
                "the day of month range 5-1 runs backwards; write 1-5",
            ),
            (
                "0 -1 * * *",
                "the hour field `-1` is not valid (0-23): a range needs a value",
            ),
            (
                "0 7 * * MON-",
                "the day of week field `MON-` is not valid (0-7): a range needs",
            ),
            ("daily", "it has 1 field;"),
            ("@sometimes", "the nicknames are @yearly"),
            ("X 7 * * *", "`X` is not allowed in the minute field"),
            (
                "0 7 * * MON-XYZ",
                "`X` is not allowed in the day of week field `MON-XYZ`",
            ),
            ("*/0 * * * *", "a step of 0"),
        ] {
            let e = said(expr);
            assert!(e.contains(why), "{expr}: {e}");
            assert!(
                !e.contains("Invalid pattern") && !e.contains("Component error"),
                "{e}"
            );
        }
        // Nicknames are cron too.
        let daily = CronSchedule::parse("@daily", None).unwrap();
        assert_eq!(
            daily.next_after(utc("2026-11-23T06:59:59Z")),
            Some(utc("2026-11-24T00:00:00Z"))
        );
        // The value is not said twice when it is the whole field.
        assert!(said("X 7 * * *").ends_with("in the minute field"));
    }

    #[test]
    fn dst_repeat_runs_once_and_gap_is_not_skipped() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2026-10-25: 02:00-03:00 happens twice in Berlin.
        let c = CronSchedule::parse("30 2 * * *", Some(berlin)).unwrap();
        let start = berlin
            .with_ymd_and_hms(2026, 10, 24, 12, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let runs = c.upcoming(start, 3);
        let days: Vec<_> = runs
            .iter()
            .map(|r| r.with_timezone(&berlin).date_naive())
            .collect();
        assert_eq!(days.len(), 3);
        assert!(
            days.windows(2).all(|w| w[0] < w[1]),
            "a day ran twice: {runs:?}"
        );
        // 2026-03-29: 02:00-03:00 does not exist in Berlin; the job still runs that day.
        let start = berlin
            .with_ymd_and_hms(2026, 3, 28, 12, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let runs = c.upcoming(start, 2);
        let days: Vec<_> = runs
            .iter()
            .map(|r| r.with_timezone(&berlin).date_naive())
            .collect();
        assert_eq!(
            days[0],
            chrono::NaiveDate::from_ymd_opt(2026, 3, 28).unwrap() + chrono::Days::new(1)
        );
        assert!(days[0] < days[1]);
    }
}
