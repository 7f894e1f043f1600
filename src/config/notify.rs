//! `[[notify]]` sinks and `[ui]`: kind-specific keys checked, secrets read from their files
//! at load (and registered with the sanitizer), every error naming the key, file and line.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Origin, parse_duration};
use crate::notify::{EventKind, SinkConfig, SinkTarget, WebhookFormat};

/// A `[[notify]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifyFile {
    pub kind: Spanned<String>,
    pub name: Option<Spanned<String>>,
    pub events: Option<Vec<Spanned<String>>>,
    pub services: Option<Vec<String>>,
    pub retry_max: Option<Spanned<String>>,
    pub give_up_after: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    // telegram
    pub chat_id: Option<Spanned<toml::Value>>,
    pub bot_token_file: Option<Spanned<String>>,
    pub api_url: Option<Spanned<String>>,
    // webhook
    pub url_file: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<String>>,
    // command
    pub argv: Option<Spanned<Vec<String>>>,
}

/// `[ui]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UiFile {
    /// A terminal bell and a desktop notification (OSC 9 / OSC 777) when a release starts
    /// waiting on you.
    pub notify: Option<bool>,
    /// Hide every action in the dashboard (`--readonly` does the same for one run).
    pub readonly: Option<bool>,
    /// `default`, `light` or `high-contrast`.
    pub theme: Option<toml::Spanned<String>>,
}

