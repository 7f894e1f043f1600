//! The one sanitizer for text that came from outside (TestOps replies, CI-set release fields,
//! file names, child output) before it is logged, stored or shown.
//!
//! Three steps, always in this order: secrets known to the process and secret-shaped strings
//! (passwords in URLs, bearer tokens, bot tokens, `token=` form fields) become `***`; control
//! and bidi characters are escaped (`\u{1b}`), so no terminal escape or reordering survives;
//! the result is capped in length.

use std::sync::{LazyLock, RwLock};

use regex::Regex;

/// Default cap, in characters, for one sanitized text.
pub const MAX_CHARS: usize = 400;

/// The replacement for anything secret.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Secret-shaped text, whatever its value: `(prefix)(secret)`; the prefix is kept.
#[allow(
    clippy::expect_used,
    reason = "constant patterns, each exercised by the redaction tests"
)]
static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // user:password@ in a URL
        r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(@)",
        // Authorization: Bearer / Basic
        r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{16,}",
        // Telegram-style bot tokens: 123456789:AA...
        r"(\bbot)?(\d{6,12}:)[A-Za-z0-9_-]{30,}",
        // form fields and JSON members that hold secrets
        r#"(?i)(\b(?:access_token|refresh_token|id_token|token|api_token|client_secret|password|passwd|secret)["']?\s*[=:]\s*["']?)[^&"'\s,;}]{3,}"#,
        // opsdeck API tokens (server::tokens), wherever they appear
        r"(\bodk_)[A-Za-z0-9_-]{20,}",
    ]
    .iter()
    .map(|p| Regex::new(p).expect("valid pattern"))
    .collect()
});

/// Registers a secret this process knows (API token, access token, client secret, a URL's
/// password), so it is masked wherever it shows up. Very short values are ignored: masking
/// "a" everywhere would garble every message.
pub fn register_secret(secret: &str) {
    let s = secret.trim();
    if s.len() < 6 {
        return;
    }
    let mut list = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    if !list.iter().any(|x| x == s) {
        list.push(s.to_string());
        // Longest first, so a secret containing another is masked whole.
        list.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
}

/// Whether `value` holds a registered secret.
pub fn holds_secret(value: &str) -> bool {
    let list = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    list.iter().any(|s| value.contains(s.as_str()))
}

/// Masks secrets only; control characters and length are left alone (log lines, multi-line
/// text that is escaped elsewhere).
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    {
        let list = SECRETS.read().unwrap_or_else(|p| p.into_inner());
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
    }
    for (i, re) in PATTERNS.iter().enumerate() {
        if re.is_match(&out) {
            out = match i {
                0 => re.replace_all(&out, format!("${{1}}{MASK}${{2}}")),
                2 => re.replace_all(&out, format!("${{1}}${{2}}{MASK}")),
                _ => re.replace_all(&out, format!("${{1}}{MASK}")),
            }
            .into_owned();
        }
    }
    out
}

/// Whether a character must not reach a terminal or a table cell as is.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200E}' | '\u{200F}' | '\u{061C}'          // marks
            | '\u{202A}'..='\u{202E}'                       // embeddings, overrides
            | '\u{2066}'..='\u{2069}'                       // isolates
            | '\u{2028}' | '\u{2029}'                       // line/paragraph separators
            | '\u{FEFF}')
}

/// Escapes control and bidi characters: `\n`, `\t`, `\r`, else `\u{..}`.
pub fn escape(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Redacts, escapes and caps at [`MAX_CHARS`]: for any one-line text from outside.
pub fn clean(text: &str) -> String {
    clean_max(text, MAX_CHARS)
}

/// [`clean`] with another cap.
pub fn clean_max(text: &str, max: usize) -> String {
    // Work on a bounded prefix, so a huge reply costs no huge regex pass.
    let total = text.chars().count();
    let raw: String = text.chars().take(max.saturating_mul(4) + 64).collect();
    let done = escape(&redact(&raw));
    if done.chars().count() <= max && raw.len() == text.len() {
        return done;
    }
    let kept: String = done.chars().take(max).collect();
    format!("{kept}… ({} more chars)", total.saturating_sub(max))
}

/// [`clean`] line by line, for multi-line messages: the line breaks stay, nothing else.
pub fn clean_lines(text: &str) -> String {
    text.lines()
        .take(50)
        .map(|l| clean_max(l, 1000))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A URL for display: the password of its user-info masked.
pub fn url(u: &str) -> String {
    escape(&redact(u))
}

/// An `io::Write` that masks secrets in everything written through it: the log files and
/// stderr log lines pass through one of these.
pub struct RedactingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing's fmt layer writes one whole event per call, so a secret is never split.
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Wraps a `MakeWriter` so every writer it makes redacts.
#[derive(Clone)]
pub struct Redacting<M>(pub M);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Redacting<M>
{
    type Writer = RedactingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_and_secret_shaped_text() {
        register_secret("s3cr3t-api-token-for-tests");
        let t = clean("echo: token=s3cr3t-api-token-for-tests&scope=openid");
        assert!(!t.contains("s3cr3t"), "{t}");
        assert_eq!(
            url("https://bob:hunter2pw@testops.example.com/x"),
            "https://bob:***@testops.example.com/x"
        );
        let t = clean("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def");
        assert!(!t.contains("eyJ"), "{t}");
        let t =
            clean("https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/send");
        assert!(!t.contains("AAHdq"), "{t}");
        let t = clean(r#"{"access_token":"abcdef123456","expires_in":3600}"#);
        assert!(!t.contains("abcdef123456"), "{t}");
        let t = clean("curl said odk_Zm9vYmFyYmF6cXV4LXRlc3QtdG9rZW4tdmFsdWU was bad");
        assert_eq!(t, "curl said odk_*** was bad");
    }

    #[test]
    fn escapes_terminal_and_bidi_and_caps() {
        let t = clean("a\x1b]52;c;aGVsbG8=\x07b\x1b[2J\u{202E}gpj.exe\u{9b}");
        assert!(!t.chars().any(is_unsafe), "{t:?}");
        assert!(t.contains("\\u{1b}]52"), "{t}");
        assert!(t.contains("\\u{202e}"), "{t}");
        let long = "x".repeat(10_000);
        let t = clean(&long);
        assert!(t.chars().count() < MAX_CHARS + 40, "{}", t.len());
        assert!(t.ends_with("(9600 more chars)"), "{t}");
        assert_eq!(
            clean("Интеграция с WB Youtrack"),
            "Интеграция с WB Youtrack"
        );
    }
}
