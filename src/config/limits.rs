//! Bounds on values a person can type: each refused with the key and where it was set, so a
//! typo fails at start (and in `opsdeck check`) instead of deleting files or flooding a server.

use std::time::Duration;

use super::{ConfigError, Origin};
use crate::schedule::CronSchedule;

/// Longest group name: it becomes part of a file name, and file names have limits.
pub const MAX_GROUP_NAME: usize = 64;
/// Shortest pause between download polls.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Default largest export.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// A minimum transfer rate: at least `bytes` in every `per` of a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub bytes: u64,
    pub per: Duration,
}

impl Default for MinRate {
    /// 64 KiB a minute (about 1 KiB/s): any working link does more, a drip does less.
    fn default() -> Self {
        MinRate {
            bytes: 64 << 10,
            per: Duration::from_secs(60),
        }
    }
}

fn invalid(key: &'static str, origin: &Origin, message: String) -> ConfigError {
    ConfigError::Invalid {
        key,
        origin: origin.clone(),
        message,
    }
}

/// `export.retention_days`: 1..=3650. 0 would delete the export just saved; a huge value
/// overflows date arithmetic.
pub fn retention_days(v: i64, origin: &Origin) -> Result<u32, ConfigError> {
    if (1..=3650).contains(&v) {
        Ok(v as u32)
    } else {
        Err(invalid(
            "export.retention_days",
            origin,
            format!("{v} is out of range: use 1 to 3650 days"),
        ))
    }
}

/// A timeout or deadline must be longer than zero.
pub fn positive(key: &'static str, d: Duration, origin: &Origin) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(invalid(key, origin, "must be longer than 0s".into()));
    }
    Ok(())
}

/// `testops.poll_interval` ≥ 500ms, so a not-ready export cannot become a request flood.
pub fn poll_interval(d: Duration, origin: &Origin) -> Result<(), ConfigError> {
    if d < MIN_POLL_INTERVAL {
        return Err(invalid(
            "testops.poll_interval",
            origin,
            format!(
                "{} is too short: use at least 500ms",
                humantime::format_duration(d)
            ),
        ));
    }
    Ok(())
}

/// Refuses a schedule that fires more than once a minute unless `allowed`.
pub fn schedule(
    key: &'static str,
    s: &CronSchedule,
    allowed: bool,
    origin: &Origin,
) -> Result<(), ConfigError> {
    if allowed {
        return Ok(());
    }
    // Three consecutive runs from a fixed instant: two of them less than a minute apart means
    // a seconds field with several values.
    let from = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let runs = s.upcoming(from, 3);
    let sub_minute = runs
        .windows(2)
        .any(|w| (w[1] - w[0]) < chrono::Duration::seconds(60));
    if sub_minute {
        return Err(invalid(
            key,
            origin,
            format!(
                "`{}` runs more than once a minute; set export.allow_sub_minute = true if you mean it",
                s.expr()
            ),
        ));
    }
    Ok(())
}

/// Group names: at most 64 characters, printable.
pub fn group_name(name: &str, origin: &Origin) -> Result<(), ConfigError> {
    let n = name.chars().count();
    if n > MAX_GROUP_NAME {
        return Err(invalid(
            "testops.groups.name",
            origin,
            format!("a group name has at most {MAX_GROUP_NAME} characters; this one has {n}"),
        ));
    }
    if crate::sanitize::escape(name) != name {
        return Err(invalid(
            "testops.groups.name",
            origin,
            format!(
                "group name `{}` holds control or bidi characters",
                crate::sanitize::escape(name)
            ),
        ));
    }
    Ok(())
}

/// `http://` is allowed to loopback hosts only, unless `testops.allow_http = true`: the token
/// would cross the network in clear text.
pub fn plain_http(url: &str, allow_http: bool, origin: &Origin) -> Result<(), ConfigError> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Ok(());
    };
    if allow_http || is_loopback(host_of(rest)) {
        return Ok(());
    }
    Err(invalid(
        "testops.base_url",
        origin,
        format!(
            "`{}` is plain http:// to another host: the token would travel unencrypted. Use \
             https://, or set testops.allow_http = true",
            crate::sanitize::url(url)
        ),
    ))
}

pub(super) fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    host_port.split(':').next().unwrap_or("")
}

pub(super) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `export.max_bytes`: an integer of bytes or a string like "2GiB", "500MB", "64KiB".
pub fn byte_size(v: &toml::Value, origin: &Origin) -> Result<u64, ConfigError> {
    let parsed = match v {
        toml::Value::Integer(n) if *n > 0 => Some(*n as u64),
        toml::Value::String(s) => parse_bytes(s),
        _ => None,
    };
    parsed.filter(|&n| n > 0).ok_or_else(|| {
        invalid(
            "export.max_bytes",
            origin,
            format!("`{v}` is not a size; write it like 2147483648 or \"2GiB\" or \"500MB\""),
        )
    })
}

/// Parses "2GiB", "500MB", "64KiB", "100B", "100".
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `export.min_rate`: "64KiB/60s" means at least 64 KiB in every 60 seconds of a download.
pub fn min_rate(s: &str, origin: &Origin) -> Result<MinRate, ConfigError> {
    let bad = || {
        invalid(
            "export.min_rate",
            origin,
            format!("`{s}` is not a rate; write it like \"64KiB/60s\""),
        )
    };
    let (size, per) = s.split_once('/').ok_or_else(bad)?;
    let bytes = parse_bytes(size).filter(|&b| b > 0).ok_or_else(bad)?;
    let per = humantime::parse_duration(per.trim()).map_err(|_| bad())?;
    if per.is_zero() {
        return Err(bad());
    }
    Ok(MinRate { bytes, per })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_and_hosts() {
        assert_eq!(parse_bytes("2GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("500MB"), Some(500_000_000));
        assert_eq!(parse_bytes("12 parsecs"), None);
        let o = Origin::Default;
        assert_eq!(
            min_rate("100B/500ms", &o).unwrap(),
            MinRate {
                bytes: 100,
                per: Duration::from_millis(500)
            }
        );
        assert!(min_rate("fast", &o).is_err());
        assert!(plain_http("http://127.0.0.1:8080/x", false, &o).is_ok());
        assert!(plain_http("http://[::1]:80", false, &o).is_ok());
        assert!(plain_http("http://localhost", false, &o).is_ok());
        assert!(plain_http("http://testops.corp", false, &o).is_err());
        assert!(plain_http("http://u:p@127.0.0.1.evil.com", false, &o).is_err());
        assert!(plain_http("http://testops.corp", true, &o).is_ok());
        assert!(plain_http("https://testops.corp", false, &o).is_ok());
    }
}