/// The validated sinks.
pub(super) fn sinks(
    list: Vec<NotifyFile>,
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
    warnings: &mut Vec<String>,
) -> Result<Vec<SinkConfig>, ConfigError> {
    let mut out: Vec<SinkConfig> = Vec::new();
    for (i, n) in list.into_iter().enumerate() {
        let kind_origin = at(n.kind.span());
        let invalid = |key: &'static str, origin: Origin, message: String| ConfigError::Invalid {
            key,
            origin,
            message,
        };
        let kind = n.kind.get_ref().clone();
        // Keys of another kind are an error, with their line.
        let present: [(&'static str, Option<std::ops::Range<usize>>, &str); 7] = [
            ("chat_id", n.chat_id.as_ref().map(|v| v.span()), "telegram"),
            (
                "bot_token_file",
                n.bot_token_file.as_ref().map(|v| v.span()),
                "telegram",
            ),
            ("api_url", n.api_url.as_ref().map(|v| v.span()), "telegram"),
            ("url_file", n.url_file.as_ref().map(|v| v.span()), "webhook"),
            ("format", n.format.as_ref().map(|v| v.span()), "webhook"),
            (
                "secret_file",
                n.secret_file.as_ref().map(|v| v.span()),
                "webhook",
            ),
            ("argv", n.argv.as_ref().map(|v| v.span()), "command"),
        ];
        if !["telegram", "webhook", "command"].contains(&kind.as_str()) {
            return Err(invalid(
                "notify.kind",
                kind_origin,
                format!(
                    "`{kind}` is not a sink kind; use \"telegram\", \"webhook\" or \"command\""
                ),
            ));
        }
        for (key, span, owner) in &present {
            if let Some(span) = span
                && *owner != kind
            {
                return Err(invalid(
                    "notify",
                    at(span.clone()),
                    format!("`{key}` is a key of a {owner} sink, not of this {kind} sink"),
                ));
            }
        }
        let missing = |key: &'static str| {
            invalid(
                key,
                kind_origin.clone(),
                format!(
                    "a {kind} sink needs `{}`",
                    key.trim_start_matches("notify.")
                ),
            )
        };
        let secret_file = |key: &'static str, f: &Spanned<String>, what: &str| {
            let p = Path::new(f.get_ref());
            let text = std::fs::read_to_string(p).map_err(|e| {
                invalid(
                    key,
                    at(f.span()),
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            let v = text.trim().to_string();
            if v.is_empty() {
                return Err(invalid(
                    key,
                    at(f.span()),
                    format!("{} is empty", p.display()),
                ));
            }
            crate::sanitize::register_secret(&v);
            Ok((v, super::permission_warning(p, what)))
        };
        let http_url = |key: &'static str, url: &str, origin: Origin| {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| {
                    invalid(
                        key,
                        origin.clone(),
                        "the URL must start with https:// (or http:// to a loopback host)".into(),
                    )
                })?;
            if url.starts_with("http://")
                && !super::limits::is_loopback(super::limits::host_of(rest))
            {
                return Err(invalid(
                    key,
                    origin,
                    "plain http:// is accepted only to a loopback host (127.0.0.1, ::1, localhost): the message would travel unencrypted; use https://".into(),
                ));
            }
            Ok(())
        };
        let target = match kind.as_str() {
            "telegram" => {
                let chat_id = match &n.chat_id {
                    None => return Err(missing("notify.chat_id")),
                    Some(v) => match v.get_ref() {
                        toml::Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
                        toml::Value::Integer(i) => i.to_string(),
                        _ => {
                            return Err(invalid(
                                "notify.chat_id",
                                at(v.span()),
                                "a chat id is a number or a string (\"-1001234567890\", \"@channel\")".into(),
                            ));
                        }
                    },
                };
                let Some(f) = &n.bot_token_file else {
                    return Err(missing("notify.bot_token_file"));
                };
                let (token, warn) = secret_file(
                    "notify.bot_token_file",
                    f,
                    "a Telegram bot token (notify.bot_token_file)",
                )?;
                warnings.extend(warn);
                let api_url = match &n.api_url {
                    None => "https://api.telegram.org".to_string(),
                    Some(u) => {
                        http_url("notify.api_url", u.get_ref(), at(u.span()))?;
                        u.get_ref().trim_end_matches('/').to_string()
                    }
                };
                SinkTarget::Telegram {
                    chat_id,
                    token: SecretString::from(token),
                    api_url,
                }
            }
            "webhook" => {
                let Some(f) = &n.url_file else {
                    return Err(missing("notify.url_file"));
                };
                let (url, warn) =
                    secret_file("notify.url_file", f, "a webhook URL (notify.url_file)")?;
                warnings.extend(warn);
                // The URL itself is never shown: the message names the file's line only.
                http_url("notify.url_file", &url, at(f.span()))?;
                let format = match n.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
                    None | Some(("json", _)) => WebhookFormat::Json,
                    Some(("slack", _)) => WebhookFormat::Slack,
                    Some((other, span)) => {
                        return Err(invalid(
                            "notify.format",
                            at(span),
                            format!("`{other}` is not a webhook format; use \"json\" or \"slack\""),
                        ));
                    }
                };
                let secret = match &n.secret_file {
                    None => None,
                    Some(f) => {
                        let (s, warn) = secret_file(
                            "notify.secret_file",
                            f,
                            "a webhook signing secret (notify.secret_file)",
                        )?;
                        warnings.extend(warn);
                        Some(SecretString::from(s))
                    }
                };
                SinkTarget::Webhook {
                    url: SecretString::from(url),
                    format,
                    secret,
                }
            }
            _ => {
                let Some(argv) = &n.argv else {
                    return Err(missing("notify.argv"));
                };
                if argv.get_ref().is_empty() || argv.get_ref()[0].trim().is_empty() {
                    return Err(invalid(
                        "notify.argv",
                        at(argv.span()),
                        "argv needs a program: argv = [\"/usr/local/bin/page-oncall\"]".into(),
                    ));
                }
                SinkTarget::Command {
                    argv: argv.get_ref().clone(),
                }
            }
        };
        let name = match &n.name {
            Some(s) => {
                let v = s.get_ref().trim().to_string();
                if v.is_empty()
                    || v.len() > 64
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(invalid(
                        "notify.name",
                        at(s.span()),
                        format!("`{v}`: a sink name has 1 to 64 letters, digits, `-`, `_` or `.`"),
                    ));
                }
                if out.iter().any(|o| o.name == v) {
                    return Err(invalid(
                        "notify.name",
                        at(s.span()),
                        format!("two sinks are named `{v}`"),
                    ));
                }
                v
            }
            None => format!("{kind}-{}", i + 1),
        };
        let events = match &n.events {
            None => None,
            Some(list) => {
                let mut set = BTreeSet::new();
                for e in list {
                    let k = EventKind::parse(e.get_ref())
                        .filter(|k| *k != EventKind::Test)
                        .ok_or_else(|| {
                            invalid(
                                "notify.events",
                                at(e.span()),
                                format!(
                                    "`{}` is not an event; known: {}",
                                    e.get_ref(),
                                    EventKind::ALL
                                        .iter()
                                        .filter(|k| **k != EventKind::Test)
                                        .map(|k| k.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            )
                        })?;
                    set.insert(k);
                }
                Some(set)
            }
        };
        let dur = |key: &'static str, v: &Option<Spanned<String>>, default: Duration| match v {
            None => Ok(default),
            Some(s) => {
                let d = parse_duration(s.get_ref()).map_err(|m| invalid(key, at(s.span()), m))?;
                if d.is_zero() {
                    return Err(invalid(key, at(s.span()), "must be longer than 0s".into()));
                }
                Ok(d)
            }
        };
        out.push(SinkConfig {
            name,
            target,
            events,
            services: n.services.map(|s| s.into_iter().collect()),
            retry_max: dur("notify.retry_max", &n.retry_max, Duration::from_secs(300))?,
            give_up_after: dur(
                "notify.give_up_after",
                &n.give_up_after,
                Duration::from_secs(24 * 3600),
            )?,
            timeout: dur("notify.timeout", &n.timeout, Duration::from_secs(15))?,
        });
    }
    Ok(out)
}
