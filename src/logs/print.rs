//! Headless output of log sources (`opsdeck logs --print`): whole messages (a head line and
//! its continuation lines), filtered by level, regex and age, printed as text or one JSON
//! object per message, or only counted; `--follow` goes on like `tail -F`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;

use super::LogLine;
use super::format::Level;
use super::multiline::Parser;
use super::tail::{Tail, TailEvent};

/// What to print.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub json: bool,
    /// Messages at least this severe.
    pub level: Option<Level>,
    /// Messages with a line matching this.
    pub grep: Option<Regex>,
    pub count: bool,
    /// Messages at or after this time (an untimed message has its source's last time).
    pub since: Option<DateTime<Utc>>,
    pub follow: bool,
}

/// A source to print: a name and a path (`-` is standard input).
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub path: String,
}

/// One message: a head line and its continuation lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub source: String,
    pub ts: Option<DateTime<Utc>>,
    pub level: Option<Level>,
    pub format: &'static str,
    pub lines: Vec<String>,
}

impl Message {
    /// The whole message, its lines joined by newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The `--json` object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "source": self.source,
            "ts": self.ts.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            "level": self.level.map(Level::name),
            "format": self.format,
            "text": self.text(),
        })
    }
}

/// Collects one source's parsed lines into messages, and filters and writes them.
struct Assembler<'a> {
    source: String,
    /// Prefix plain lines with the source's name (several sources).
    tag: bool,
    opts: &'a Options,
    pending: Option<Message>,
    /// The last time seen in the source, for untimed messages under `--since`.
    last_ts: Option<DateTime<Utc>>,
}

impl Assembler<'_> {
    fn push(
        &mut self,
        lines: Vec<LogLine>,
        format: &'static str,
        out: &mut dyn Write,
        count: &mut u64,
    ) -> std::io::Result<()> {
        for l in lines {
            match self.pending.as_mut() {
                Some(m) if l.cont => m.lines.push(l.text),
                _ => {
                    self.flush(out, count)?;
                    self.last_ts = l.ts.or(self.last_ts);
                    self.pending = Some(Message {
                        source: self.source.clone(),
                        ts: l.ts,
                        level: l.level,
                        format,
                        lines: vec![l.text],
                    });
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut dyn Write, count: &mut u64) -> std::io::Result<()> {
        let Some(m) = self.pending.take() else {
            return Ok(());
        };
        let o = self.opts;
        if let Some(min) = o.level
            && m.level.is_none_or(|l| l > min)
        {
            return Ok(());
        }
        if let Some(since) = o.since
            && m.ts.or(self.last_ts).is_none_or(|t| t < since)
        {
            return Ok(());
        }
        if let Some(re) = &o.grep
            && !m.lines.iter().any(|l| re.is_match(l))
        {
            return Ok(());
        }
        *count += 1;
        if o.count {
            return Ok(());
        }
        if o.json {
            writeln!(out, "{}", m.json())
        } else if self.tag {
            for l in &m.lines {
                writeln!(out, "{} | {l}", m.source)?;
            }
            Ok(())
        } else {
            writeln!(out, "{}", m.text())
        }
    }
}

/// Lines parsed per batch while reading a file.
const BATCH: usize = 4096;

/// Reads `r` to its end through `parser` into `asm`.
fn read_all(
    r: &mut dyn BufRead,
    parser: &mut Parser,
    asm: &mut Assembler,
    out: &mut dyn Write,
    count: &mut u64,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf)?;
        if n > 0 {
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            batch.push(line.to_vec());
        }
        if batch.len() >= BATCH || (n == 0 && !batch.is_empty()) {
            let lines = parser.parse_batch(&batch);
            asm.push(lines, parser.format_name(), out, count)?;
            batch.clear();
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        if n == 0 {
            return Ok(());
        }
    }
}

/// A followed source.
enum Feed {
    Tail(Box<Tail>),
    Stdin(std::sync::mpsc::Receiver<Vec<u8>>, Parser),
}

impl Feed {
    /// What arrived since the last poll, and the source's format.
    fn poll(&mut self) -> (Vec<TailEvent>, &'static str) {
        match self {
            Feed::Tail(t) => {
                let events = t.poll();
                (events, t.parser.format_name())
            }
            Feed::Stdin(rx, parser) => {
                let raw: Vec<Vec<u8>> = rx.try_iter().collect();
                let events = if raw.is_empty() {
                    vec![]
                } else {
                    vec![TailEvent::Lines(parser.parse_batch(&raw))]
                };
                (events, parser.format_name())
            }
        }
    }
}

/// Standard input's lines, read by a thread of their own.
fn stdin_lines() -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut r = stdin.lock();
        let mut buf = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf).to_vec();
            if tx.send(line).is_err() {
                break;
            }
            buf.clear();
        }
    });
    rx
}

/// True when `path` exists and is not a regular file (a FIFO would block the reader).
fn special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file())
}

/// What `run` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Printed {
    /// Messages that passed the filters.
    pub messages: u64,
    /// Sources that could not be read (missing, not a regular file, no permission); `cat`
    /// prints the others and fails, and so does `--print` without `--follow`.
    pub unreadable: usize,
}

