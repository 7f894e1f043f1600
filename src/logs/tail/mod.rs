//! `Tail`: follows one log file the way `tail -F` does. The last lines are read from the end
//! (a 1 GiB file costs a few reads), then new data as it is written. Rotation (renamed and
//! recreated: reopen by name), truncation (start again from the top), a file that does not
//! exist yet, a glob whose newest match changes, and a last line still being written are all
//! handled.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::line::{LogLine, looks_binary};
use super::multiline::Parser;

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailEvent {
    Lines(Vec<LogLine>),
    /// Something the user should know: rotated, truncated, missing, binary.
    Note(String),
}

/// Most bytes read per poll, so one poll never holds the thread for long.
const READ_BUDGET: usize = 8 << 20;
const CHUNK: usize = 64 * 1024;

/// A followed file.
pub struct Tail {
    spec: String,
    path: Option<PathBuf>,
    file: Option<File>,
    ino: u64,
    offset: u64,
    partial: Vec<u8>,
    /// The last bytes read before `offset`: if they change, the file was truncated and
    /// rewritten past our offset between two polls (which a size check cannot see).
    sig: Vec<u8>,
    missing_reported: bool,
    binary_reported: bool,
    /// Reported that the path is not a regular file (a FIFO, a device): never opened, since
    /// opening a FIFO blocks until a writer comes and reading it never ends.
    special_reported: bool,
    /// Format detection and multi-line state of this source.
    pub parser: Parser,
}

/// True when `p` exists and is not a regular file (FIFO, socket, device, directory).
fn is_special(p: &std::path::Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.file_type().is_file())
}

/// The file a spec names: itself, or the newest match of a glob.
pub fn resolve(spec: &str) -> Option<PathBuf> {
    if !spec.contains(['*', '?', '[']) {
        return Some(PathBuf::from(spec));
    }
    glob::glob(spec)
        .ok()?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

impl Tail {
    /// Opens `spec` (a path or a glob) and returns its last `last_lines` lines.
    pub fn open(spec: &str, last_lines: usize) -> (Tail, Vec<TailEvent>) {
        let mut t = Tail {
            spec: spec.to_string(),
            path: None,
            file: None,
            ino: 0,
            offset: 0,
            partial: Vec::new(),
            sig: Vec::new(),
            missing_reported: false,
            binary_reported: false,
            special_reported: false,
            parser: Parser::default(),
        };
        let mut events = Vec::new();
        if let Some(p) = resolve(spec).filter(|p| is_special(p)) {
            events.push(TailEvent::Note(special_note(&p)));
            t.special_reported = true;
            return (t, events);
        }
        match resolve(spec).and_then(|p| File::open(&p).ok().map(|f| (p, f))) {
            Some((p, mut f)) => {
                let meta = f.metadata().ok();
                let len = meta.as_ref().map_or(0, |m| m.len());
                t.ino = meta.map_or(0, |m| m.ino());
                let (lines, _) = read_last_lines(&mut f, len, last_lines);
                if lines.first().is_some_and(|l| looks_binary(l)) {
                    events.push(TailEvent::Note(format!(
                        "{} looks binary; not shown",
                        p.display()
                    )));
                    t.binary_reported = true;
                } else {
                    events.push(TailEvent::Lines(t.parser.parse_batch(&lines)));
                }
                t.offset = len;
                t.sig = read_sig(&mut f, len);
                t.path = Some(p);
                t.file = Some(f);
            }
            None => {
                events.push(TailEvent::Note(format!(
                    "{spec} does not exist yet; waiting for it"
                )));
                t.missing_reported = true;
            }
        }
        (t, events)
    }

    /// The file being followed.
    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// Reads whatever was written since the last poll.
    pub fn poll(&mut self) -> Vec<TailEvent> {
        let mut events = Vec::new();
        let now = resolve(&self.spec);
        if let Some(p) = now.as_ref().filter(|p| is_special(p)) {
            if !self.special_reported {
                events.push(TailEvent::Note(special_note(p)));
                self.special_reported = true;
            }
            return events;
        }
        self.special_reported = false;
        let meta = now.as_ref().and_then(|p| std::fs::metadata(p).ok());
        let rewritten = !self.sig_matches();
        match (self.file.is_some().then_some(()), meta) {
            (None, Some(m)) => {
                // The file appeared.
                if let Some(p) = now.clone()
                    && let Ok(f) = File::open(&p)
                {
                    events.push(TailEvent::Note(format!("{} appeared", p.display())));
                    self.switch(p, f, m.ino());
                }
            }
            (None, None) => return events,
            (Some(_), Some(m)) if m.ino() != self.ino || now.as_ref() != self.path.as_ref() => {
                // Rotated (or a newer glob match): finish the old file, then follow the new one.
                self.read_new(&mut events);
                if let Some(p) = now.clone()
                    && let Ok(f) = File::open(&p)
                {
                    events.push(TailEvent::Note(format!(
                        "{} was rotated; following the new file",
                        p.display()
                    )));
                    self.flush_partial(&mut events);
                    self.switch(p, f, m.ino());
                }
            }
            (Some(_), Some(m)) if m.len() < self.offset || rewritten => {
                events.push(TailEvent::Note(
                    "the file was truncated; reading from the top".into(),
                ));
                self.offset = 0;
                self.partial.clear();
                self.sig.clear();
            }
            (Some(_), None) => {
                // Renamed away and not recreated yet: finish what was written, keep waiting.
                self.read_new(&mut events);
                if !self.missing_reported {
                    events.push(TailEvent::Note(format!(
                        "{} is gone; waiting for it to come back",
                        self.spec
                    )));
                    self.missing_reported = true;
                }
                self.file = None;
                self.ino = 0;
                return events;
            }
            _ => {}
        }
        self.read_new(&mut events);
        events
    }

    fn switch(&mut self, p: PathBuf, f: File, ino: u64) {
        self.path = Some(p);
        self.file = Some(f);
        self.ino = ino;
        self.offset = 0;
        self.partial.clear();
        self.sig.clear();
        self.missing_reported = false;
        self.binary_reported = false;
    }

    fn flush_partial(&mut self, events: &mut Vec<TailEvent>) {
        if !self.partial.is_empty() {
            let partial = std::mem::take(&mut self.partial);
            events.push(TailEvent::Lines(self.parser.parse_batch(&[partial])));
        }
    }

    fn read_new(&mut self, events: &mut Vec<TailEvent>) {
        let Some(f) = self.file.as_mut() else { return };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = vec![0; CHUNK];
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut budget = READ_BUDGET;
        while budget > 0 {
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            budget = budget.saturating_sub(n);
            self.offset += n as u64;
            let data = &buf[..n];
            if !self.binary_reported
                && self.partial.is_empty()
                && lines.is_empty()
                && looks_binary(data)
            {
                self.binary_reported = true;
                events.push(TailEvent::Note("the file looks binary; not shown".into()));
            }
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', data) {
                if self.partial.is_empty() {
                    lines.push(data[start..nl].to_vec());
                } else {
                    self.partial.extend_from_slice(&data[start..nl]);
                    lines.push(std::mem::take(&mut self.partial));
                }
                start = nl + 1;
            }
            // Keep at most one long line's worth of an unfinished line.
            if self.partial.len() < 2 * super::line::MAX_LINE {
                let room = 2 * super::line::MAX_LINE - self.partial.len();
                self.partial
                    .extend_from_slice(&data[start..][..(n - start).min(room)]);
            }
        }
        if !lines.is_empty() && !self.binary_reported {
            events.push(TailEvent::Lines(self.parser.parse_batch(&lines)));
        }
        if let Some(f) = self.file.as_mut() {
            self.sig = read_sig(f, self.offset);
        }
    }

    fn sig_matches(&mut self) -> bool {
        let (offset, sig) = (self.offset, self.sig.clone());
        match self.file.as_mut() {
            Some(f) if !sig.is_empty() => read_sig(f, offset) == sig,
            _ => true,
        }
    }
}

