//! `CsvSink`: streams a download into a hidden temporary file in the export directory while
//! checking it, on a blocking thread of its own so the network side never waits on the disk.
//!
//! The temporary file is deleted when the sink is dropped unfinished (cancel, error, panic):
//! nothing half-written ever gets a final name.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tempfile::NamedTempFile;
use tokio::sync::mpsc;

use super::csv_check::{CsvCheck, CsvError, CsvSummary};
use super::store::sync_dir;

/// Why writing an export failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("the disk holding {dir} is full")]
    DiskFull { dir: PathBuf },
    #[error("cannot write in {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Csv(#[from] CsvError),
    #[error("a file named {0} already exists")]
    Exists(PathBuf),
    #[error("the download was abandoned")]
    Abandoned,
}

enum Msg {
    Chunk(Bytes),
    Finish,
}

/// A checked, synced temporary file waiting for its final name.
pub struct CheckedFile {
    temp: NamedTempFile,
    pub summary: CsvSummary,
}

/// The writing end of a download: one thread writes the file, another checks the CSV, so
/// checking a large export costs no extra wall time beyond the download itself.
pub struct CsvSink {
    write_tx: mpsc::Sender<Msg>,
    check_tx: mpsc::Sender<Msg>,
    writer: tokio::task::JoinHandle<Result<NamedTempFile, SinkError>>,
    /// `None` when abandoned before the end.
    checker: tokio::task::JoinHandle<Option<Result<CsvSummary, CsvError>>>,
}

/// Writeback window: each full window is sent to disk while the next one downloads, so the
/// final fsync has at most two windows left to write instead of the whole file.
const WRITEBACK_EVERY: u64 = 32 << 20;
/// Chunks in flight per thread; with reqwest's reads of up to a few hundred KB this bounds
/// the memory a download holds to a few MB.
const IN_FLIGHT: usize = 8;

impl CsvSink {
    /// Creates the temporary file in `dir` and starts the writer and checker threads.
    pub fn create(dir: &Path) -> Result<Self, SinkError> {
        let temp = tempfile::Builder::new()
            .prefix(&super::recovery::temp_prefix())
            .tempfile_in(dir)
            .map_err(|e| io_error(dir, e))?;
        let (write_tx, write_rx) = mpsc::channel(IN_FLIGHT);
        let (check_tx, check_rx) = mpsc::channel(IN_FLIGHT);
        let dir = dir.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || write_loop(temp, write_rx, &dir));
        let checker = tokio::task::spawn_blocking(move || check_loop(check_rx));
        Ok(Self {
            write_tx,
            check_tx,
            writer,
            checker,
        })
    }

    /// Hands a chunk to both threads. Fails early when either already failed (a CSV or disk
    /// error), so a bad download stops instead of streaming to the end.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        let checked = self.check_tx.send(Msg::Chunk(chunk.clone())).await.is_ok();
        let written = checked && self.write_tx.send(Msg::Chunk(chunk)).await.is_ok();
        if !written {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Ends the body: the last checks run, the file is flushed and fsynced.
    pub async fn finish(self) -> Result<CheckedFile, SinkError> {
        let _ = self.check_tx.send(Msg::Finish).await;
        let _ = self.write_tx.send(Msg::Finish).await;
        drop((self.check_tx, self.write_tx));
        let summary = self.checker.await.ok().flatten();
        let temp = self.writer.await.unwrap_or(Err(SinkError::Abandoned));
        // A CSV error explains more than the writer stopping because of it.
        let summary = summary.ok_or(SinkError::Abandoned)??;
        Ok(CheckedFile {
            temp: temp?,
            summary,
        })
    }

    async fn failure(&mut self) -> SinkError {
        // Close both channels so the surviving thread stops, and wait for both: once this
        // returns, the temporary file is gone.
        self.check_tx = mpsc::channel(1).0;
        self.write_tx = mpsc::channel(1).0;
        let checked = (&mut self.checker).await;
        let written = (&mut self.writer).await;
        match (checked, written) {
            (Ok(Some(Err(e))), _) => SinkError::Csv(e),
            (_, Ok(Err(e))) => e,
            _ => SinkError::Abandoned,
        }
    }
}

