//! Small text formatting helpers for the views.

use chrono::{DateTime, Utc};
use unicode_width::UnicodeWidthChar;

/// `1 match`, `2 matches`: a count with its noun in the right number.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `1.5 MB`, `820 KB`, `12 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `5s`, `3m`, `2h`, `4d` (rounded down).
pub fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `4m12s` for countdowns.
pub fn countdown(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `11-23 07:00`.
pub fn short_time(t: DateTime<Utc>) -> String {
    t.format("%m-%d %H:%M").to_string()
}

/// A one-line sparkline of `values` using block characters.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
        return String::new();
    };
    values
        .iter()
        .map(|v| {
            if max == min {
                BARS[3]
            } else {
                BARS[((v - min) * 7 / (max - min)) as usize]
            }
        })
        .collect()
}

/// A text gauge `■■■□□` of `done` out of `total` cells.
pub fn gauge(done: usize, total: usize) -> String {
    (0..total)
        .map(|i| if i < done { '■' } else { '□' })
        .collect()
}

/// Word-wraps `text` at `width` display columns; lines after the first start with `indent`
/// spaces. A word longer than a line is cut.
pub fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let width = width.max(1);
    let indent = if indent < width { indent } else { 0 };
    let mut out = Vec::new();
    let mut line = String::new();
    // The line's width, and whether it holds more than its indent.
    let (mut w, mut content) = (0usize, false);
    let newline = |out: &mut Vec<String>, line: &mut String, w: &mut usize, c: &mut bool| {
        out.push(std::mem::replace(line, " ".repeat(indent)));
        (*w, *c) = (indent, false);
    };
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            let ww: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
            if content && w + 1 + ww > width {
                newline(&mut out, &mut line, &mut w, &mut content);
            } else if w < width {
                line.push(' ');
                w += 1;
            }
        }
        for c in word.chars() {
            let cw = c.width().unwrap_or(0);
            if content && w + cw > width {
                newline(&mut out, &mut line, &mut w, &mut content);
            }
            line.push(c);
            w += cw;
            content = true;
        }
    }
    out.push(line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(count(1, "match", "matches"), "1 match");
        assert_eq!(count(0, "match", "matches"), "0 matches");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(span(chrono::Duration::seconds(7300)), "2h");
        assert_eq!(countdown(chrono::Duration::seconds(252)), "4m12s");
        assert_eq!(sparkline(&[1, 5, 9]), "▁▄█");
        assert_eq!(sparkline(&[3, 3]), "▄▄");
        assert_eq!(gauge(2, 4), "■■□□");
    }

    #[test]
    fn wrap_keeps_words_and_indents_the_rest() {
        assert_eq!(
            wrap("the engine did not answer at all", 12, 2),
            ["the engine", "  did not", "  answer at", "  all"]
        );
        assert_eq!(wrap("abcdefghij", 4, 0), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 10, 2), [""]);
        // Wide characters count double.
        assert_eq!(wrap("日本語 ok", 6, 0), ["日本語", "ok"]);
        // Never a panic at width 0 or an indent wider than the line.
        assert_eq!(wrap("ab", 0, 5).concat(), "ab");
    }
}
