//! The Logs tab's derived rows (which lines the view shows, in which order), cached in two
//! layers, so that a filter toggle never reads the lines again.
//!
//! 1. **Every line, in order** (`all`): the selected source's lines, or with the merge on
//!    every source's, merged by time. It depends only on the merge, the selection, the
//!    sources' formats and the search pattern, so it is rebuilt only when one of those
//!    changes. Each row carries flags computed once per line (and per search): whether it
//!    heads a message, its message's level, whether its message matches the search. New
//!    lines are added incrementally: only the last message of a source (which may still
//!    grow) and the new lines are read, and in the merged view only the rows from the first
//!    new key on are merged again. Lines dropped from a full ring buffer (whole messages)
//!    leave the rows without a rebuild.
//! 2. **The shown rows** (`shown`): indexes into `all` of the rows the filters pass (the
//!    level, only matching, folding), one pass over the flags when a filter or `all`
//!    changes; none at all while no filter is on.
//!
//! The merge orders rows by (key, source, line). A line's key is the latest timestamp at or
//! before it in its source (including lines already dropped); lines before a source's first
//! timestamp take that timestamp; a source without any goes by arrival time. Keys never go
//! down within a source, so this order is the k-way merge of the sources, and merging new
//! rows into the tail gives exactly what a rebuild gives (a test checks both).

use std::sync::{Arc, Mutex};

use super::{LogsState, SourceView};
use crate::logs::{Level, LogLine};

/// One line in the merged order: its merge key, and packed into `id` its source (16 bits),
/// its line number counted since the source began (40 bits, so it survives lines dropped
/// from the front) and its flags (8 bits). Packed so that the filter pass reads 16 bytes a
/// row; the derived order is (key, source, line), since flags come last and (source, line)
/// is unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub key: i64,
    id: u64,
}

/// The row heads its message (folding keeps it).
const HEAD: u8 = 1;
/// The row's message matches the search.
const MATCH: u8 = 2;
/// Bits 2..6: the message's level, 0 for none, else `Level as u8 + 1` (same order).
const LEVEL_SHIFT: u8 = 2;

impl Row {
    fn new(key: i64, src: usize, abs: u64, flags: u8) -> Row {
        debug_assert!(src < 1 << 16 && abs < 1 << 40);
        Row {
            key,
            id: (src as u64) << 48 | abs << 8 | flags as u64,
        }
    }

    pub fn src(self) -> usize {
        (self.id >> 48) as usize
    }

    pub fn abs(self) -> u64 {
        (self.id >> 8) & ((1 << 40) - 1)
    }

    fn flags(self) -> u8 {
        self.id as u8
    }
}

/// The rows the view shows, as (source, index into its `lines`).
#[derive(Debug, Clone)]
pub struct Visible {
    all: Arc<Vec<Row>>,
    /// Indexes into `all` of the rows the filters pass; `None`: every row.
    shown: Option<Arc<Vec<u32>>>,
    /// Each source's `dropped`, to turn a line number into an index.
    bases: Vec<u64>,
}