impl CheckedFile {
    /// Gives the file to the team (0640, `group`), then renames it to the first free name of
    /// `name(0)`, `name(1)`, ... (never over an existing file) and syncs the directory.
    pub fn persist(
        self,
        dir: &Path,
        group: Option<&super::ExportGroup>,
        name: impl Fn(u32) -> String,
    ) -> Result<PathBuf, SinkError> {
        let mut temp = self.temp;
        super::share::share(temp.as_file(), group).map_err(|e| io_error(dir, e))?;
        for n in 0..60 {
            let path = dir.join(name(n));
            match temp.persist_noclobber(&path) {
                Ok(_) => {
                    sync_dir(dir).map_err(|e| io_error(dir, e))?;
                    return Ok(path);
                }
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => temp = e.file,
                Err(e) => return Err(io_error(dir, e.error)),
            }
        }
        Err(SinkError::Exists(dir.join(name(0))))
    }
}

fn io_error(dir: &Path, e: std::io::Error) -> SinkError {
    if e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == std::io::ErrorKind::StorageFull {
        SinkError::DiskFull {
            dir: dir.to_path_buf(),
        }
    } else {
        SinkError::Io {
            dir: dir.to_path_buf(),
            source: e,
        }
    }
}

fn write_loop(
    temp: NamedTempFile,
    mut rx: mpsc::Receiver<Msg>,
    dir: &Path,
) -> Result<NamedTempFile, SinkError> {
    let file = temp.as_file().try_clone().map_err(|e| io_error(dir, e))?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut written = 0u64;
    let mut flushed_to = 0u64;
    let mut prev_window = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Chunk(chunk)) => {
                out.write_all(&chunk).map_err(|e| io_error(dir, e))?;
                written += chunk.len() as u64;
                if written - flushed_to >= WRITEBACK_EVERY {
                    out.flush().map_err(|e| io_error(dir, e))?;
                    writeback(out.get_ref(), prev_window, flushed_to, written);
                    prev_window = flushed_to;
                    flushed_to = written;
                }
            }
            Some(Msg::Finish) => break,
            None => return Err(SinkError::Abandoned),
        }
    }
    out.flush().map_err(|e| io_error(dir, e))?;
    out.get_ref().sync_data().map_err(|e| io_error(dir, e))?;
    Ok(temp)
}

fn check_loop(mut rx: mpsc::Receiver<Msg>) -> Option<Result<CsvSummary, CsvError>> {
    let mut check = CsvCheck::new();
    loop {
        match rx.blocking_recv() {
            Some(Msg::Chunk(chunk)) => {
                if let Err(e) = check.feed(&chunk) {
                    return Some(Err(e));
                }
            }
            Some(Msg::Finish) => return Some(check.finish()),
            None => return None,
        }
    }
}

/// Starts writing `[start, end)` to disk and waits until the window before it,
/// `[prev, start)`, is on disk. This keeps the dirty backlog at two windows: the disk works
/// during the download, and the page cache is not flooded with a 200 MB burst at the end.
#[cfg(target_os = "linux")]
fn writeback(file: &std::fs::File, prev: u64, start: u64, end: u64) {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: a valid open fd and ranges inside the file; these calls only schedule or await
    // I/O. Errors are ignored: the final fsync reports any real write failure.
    unsafe {
        libc::sync_file_range(
            fd,
            start as i64,
            (end - start) as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        );
        if start > prev {
            libc::sync_file_range(
                fd,
                prev as i64,
                (start - prev) as i64,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn writeback(_file: &std::fs::File, _prev: u64, _start: u64, _end: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[tokio::test]
    async fn good_body_is_persisted_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = CsvSink::create(dir.path()).unwrap();
        sink.write(Bytes::from_static(b"a;b\n1;")).await.unwrap();
        sink.write(Bytes::from_static(b"2\n")).await.unwrap();
        let checked = sink.finish().await.unwrap();
        assert_eq!(checked.summary.rows, 1);
        let path = checked
            .persist(dir.path(), None, |_| "x.csv".into())
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a;b\n1;2\n");
        assert_eq!(temp_files(dir.path()), ["x.csv"]);
    }

    #[tokio::test]
    async fn html_or_abandoned_body_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = CsvSink::create(dir.path()).unwrap();
        let mut res = sink.write(Bytes::from_static(b"<html>")).await;
        for _ in 0..100 {
            if res.is_err() {
                break;
            }
            res = sink.write(Bytes::from_static(b"more")).await;
        }
        assert!(
            matches!(res, Err(SinkError::Csv(CsvError::NotCsv(_)))),
            "{res:?}"
        );
        assert!(temp_files(dir.path()).is_empty());

        let mut sink = CsvSink::create(dir.path()).unwrap();
        sink.write(Bytes::from_static(b"a;b\n")).await.unwrap();
        drop(sink);
        // The worker notices the closed channel and drops the temp file.
        for _ in 0..200 {
            if temp_files(dir.path()).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(temp_files(dir.path()).is_empty());
    }
}