/// Prints `sources` to `out`; problems with single sources go to `err` and the others are
/// still printed. With `follow`, runs until `stop` is set.
pub fn run(
    sources: &[Source],
    opts: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stop: &AtomicBool,
) -> std::io::Result<Printed> {
    let mut count = 0;
    let mut unreadable = 0;
    let tag = sources.len() > 1;
    let mut followed: Vec<(Feed, Assembler)> = Vec::new();
    for s in sources {
        let mut asm = Assembler {
            source: s.name.clone(),
            tag,
            opts,
            pending: None,
            last_ts: None,
        };
        let mut parser = Parser::default();
        if s.path == "-" {
            // Standard input is read on its own thread: a pipe that stays open never stalls
            // the other sources, nor the stop flag.
            let rx = stdin_lines();
            if opts.follow {
                followed.push((Feed::Stdin(rx, parser), asm));
            } else {
                let lines: Vec<Vec<u8>> = rx.iter().collect();
                for chunk in lines.chunks(BATCH) {
                    let parsed = parser.parse_batch(chunk);
                    asm.push(parsed, parser.format_name(), out, &mut count)?;
                }
                asm.flush(out, &mut count)?;
            }
            continue;
        }
        let Some(path) = super::tail::resolve(&s.path) else {
            writeln!(err, "warning: {}: no file matches", s.path)?;
            unreadable += 1;
            continue;
        };
        if special(&path) {
            writeln!(
                err,
                "warning: {} {}; not read",
                path.display(),
                super::tail::not_a_file(&path)
            )?;
            unreadable += 1;
            continue;
        }
        // Following: the tail starts where the file ends now; what is before is read first.
        let tail = opts.follow.then(|| Tail::open(&s.path, 0).0);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                writeln!(err, "warning: {}: {e}", path.display())?;
                unreadable += 1;
                continue;
            }
        };
        let len = file.metadata().map_or(u64::MAX, |m| m.len());
        let mut r = std::io::BufReader::with_capacity(1 << 20, std::io::Read::take(file, len));
        read_all(&mut r, &mut parser, &mut asm, out, &mut count, stop)?;
        match tail {
            Some(mut t) => {
                t.parser = parser;
                followed.push((Feed::Tail(Box::new(t)), asm));
            }
            None => asm.flush(out, &mut count)?,
        }
    }
    if opts.count && !opts.follow {
        writeln!(out, "{count}")?;
    }
    out.flush()?;
    while opts.follow && !stop.load(Ordering::Relaxed) {
        for (feed, asm) in followed.iter_mut() {
            let mut quiet = true;
            let (events, format) = feed.poll();
            for ev in events {
                match ev {
                    TailEvent::Lines(lines) => {
                        quiet = false;
                        asm.push(lines, format, out, &mut count)?;
                    }
                    TailEvent::Note(n) => writeln!(err, "{}: {n}", asm.source)?,
                }
            }
            // Nothing new: the message being collected is complete as far as we can tell.
            if quiet {
                asm.flush(out, &mut count)?;
            }
        }
        out.flush()?;
        std::thread::sleep(super::service::POLL);
    }
    if opts.follow {
        for (_, asm) in followed.iter_mut() {
            asm.flush(out, &mut count)?;
        }
        if opts.count {
            writeln!(out, "{count}")?;
        }
        out.flush()?;
    }
    Ok(Printed {
        messages: count,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(text: &str, opts: Options) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, text).unwrap();
        let mut out = Vec::new();
        let src = [Source {
            name: "app".into(),
            path: p.display().to_string(),
        }];
        run(
            &src,
            &opts,
            &mut out,
            &mut Vec::new(),
            &AtomicBool::new(false),
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    const LOG: &str = "2026-11-23 10:00:00,001 INFO [main] c.e.Api - started\n\
        2026-11-23 10:00:01,123 ERROR [main] c.e.Api - request failed\n\
        java.lang.IllegalStateException: boom\n\
        \tat com.example.Api.handle(Api.java:42)\n\
        2026-11-23 10:00:02,000 WARN [main] c.e.Api - slow\n";

    #[test]
    fn json_messages_with_their_traces() {
        let out = print(
            LOG,
            Options {
                json: true,
                ..Default::default()
            },
        );
        let msgs: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            msgs[1],
            serde_json::json!({
                "source": "app",
                "ts": "2026-11-23T10:00:01.123Z",
                "level": "error",
                "format": "log4j",
                "text": "2026-11-23 10:00:01,123 ERROR [main] c.e.Api - request failed\n\
                    java.lang.IllegalStateException: boom\n\
                    \tat com.example.Api.handle(Api.java:42)",
            })
        );
    }

    #[test]
    fn level_grep_count_and_since() {
        let opts = |f: fn(&mut Options)| {
            let mut o = Options::default();
            f(&mut o);
            o
        };
        let out = print(LOG, opts(|o| o.level = Some(Level::Warn)));
        assert_eq!(out.lines().count(), 4, "{out}");
        assert!(out.contains("boom") && !out.contains("started"));
        let out = print(
            LOG,
            opts(|o| o.grep = Some(Regex::new("Api\\.java").unwrap())),
        );
        assert!(out.starts_with("2026-11-23 10:00:01,123 ERROR") && out.lines().count() == 3);
        let out = print(
            LOG,
            opts(|o| {
                o.count = true;
                o.level = Some(Level::Error);
            }),
        );
        assert_eq!(out, "1\n");
        let out = print(
            LOG,
            opts(|o| {
                o.since = Some("2026-11-23T10:00:01.5Z".parse().unwrap());
                o.count = true;
            }),
        );
        assert_eq!(out, "1\n");
    }
}
