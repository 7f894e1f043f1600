//! Bounds on one export attempt: a largest body, a deadline, a minimum transfer rate. An
//! endless or dripping server then costs one failed attempt, not a full disk or a stuck job.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::{Config, MinRate};

/// The limits of every attempt.
#[derive(Debug, Clone, Copy)]
pub struct DownloadLimits {
    pub max_bytes: u64,
    pub attempt_timeout: Duration,
    pub min_rate: MinRate,
}

impl DownloadLimits {
    pub fn from_config(cfg: &Config) -> Self {
        DownloadLimits {
            max_bytes: cfg.export.max_bytes,
            attempt_timeout: cfg.export.attempt_timeout,
            min_rate: cfg.export.min_rate,
        }
    }
}

impl Default for DownloadLimits {
    fn default() -> Self {
        DownloadLimits {
            max_bytes: crate::config::limits::DEFAULT_MAX_BYTES,
            attempt_timeout: Duration::from_secs(1800),
            min_rate: MinRate::default(),
        }
    }
}

/// Measures a download in windows of `min_rate.per`: each window must bring
/// `min_rate.bytes`, whether chunks arrive or not (the caller waits at most `remaining()`).
pub struct RateGuard {
    rate: MinRate,
    window_start: Instant,
    window_bytes: u64,
}

impl RateGuard {
    pub fn new(rate: MinRate) -> Self {
        RateGuard {
            rate,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// How long the caller may wait for the next chunk before the window must be judged.
    pub fn remaining(&self) -> Duration {
        self.rate.per.saturating_sub(self.window_start.elapsed())
    }

    /// Counts `n` bytes; at the end of a window, `Err` with the bytes it brought when they
    /// were fewer than required.
    pub fn add(&mut self, n: u64) -> Result<(), u64> {
        self.window_bytes += n;
        if self.window_start.elapsed() < self.rate.per {
            return Ok(());
        }
        if self.window_bytes < self.rate.bytes {
            return Err(self.window_bytes);
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Drops a UTF-8 byte order mark at the start of the body: it would otherwise stay in the
/// first header name (`\u{feff}allure_id`). `None`: too short to tell yet, feed more.
pub fn strip_bom(first: Bytes) -> Option<Bytes> {
    if first.starts_with(BOM) {
        Some(first.slice(BOM.len()..))
    } else if first.len() < BOM.len() && BOM.starts_with(&first) {
        None
    } else {
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_is_stripped_even_when_split() {
        assert_eq!(
            strip_bom(Bytes::from_static(b"\xEF\xBB\xBFa;b")).unwrap(),
            "a;b"
        );
        assert_eq!(strip_bom(Bytes::from_static(b"a;b")).unwrap(), "a;b");
        assert!(strip_bom(Bytes::from_static(b"\xEF\xBB")).is_none());
    }

    #[test]
    fn a_window_without_enough_bytes_fails() {
        let mut g = RateGuard::new(MinRate {
            bytes: 100,
            per: Duration::ZERO,
        });
        assert_eq!(g.add(10), Err(10));
        let mut g = RateGuard::new(MinRate {
            bytes: 100,
            per: Duration::ZERO,
        });
        assert_eq!(g.add(100), Ok(()));
    }
}