fn special_note(p: &std::path::Path) -> String {
    format!("{} {}; not followed", p.display(), not_a_file(p))
}

/// What a path that is no regular file is: "is a directory (name a file in it, or a glob such
/// as dir/*.log)", or "is not a regular file (a FIFO or device)".
pub fn not_a_file(p: &std::path::Path) -> &'static str {
    if p.is_dir() {
        "is a directory (name a file in it, or a glob such as dir/*.log)"
    } else {
        "is not a regular file (a FIFO or device)"
    }
}

/// Up to 64 bytes just before `offset`.
fn read_sig(f: &mut File, offset: u64) -> Vec<u8> {
    let n = offset.min(64);
    let mut buf = vec![0; n as usize];
    if f.seek(SeekFrom::Start(offset - n)).is_err() || f.read_exact(&mut buf).is_err() {
        return Vec::new();
    }
    buf
}

/// The last `n` lines of a file of length `len`, read backwards in chunks. Returns the lines
/// (without newlines) and the offset the first of them starts at.
pub fn read_last_lines(f: &mut File, len: u64, n: usize) -> (Vec<Vec<u8>>, u64) {
    let mut pos = len;
    let mut tail: Vec<u8> = Vec::new();
    let mut newlines = 0;
    // A final newline ends the last line; it does not start an empty one.
    let mut skip_final = true;
    while pos > 0 && newlines <= n {
        let step = CHUNK.min(pos as usize);
        pos -= step as u64;
        let mut chunk = vec![0; step];
        if f.seek(SeekFrom::Start(pos)).is_err() || f.read_exact(&mut chunk).is_err() {
            break;
        }
        let mut count = memchr::memchr_iter(b'\n', &chunk).count();
        if skip_final && chunk.last() == Some(&b'\n') {
            count -= 1;
        }
        skip_final = false;
        newlines += count;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        if tail.len() > 64 << 20 {
            break; // a pathological file of huge lines: enough is enough
        }
    }
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let mut lines: Vec<Vec<u8>> = body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.len() > n {
        lines.drain(..lines.len() - n);
    }
    if tail.is_empty() {
        lines.clear();
    }
    (lines, pos)
}

#[cfg(test)]
mod tests;
