//! Whole-file search in the background: counts the lines matching a regex and keeps the first
//! of them, reading large chunks and letting the regex engine (literal prefilters, SIMD) skip
//! ahead, with progress reports and cancellation. Lines the ring buffer no longer holds are
//! found too.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use regex::bytes::Regex;

/// Matching lines kept for display; the count covers all of them.
pub const KEEP: usize = 10_000;
const CHUNK: usize = 4 << 20;

/// What a search found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchResult {
    /// Lines that match (each line counted once, as `grep -c` does).
    pub matches: u64,
    /// The first `KEEP` of them: 1-based line number and text.
    pub lines: Vec<(u64, String)>,
    pub bytes: u64,
    pub cancelled: bool,
}

/// A bytes regex with smart case (case-insensitive unless the pattern has upper case).
pub fn smart_bytes_regex(pattern: &str) -> Result<Regex, regex::Error> {
    let insensitive = !pattern.chars().any(char::is_uppercase);
    regex::bytes::RegexBuilder::new(pattern)
        .case_insensitive(insensitive)
        .build()
}

/// Searches `path`; `progress(bytes_done, total, matches)` is called after each chunk.
pub fn search_file(
    path: &Path,
    re: &Regex,
    cancel: &AtomicBool,
    mut progress: impl FnMut(u64, u64, u64),
) -> std::io::Result<SearchResult> {
    let mut f = std::fs::File::open(path)?;
    let total = f.metadata()?.len();
    let mut res = SearchResult::default();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 64 * 1024);
    let mut line_no: u64 = 0; // lines before `buf`
    loop {
        if cancel.load(Ordering::Relaxed) {
            res.cancelled = true;
            return Ok(res);
        }
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        let n = f.read(&mut buf[start..])?;
        buf.truncate(start + n);
        let eof = n == 0;
        // Search whole lines only; the unfinished tail waits for the next chunk.
        let end = if eof {
            buf.len()
        } else {
            memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1)
        };
        let body = &buf[..end];
        let mut pos = 0;
        let mut counted_to = 0;
        while pos < body.len() {
            let Some(m) = re.find_at(body, pos) else {
                break;
            };
            let line_start = memchr::memrchr(b'\n', &body[..m.start()]).map_or(0, |i| i + 1);
            let line_end =
                memchr::memchr(b'\n', &body[m.start()..]).map_or(body.len(), |i| m.start() + i);
            res.matches += 1;
            if res.lines.len() < KEEP {
                line_no += memchr::memchr_iter(b'\n', &body[counted_to..line_start]).count() as u64;
                counted_to = line_start;
                res.lines.push((
                    line_no + 1,
                    String::from_utf8_lossy(&body[line_start..line_end]).into_owned(),
                ));
            }
            pos = line_end + 1;
        }
        if res.lines.len() < KEEP {
            line_no += memchr::memchr_iter(b'\n', &body[counted_to..]).count() as u64;
        }
        res.bytes += end as u64;
        buf.drain(..end);
        progress(res.bytes, total, res.matches);
        if eof {
            return Ok(res);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lines_agree_with_grep() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.log");
        let mut text = String::new();
        for i in 0..200_000 {
            let level = ["INFO", "WARN", "ERROR", "DEBUG"][i % 4];
            text.push_str(&format!(
                "2026-11-23T10:{:02}:{:02}Z {level} request {i} user{} took {}ms\n",
                i / 60 % 60,
                i % 60,
                i % 97,
                i % 1000
            ));
        }
        std::fs::write(&p, &text).unwrap();
        for (pattern, grep_flags) in [
            ("ERROR", vec!["-c"]),
            ("user42 took 9\\d\\dms", vec!["-c", "-E"]),
            ("warn", vec!["-c", "-i"]),
            ("nothing-here", vec!["-c"]),
        ] {
            let re = smart_bytes_regex(pattern).unwrap();
            let got = search_file(&p, &re, &AtomicBool::new(false), |_, _, _| {}).unwrap();
            let grep = std::process::Command::new("grep")
                .args(&grep_flags)
                .arg(pattern.replace("\\d", "[0-9]"))
                .arg(&p)
                .output()
                .unwrap();
            let expected: u64 = String::from_utf8_lossy(&grep.stdout)
                .trim()
                .parse()
                .unwrap();
            assert_eq!(got.matches, expected, "{pattern}");
            for (n, line) in got.lines.iter().take(50) {
                assert_eq!(
                    text.lines().nth(*n as usize - 1).unwrap(),
                    line,
                    "{pattern}: line {n}"
                );
            }
        }
        let cancel = AtomicBool::new(true);
        assert!(
            search_file(&p, &smart_bytes_regex("x").unwrap(), &cancel, |_, _, _| {})
                .unwrap()
                .cancelled
        );
    }
}
