//! Whole-file search with ripgrep's own crates (grep-regex's matcher, grep-searcher over a
//! memory map): counts the lines matching a regex, keeps the first [`KEEP`] of them with
//! their line number and byte offset (so any of them can be opened in the file, however far
//! outside the ring buffer), reports progress and new matches, and can be cancelled. The map
//! is searched in slices of [`SLICE`] bytes cut at line ends, so cancelling and progress
//! never wait for the whole file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};

/// Matches kept with their text for the match list; the count covers all of them.
pub const KEEP: usize = 100_000;
/// Bytes of a match's line kept for the list.
const TEXT_CAP: usize = 512;
/// Bytes searched between two checks of the cancel flag.
const SLICE: usize = 64 << 20;

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line's start in the file.
    pub offset: u64,
    /// The line (invalid UTF-8 replaced, capped).
    pub text: String,
}

/// What a search found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchResult {
    /// Lines that match (each line counted once, as `rg -c` does).
    pub matches: u64,
    /// The first [`KEEP`] of them.
    pub hits: Vec<Hit>,
    pub bytes: u64,
    pub cancelled: bool,
}

/// A matcher with smart case (case-insensitive unless the pattern has upper case), as
/// ripgrep's `-S`.
pub fn matcher(pattern: &str) -> Result<RegexMatcher, grep_regex::Error> {
    RegexMatcherBuilder::new().case_smart(true).build(pattern)
}

struct Collect<'a> {
    res: &'a mut SearchResult,
    /// Offset and line number of the slice's start.
    base_offset: u64,
    base_line: u64,
}

impl Sink for Collect<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> Result<bool, std::io::Error> {
        self.res.matches += 1;
        if self.res.hits.len() < KEEP {
            let bytes = m.bytes();
            let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            let mut text =
                String::from_utf8_lossy(&bytes[..bytes.len().min(TEXT_CAP)]).into_owned();
            if bytes.len() > TEXT_CAP {
                text.push('…');
            }
            self.res.hits.push(Hit {
                line: self.base_line + m.line_number().unwrap_or(0),
                offset: self.base_offset + m.absolute_byte_offset(),
                text,
            });
        }
        Ok(true)
    }
}

/// Searches `path`. `progress(result so far, total bytes)` is called after each slice; new
/// hits are those past the length it saw last time.
pub fn search_file(
    path: &Path,
    matcher: &RegexMatcher,
    cancel: &AtomicBool,
    mut progress: impl FnMut(&SearchResult, u64),
) -> std::io::Result<SearchResult> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut res = SearchResult::default();
    let total = meta.len();
    if total == 0 {
        return Ok(res);
    }
    // SAFETY: the map is read only; a log file truncated under us can raise SIGBUS, the same
    // risk ripgrep takes with --mmap (opsdeck only searches files it was asked to search).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let _ = map.advise(memmap2::Advice::Sequential);
    let mut numbered = SearcherBuilder::new()
        .line_number(true)
        .binary_detection(BinaryDetection::none())
        .build();
    // Once KEEP hits are kept, line numbers are not needed: counting is all that is left.
    let mut counting = SearcherBuilder::new()
        .line_number(false)
        .binary_detection(BinaryDetection::none())
        .build();
    let mut start = 0usize;
    let mut line = 0u64;
    while start < map.len() {
        if cancel.load(Ordering::Relaxed) {
            res.cancelled = true;
            return Ok(res);
        }
        let end = if map.len() - start <= SLICE {
            map.len()
        } else {
            memchr::memrchr(b'\n', &map[start..start + SLICE])
                .map_or(map.len().min(start + SLICE), |i| start + i + 1)
        };
        let slice = &map[start..end];
        let keep = res.hits.len() < KEEP;
        let searcher = if keep { &mut numbered } else { &mut counting };
        searcher.search_slice(
            matcher,
            slice,
            Collect {
                res: &mut res,
                base_offset: start as u64,
                base_line: line,
            },
        )?;
        if keep {
            line += memchr::memchr_iter(b'\n', slice).count() as u64;
        }
        res.bytes = end as u64;
        start = end;
        progress(&res, total);
    }
    Ok(res)
}

