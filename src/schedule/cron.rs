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
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr.trim())
            .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))?;
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
