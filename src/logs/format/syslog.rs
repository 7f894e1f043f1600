//! Syslog's `<PRI>`: facility × 8 + severity (RFC 3164 and RFC 5424 alike).

use super::level::Level;

/// The level a `<PRI>` value encodes.
pub fn pri_level(pri: &str) -> Option<Level> {
    let p: u64 = pri.parse().ok()?;
    (p <= 191).then(|| Level::from_syslog(p % 8)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_decoded() {
        assert_eq!(pri_level("165"), Some(Level::Notice)); // local4.notice
        assert_eq!(pri_level("11"), Some(Level::Error)); // user.err
        assert_eq!(pri_level("0"), Some(Level::Fatal)); // kern.emerg
        assert_eq!(pri_level("191"), Some(Level::Debug));
        assert_eq!(pri_level("192"), None);
    }
}