/// Lines around a byte offset of a file, for opening a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The lines, decoded (invalid UTF-8 replaced, capped as the tab caps lines).
    pub lines: Vec<String>,
    /// Which of them holds the offset.
    pub at: usize,
}

/// Reads up to `around` lines before and after the line starting at `offset`.
pub fn read_context(path: &Path, offset: u64, around: usize) -> std::io::Result<Context> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let offset = offset.min(len);
    // Enough bytes for ordinary lines; very long lines just give fewer lines of context.
    let span = (around as u64 + 1) * 1024;
    let from = offset.saturating_sub(span);
    let to = (offset + span).min(len);
    f.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0; (to - from) as usize];
    f.read_exact(&mut buf)?;
    let at_rel = (offset - from) as usize;
    let before: Vec<&[u8]> = {
        let head = &buf[..at_rel];
        let head = head.strip_suffix(b"\n").unwrap_or(head);
        let mut v: Vec<&[u8]> = head.rsplit(|&b| b == b'\n').take(around).collect();
        // The first piece may be a cut line, unless the read started at the file's start.
        if from > 0 && v.len() == head.split(|&b| b == b'\n').count() {
            v.pop();
        }
        if at_rel == 0 {
            v.clear();
        }
        v.reverse();
        v
    };
    let after: Vec<&[u8]> = buf[at_rel..]
        .split(|&b| b == b'\n')
        .take(around + 1)
        .collect();
    let decode = |l: &&[u8]| super::line::decode(l).0;
    let mut lines: Vec<String> = before.iter().map(decode).collect();
    let at = lines.len();
    lines.extend(after.iter().map(decode));
    if lines.last().is_some_and(String::is_empty) && lines.len() > at + 1 {
        lines.pop();
    }
    Ok(Context { lines, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_hits_agree_with_grep() {
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
        let offsets: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        for (pattern, grep_flags) in [
            ("ERROR", vec!["-c"]),
            ("user42 took 9\\d\\dms", vec!["-c", "-E"]),
            ("warn", vec!["-c", "-i"]),
            ("nothing-here", vec!["-c"]),
        ] {
            let m = matcher(pattern).unwrap();
            let got = search_file(&p, &m, &AtomicBool::new(false), |_, _| {}).unwrap();
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
            for h in got.hits.iter().take(50) {
                let n = h.line as usize;
                assert_eq!(
                    text.lines().nth(n - 1).unwrap(),
                    h.text,
                    "{pattern}: line {n}"
                );
                assert_eq!(offsets[n - 1] as u64, h.offset, "{pattern}: offset of {n}");
            }
        }
        let cancel = AtomicBool::new(true);
        assert!(
            search_file(&p, &matcher("x").unwrap(), &cancel, |_, _| {})
                .unwrap()
                .cancelled
        );
    }

    #[test]
    fn context_around_a_far_match() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let text: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        let m = matcher("^line 500$").unwrap();
        let hit = search_file(&p, &m, &AtomicBool::new(false), |_, _| {})
            .unwrap()
            .hits
            .remove(0);
        assert_eq!(hit.line, 500);
        let c = read_context(&p, hit.offset, 3).unwrap();
        assert_eq!(
            c.lines,
            [
                "line 497", "line 498", "line 499", "line 500", "line 501", "line 502", "line 503"
            ]
        );
        assert_eq!(c.at, 3);
        let c = read_context(&p, 0, 2).unwrap();
        assert_eq!((c.lines.len(), c.at, c.lines[0].as_str()), (3, 0, "line 1"));
        let last = text.len() as u64 - "line 1000\n".len() as u64;
        let c = read_context(&p, last, 2).unwrap();
        assert_eq!(c.lines, ["line 998", "line 999", "line 1000"]);
    }
}
