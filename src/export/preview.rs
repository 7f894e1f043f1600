//! CSV preview: reads an export in batches on a blocking thread, so the first screen of a
//! 100 000-row file arrives at once and the rest follows.

use std::path::Path;

/// One batch of a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewBatch {
    /// The header; set on the first batch only.
    pub header: Option<Vec<String>>,
    pub rows: Vec<Vec<String>>,
    /// No more batches follow.
    pub done: bool,
    /// Set when reading stopped at an error (the rows before it are kept).
    pub error: Option<String>,
}

/// Rows in the first batch: enough for a tall terminal.
pub const FIRST_BATCH: usize = 200;
/// Rows in each later batch.
pub const BATCH: usize = 20_000;

/// Reads `path` and hands batches to `send` until `max_rows` rows, the end, or `send`
/// returning `false` (the preview was closed). Blocking.
pub fn stream_preview(path: &Path, max_rows: usize, mut send: impl FnMut(PreviewBatch) -> bool) {
    let mut rdr = match csv::ReaderBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_path(path)
    {
        Ok(r) => r,
        Err(e) => {
            send(PreviewBatch {
                header: None,
                rows: vec![],
                done: true,
                error: Some(e.to_string()),
            });
            return;
        }
    };
    let header = match rdr.headers() {
        Ok(h) => Some(h.iter().map(str::to_string).collect()),
        Err(e) => {
            send(PreviewBatch {
                header: None,
                rows: vec![],
                done: true,
                error: Some(e.to_string()),
            });
            return;
        }
    };
    let mut batch = PreviewBatch {
        header,
        rows: Vec::with_capacity(FIRST_BATCH),
        done: false,
        error: None,
    };
    let mut limit = FIRST_BATCH;
    let mut total = 0usize;
    let mut record = csv::StringRecord::new();
    loop {
        let more = match rdr.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                batch.error = Some(e.to_string());
                false
            }
        };
        if more {
            batch.rows.push(record.iter().map(str::to_string).collect());
            total += 1;
        }
        let finished = !more || total >= max_rows;
        if finished || batch.rows.len() >= limit {
            batch.done = finished;
            let next = PreviewBatch {
                header: None,
                rows: Vec::with_capacity(BATCH),
                done: false,
                error: None,
            };
            if !send(std::mem::replace(&mut batch, next)) || finished {
                return;
            }
            limit = BATCH;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_batch_is_small_and_all_rows_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        let mut text = String::from("allure_id;name\n");
        for i in 0..(FIRST_BATCH + 5) {
            text.push_str(&format!("{i};\"multi\nline {i}\"\n"));
        }
        std::fs::write(&p, text).unwrap();
        let mut batches = Vec::new();
        stream_preview(&p, usize::MAX, |b| {
            batches.push(b);
            true
        });
        assert_eq!(
            batches[0].header.as_deref(),
            Some(&["allure_id".to_string(), "name".to_string()][..])
        );
        assert_eq!(batches[0].rows.len(), FIRST_BATCH);
        assert_eq!(batches[0].rows[1], ["1", "multi\nline 1"]);
        assert!(batches.last().unwrap().done);
        assert_eq!(
            batches.iter().map(|b| b.rows.len()).sum::<usize>(),
            FIRST_BATCH + 5
        );
    }
}
