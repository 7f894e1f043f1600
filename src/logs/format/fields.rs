//! Structured lines: JSON objects and logfmt `key=value` pairs, read through a field map
//! (which keys hold the level and the time; dotted keys reach nested objects, as ECS's
//! `log.level`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::level::Level;
use super::timestamp;

/// Which keys hold the level and the time, in order of preference.
#[derive(Debug, Clone, Default)]
pub struct FieldMap {
    pub level: Vec<String>,
    pub ts: Vec<String>,
}

/// A value by key: flat (`"log.level"`) or nested (`{"log":{"level":..}}`).
fn lookup<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(key) {
        return Some(v);
    }
    let (head, rest) = key.split_once('.')?;
    lookup(obj.get(head)?, rest)
}

/// A level value: a word, a number (bunyan/pino, syslog), or a numeric string (journald's
/// `PRIORITY`, always syslog).
pub fn level_of(key: &str, v: &Value) -> Option<Level> {
    let syslog = key.eq_ignore_ascii_case("priority");
    match v {
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(n) if syslog => Level::from_syslog(n as u64),
            Ok(n) => Level::from_number(n),
            Err(_) => Level::from_word(s.trim()),
        },
        Value::Number(n) if syslog => Level::from_syslog(n.as_u64()?),
        Value::Number(n) => Level::from_number(n.as_f64()?),
        _ => None,
    }
}

/// A JSON object line, if it is one.
pub fn json(text: &str) -> Option<Value> {
    let t = text.trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return None;
    }
    serde_json::from_str::<Value>(t)
        .ok()
        .filter(Value::is_object)
}

/// Level and time of a JSON object.
pub fn read_json(
    obj: &Value,
    map: &FieldMap,
    now: DateTime<Utc>,
) -> (Option<Level>, Option<DateTime<Utc>>) {
    let level = map
        .level
        .iter()
        .find_map(|k| lookup(obj, k).map(|v| level_of(k, v)))
        .flatten();
    let ts = map
        .ts
        .iter()
        .find_map(|k| lookup(obj, k))
        .and_then(|v| timestamp::parse_value(v, now));
    (level, ts)
}

/// The `key=value` pairs of a logfmt line (values may be quoted with `\"` escapes); `None`
/// when fewer than two pairs are found, so prose with one `=` is not logfmt.
pub fn logfmt(text: &str) -> Option<Vec<(&str, String)>> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' || i == key_start {
            // A bare word: skip it.
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            continue;
        }
        let key = &text[key_start..i];
        i += 1;
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let c = text[i..].chars().next()?;
                v.push(c);
                i += c.len_utf8();
            }
            i += 1;
            v
        } else {
            let s = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            text[s..i].to_string()
        };
        out.push((key, value));
    }
    (out.len() >= 2).then_some(out)
}

/// Level and time of logfmt pairs.
pub fn read_logfmt(
    pairs: &[(&str, String)],
    map: &FieldMap,
    now: DateTime<Utc>,
) -> (Option<Level>, Option<DateTime<Utc>>) {
    let get = |keys: &[String]| {
        keys.iter()
            .find_map(|k| pairs.iter().find(|(pk, _)| pk == k).map(|(k, v)| (*k, v)))
    };
    let level = get(&map.level).and_then(|(k, v)| level_of(k, &Value::String(v.clone())));
    let ts = get(&map.ts).and_then(|(_, v)| timestamp::parse_value(&Value::String(v.clone()), now));
    (level, ts)
}

/// A JSON line pretty-printed (two-space indent), or `None` when it is not JSON.
pub fn pretty(text: &str) -> Option<String> {
    serde_json::to_string_pretty(&json(text)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> FieldMap {
        FieldMap {
            level: ["level", "severity", "log.level", "PRIORITY"]
                .map(String::from)
                .to_vec(),
            ts: ["time", "@timestamp", "__REALTIME_TIMESTAMP"]
                .map(String::from)
                .to_vec(),
        }
    }

    #[test]
    fn json_levels_of_many_loggers() {
        let now = Utc::now();
        for (line, level) in [
            (
                r#"{"level":30,"time":1700000000000,"msg":"pino"}"#,
                Level::Info,
            ),
            (r#"{"name":"x","level":50,"msg":"bunyan"}"#, Level::Error),
            (
                r#"{"@timestamp":"2026-11-23T10:00:01Z","log.level":"warn"}"#,
                Level::Warn,
            ),
            (
                r#"{"log":{"level":"error","logger":"a"},"message":"ecs nested"}"#,
                Level::Error,
            ),
            (r#"{"PRIORITY":"3","MESSAGE":"journald"}"#, Level::Error),
            (r#"{"severity":"CRITICAL","message":"gcp"}"#, Level::Fatal),
        ] {
            let (l, _) = read_json(&json(line).unwrap(), &map(), now);
            assert_eq!(l, Some(level), "{line}");
        }
        let (_, ts) = read_json(
            &json(r#"{"level":30,"time":1700000000000}"#).unwrap(),
            &map(),
            now,
        );
        assert_eq!(ts, Some("2023-11-14T22:13:20Z".parse().unwrap()));
    }

    #[test]
    fn logfmt_pairs() {
        let p = logfmt(r#"time="2026-11-23T10:00:01Z" level=error msg="a \"b\" c""#).unwrap();
        assert_eq!(p[2], ("msg", r#"a "b" c"#.to_string()));
        let (l, ts) = read_logfmt(&p, &map(), Utc::now());
        assert_eq!(l, Some(Level::Error));
        assert_eq!(ts, Some("2026-11-23T10:00:01Z".parse().unwrap()));
        assert!(logfmt("x=1 is not enough").is_none());
    }
}
