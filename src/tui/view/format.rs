//! Small text formatting helpers for the views.

use chrono::{DateTime, Utc};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(span(chrono::Duration::seconds(7300)), "2h");
        assert_eq!(countdown(chrono::Duration::seconds(252)), "4m12s");
        assert_eq!(sparkline(&[1, 5, 9]), "▁▄█");
        assert_eq!(sparkline(&[3, 3]), "▄▄");
        assert_eq!(gauge(2, 4), "■■□□");
    }
}
