//! The Logs tab's derived rows (which lines the view shows, in which order), cached.
//!
//! Building them reads every line of every source (filters, folding, the merge by time), so
//! they are kept between key presses and frames and rebuilt only when an input changes: a
//! filter, the level, folding, merging, the selected source, a format change. New lines are
//! added incrementally: only the last message of a source (which may still grow) and the new
//! lines are read, and in the merged view only the rows from the first new key on are merged
//! again. Lines dropped from a full ring buffer (whole messages) leave the rows without a
//! rebuild.
//!
//! The merge orders rows by (key, source, line). A line's key is the latest timestamp at or
//! before it in its source (including lines already dropped); lines before a source's first
//! timestamp take that timestamp; a source without any goes by arrival time. Keys never go
//! down within a source, so this order is the k-way merge of the sources, and merging new
//! rows into the tail gives exactly what a rebuild gives (a test checks both).

use std::sync::{Arc, Mutex};

use super::logs::{LogsState, SourceView};
use crate::logs::{Level, LogLine};

/// One shown line: its merge key, its source and its line number counted since the source
/// began (so it survives lines dropped from the front).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub key: i64,
    pub src: u32,
    pub abs: u64,
}

/// The rows the view shows, as (source, index into its `lines`).
#[derive(Debug, Clone)]
pub struct Visible {
    rows: Arc<Vec<Row>>,
    /// Each source's `dropped`, to turn a line number into an index.
    bases: Vec<u64>,
}

impl Visible {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i` as (source, line index).
    pub fn get(&self, i: usize) -> (usize, usize) {
        let r = self.rows[i];
        (
            r.src as usize,
            (r.abs - self.bases[r.src as usize]) as usize,
        )
    }

    /// Every row as (source, line index), in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (usize, usize)> + '_ {
        (0..self.rows.len()).map(|i| self.get(i))
    }

    /// The rows as a vector (tests, saving).
    pub fn to_vec(&self) -> Vec<(usize, usize)> {
        self.iter().collect()
    }
}

/// Everything besides the lines that decides the rows: any change rebuilds them.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    merged: bool,
    sel: usize,
    folded: bool,
    only_matching: bool,
    pattern: Option<String>,
    min_level: Option<Level>,
    sources: usize,
    epochs: Vec<u64>,
}

/// What the cache knows of one source.
#[derive(Debug, Clone, Default)]
struct Mark {
    /// `dropped` and `dropped + lines.len()` when last read.
    dropped: u64,
    end: u64,
    /// The line where the last message starts: it is read again when lines arrive, since
    /// continuation lines may join it (and change whether it shows).
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
    rows: Arc<Vec<Row>>,
    rebuilds: u64,
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
    /// How many times the rows were built from scratch (tests check new lines and keys
    /// do not cause one).
    pub fn rebuilds(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).rebuilds
    }

    /// The rows for `logs` now, brought up to date first.
    pub fn get(&self, logs: &LogsState) -> Visible {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let params = params_of(logs);
        if inner.params.as_ref() != Some(&params) || !inner.update(logs) {
            inner.rebuild(logs);
            inner.params = Some(params);
        }
        Visible {
            rows: inner.rows.clone(),
            bases: logs.sources.iter().map(|s| s.dropped).collect(),
        }
    }
}

fn params_of(logs: &LogsState) -> Params {
    Params {
        merged: logs.merged,
        sel: logs.sel,
        folded: logs.folded,
        only_matching: logs.only_matching,
        pattern: logs.regex.as_ref().map(|r| r.as_str().to_string()),
        min_level: logs.min_level,
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

/// Reads source `s` from line `from` (a message head, counted since the source began) to
/// its end: the rows it shows, and the new mark.
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
    let mut rows = Vec::new();
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
        let show = logs.shows(lines.range(i..j));
        for (k, l) in lines.range(i..j).enumerate().map(|(n, l)| (i + n, l)) {
            let k_key = key_of(l, key, any_ts);
            key = Some(k_key);
            any_ts |= l.ts.is_some();
            if show && (k == i || !logs.folded) {
                rows.push(Row {
                    key: k_key,
                    src: s as u32,
                    abs: src.dropped + k as u64,
                });
            }
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
        self.marks = vec![Mark::default(); logs.sources.len()];
        let mut lists = Vec::new();
        for s in shown_sources(logs) {
            let from = logs.sources[s].dropped;
            let (rows, mark) = read_source(logs, s, from, Mark::default());
            self.marks[s] = mark;
            lists.push(rows);
        }
        self.rows = Arc::new(merge(lists));
    }

    /// Adds what arrived since the last read; false when only a rebuild will do (a source
    /// saw its first timestamp, which moves its earlier lines).
    fn update(&mut self, logs: &LogsState) -> bool {
        let mut fresh: Vec<Vec<Row>> = Vec::new();
        // Per changed source: read again from this line on.
        let mut redo: Vec<(u32, u64)> = Vec::new();
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
            redo.push((s as u32, from));
            fresh.push(rows);
        }
        if redo.is_empty() {
            return true;
        }
        let rows = Arc::make_mut(&mut self.rows);
        let bases: Vec<u64> = logs.sources.iter().map(|s| s.dropped).collect();
        if dropped_any {
            rows.retain(|r| r.abs >= bases[r.src as usize]);
        }
        // Rows are in (key, source, line) order, one source's too; the rows read again and
        // the new ones all have keys from `k` on.
        let k = min_key.unwrap_or(i64::MAX);
        let p = rows.partition_point(|r| r.key < k);
        let mut tail = rows.split_off(p);
        tail.retain(|r| !redo.iter().any(|&(s, from)| r.src == s && r.abs >= from));
        fresh.push(tail);
        rows.extend(merge(fresh));
        true
    }
}