impl Visible {
    pub fn len(&self) -> usize {
        self.shown.as_ref().map_or(self.all.len(), |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i` as (source, line index).
    pub fn get(&self, i: usize) -> (usize, usize) {
        let r = match &self.shown {
            Some(s) => self.all[s[i] as usize],
            None => self.all[i],
        };
        (r.src(), (r.abs() - self.bases[r.src()]) as usize)
    }

    /// Every row as (source, line index), in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (usize, usize)> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The rows as a vector (tests, saving).
    pub fn to_vec(&self) -> Vec<(usize, usize)> {
        self.iter().collect()
    }
}

/// What decides the order of every line and its flags: any change rebuilds `all`.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    merged: bool,
    /// The selected source; `None` while merged (the merge reads them all).
    sel: Option<usize>,
    pattern: Option<String>,
    sources: usize,
    epochs: Vec<u64>,
}

/// What decides which of `all` show: a change is one pass over the flags.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Filter {
    min_level: Option<Level>,
    /// Only matching messages (and a search to match).
    only_matching: bool,
    folded: bool,
}

impl Filter {
    fn of(logs: &LogsState) -> Filter {
        Filter {
            min_level: logs.min_level,
            only_matching: logs.only_matching && logs.regex.is_some(),
            folded: logs.folded,
        }
    }

    fn passes_all(self) -> bool {
        self.min_level.is_none() && !self.only_matching && !self.folded
    }

    /// Whether a row with these flags shows.
    fn passes(self, flags: u8) -> bool {
        let level = flags >> LEVEL_SHIFT;
        (self
            .min_level
            .is_none_or(|min| level != 0 && level <= min as u8 + 1))
            && (!self.only_matching || flags & MATCH != 0)
            && (!self.folded || flags & HEAD != 0)
    }
}

/// What the cache knows of one source.
#[derive(Debug, Clone, Default)]
struct Mark {
    /// `dropped` and `dropped + lines.len()` when last read.
    dropped: u64,
    end: u64,
    /// The line where the last message starts: it is read again when lines arrive, since
    /// continuation lines may join it (and change whether it matches).
    redo: u64,
    /// The key before line `redo`.
    key_before: Option<i64>,
    /// A line with a timestamp came before line `redo`.
    any_ts: bool,
    /// A line with a timestamp was read at all (or dropped): no key can change any more.
    all_ts: bool,
}

#[derive(Debug, Default)]
struct Inner {
    params: Option<Params>,
    marks: Vec<Mark>,
    all: Arc<Vec<Row>>,
    /// `all` changed since `shown` was computed.
    all_changed: bool,
    filter: Option<Filter>,
    shown: Option<Arc<Vec<u32>>>,
    rebuilds: u64,
    filter_passes: u64,
}

/// The cache; a clone starts empty (it is rebuilt on first use).
#[derive(Debug, Default)]
pub struct RowsCache(Mutex<Inner>);

impl Clone for RowsCache {
    fn clone(&self) -> Self {
        RowsCache::default()
    }
}

impl RowsCache {
    /// How many times every line was read from scratch (tests check that new lines, keys
    /// and filter toggles do not cause one).
    pub fn rebuilds(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).rebuilds
    }

    /// How many filter passes over the rows were made (tests check that moving does not
    /// cause one).
    pub fn filter_passes(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .filter_passes
    }

    /// The rows for `logs` now, brought up to date first.
    pub fn get(&self, logs: &LogsState) -> Visible {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let params = params_of(logs);
        if inner.params.as_ref() != Some(&params) || !inner.update(logs) {
            inner.rebuild(logs);
            inner.params = Some(params);
        }
        let filter = Filter::of(logs);
        if inner.all_changed || inner.filter != Some(filter) {
            inner.refilter(filter);
        }
        Visible {
            all: inner.all.clone(),
            shown: inner.shown.clone(),
            bases: logs.sources.iter().map(|s| s.dropped).collect(),
        }
    }
}

fn params_of(logs: &LogsState) -> Params {
    Params {
        merged: logs.merged,
        sel: (!logs.merged).then_some(logs.sel),
        pattern: logs.regex.as_ref().map(|r| r.as_str().to_string()),
        sources: logs.sources.len(),
        epochs: logs.sources.iter().map(|s| s.epoch).collect(),
    }
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// Which sources the view reads.
fn shown_sources(logs: &LogsState) -> std::ops::Range<usize> {
    if logs.merged {
        0..logs.sources.len()
    } else if logs.sel < logs.sources.len() {
        logs.sel..logs.sel + 1
    } else {
        0..0
    }
}

/// The flags of every line of a message (head line first): its level is the head's, and a
/// match on any of its lines counts.
fn message_flags<'a>(logs: &LogsState, mut msg: impl Iterator<Item = &'a LogLine>) -> u8 {
    let Some(head) = msg.next() else { return 0 };
    let level = head.level.map_or(0, |l| l as u8 + 1);
    let matched = logs
        .regex
        .as_ref()
        .is_some_and(|r| r.is_match(&head.text) || msg.any(|l| r.is_match(&l.text)));
    level << LEVEL_SHIFT | if matched { MATCH } else { 0 }
}

/// Reads source `s` from line `from` (a message head, counted since the source began) to
/// its end: its rows, and the new mark.
fn read_source(logs: &LogsState, s: usize, from: u64, mut mark: Mark) -> (Vec<Row>, Mark) {
    let src: &SourceView = &logs.sources[s];
    let lines = &src.lines;
    let start = from.saturating_sub(src.dropped) as usize;
    // Lines before the first timestamp go with it, not ahead of all (nor behind all, by
    // arrival time): only looked for while no timestamp was seen.
    let first_ts = if mark.any_ts || src.carry.is_some() {
        None
    } else {
        lines.iter().find_map(|l| l.ts).map(micros)
    };
    let mut key = match (mark.key_before, src.carry.map(micros)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut any_ts = mark.any_ts || src.carry.is_some();
    let key_of = |l: &LogLine, key: Option<i64>, any_ts: bool| -> i64 {
        let raw = match l.ts {
            Some(t) => micros(t),
            None if any_ts => key.unwrap_or(i64::MIN),
            None => first_ts.unwrap_or_else(|| micros(l.seen)),
        };
        key.map_or(raw, |k| k.max(raw))
    };
    let mut rows = Vec::with_capacity(lines.len() - start.min(lines.len()));
    let mut i = start;
    mark.redo = src.dropped + start as u64;
    mark.key_before = key;
    while i < lines.len() {
        let mut j = i + 1;
        while j < lines.len() && lines[j].cont {
            j += 1;
        }
        mark.redo = src.dropped + i as u64;
        mark.key_before = key;
        mark.any_ts = any_ts;
        let flags = message_flags(logs, lines.range(i..j));
        for (k, l) in lines.range(i..j).enumerate().map(|(n, l)| (i + n, l)) {
            let k_key = key_of(l, key, any_ts);
            key = Some(k_key);
            any_ts |= l.ts.is_some();
            let head = if k == i { HEAD } else { 0 };
            rows.push(Row::new(k_key, s, src.dropped + k as u64, flags | head));
        }
        i = j;
    }
    mark.all_ts = any_ts;
    mark.dropped = src.dropped;
    mark.end = src.dropped + lines.len() as u64;
    (rows, mark)
}

/// Merges lists each sorted by (key, source, line).
fn merge(lists: Vec<Vec<Row>>) -> Vec<Row> {
    let total = lists.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut pos = vec![0usize; lists.len()];
    for _ in 0..total {
        let next = (0..lists.len())
            .filter(|&l| pos[l] < lists[l].len())
            .min_by_key(|&l| lists[l][pos[l]])
            .unwrap_or(0);
        out.push(lists[next][pos[next]]);
        pos[next] += 1;
    }
    out
}

impl Inner {
    fn rebuild(&mut self, logs: &LogsState) {
        self.rebuilds += 1;
        self.all_changed = true;
        self.marks = vec![Mark::default(); logs.sources.len()];
        let mut lists = Vec::new();
        for s in shown_sources(logs) {
            let from = logs.sources[s].dropped;
            let (rows, mark) = read_source(logs, s, from, Mark::default());
            self.marks[s] = mark;
            lists.push(rows);
        }
        self.all = Arc::new(merge(lists));
    }

    /// One pass over the flags of every row.
    fn refilter(&mut self, filter: Filter) {
        self.all_changed = false;
        self.filter = Some(filter);
        if filter.passes_all() {
            self.shown = None;
            return;
        }
        self.filter_passes += 1;
        let shown = self
            .all
            .iter()
            .enumerate()
            .filter(|(_, r)| filter.passes(r.flags()))
            .map(|(i, _)| i as u32)
            .collect();
        self.shown = Some(Arc::new(shown));
    }

    /// Adds what arrived since the last read; false when only a rebuild will do (a source
    /// saw its first timestamp, which moves its earlier lines).
    fn update(&mut self, logs: &LogsState) -> bool {
        let mut fresh: Vec<Vec<Row>> = Vec::new();
        // Per changed source: read again from this line on.
        let mut redo: Vec<(usize, u64)> = Vec::new();
        let mut dropped_any = false;
        let mut min_key: Option<i64> = None;
        for s in shown_sources(logs) {
            let src = &logs.sources[s];
            let old = self.marks[s].clone();
            let end = src.dropped + src.lines.len() as u64;
            if old.dropped == src.dropped && old.end == end {
                continue;
            }
            if end < old.end || src.dropped < old.dropped {
                return false;
            }
            // A first timestamp moves the lines before it (they went by arrival time).
            let new_from = old.end.max(src.dropped) - src.dropped;
            if !old.all_ts
                && old.end > old.dropped
                && src.lines.range(new_from as usize..).any(|l| l.ts.is_some())
            {
                return false;
            }
            dropped_any |= src.dropped > old.dropped;
            let from = old.redo.max(src.dropped);
            let mut mark = old.clone();
            if from > old.redo {
                // The last message's head was dropped: what precedes `from` is gone, and
                // its latest timestamp is in `carry`.
                mark.key_before = None;
            }
            let (rows, mark) = read_source(logs, s, from, mark);
            if let Some(first) = rows.first() {
                min_key = Some(min_key.map_or(first.key, |k| k.min(first.key)));
            }
            // Rows of the message read again may have had a smaller key than any new row.
            if let Some(k) = old.key_before {
                min_key = Some(min_key.map_or(k, |m| m.min(k)));
            } else if old.end > old.redo {
                min_key = Some(i64::MIN);
            }
            self.marks[s] = mark;
            redo.push((s, from));
            fresh.push(rows);
        }
        if redo.is_empty() {
            return true;
        }
        self.all_changed = true;
        let rows = Arc::make_mut(&mut self.all);
        let bases: Vec<u64> = logs.sources.iter().map(|s| s.dropped).collect();
        if dropped_any {
            rows.retain(|r| r.abs() >= bases[r.src()]);
        }
        // Rows are in (key, source, line) order, one source's too; the rows read again and
        // the new ones all have keys from `k` on.
        let k = min_key.unwrap_or(i64::MAX);
        let p = rows.partition_point(|r| r.key < k);
        let mut tail = rows.split_off(p);
        tail.retain(|r| {
            !redo
                .iter()
                .any(|&(s, from)| r.src() == s && r.abs() >= from)
        });
        fresh.push(tail);
        rows.extend(merge(fresh));
        true
    }
}
