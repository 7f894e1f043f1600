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
use super::store::{TEMP_PREFIX, sync_dir};

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

/// The writing end of a download.
pub struct CsvSink {
    tx: mpsc::Sender<Msg>,
    worker: tokio::task::JoinHandle<Result<CheckedFile, SinkError>>,
}

/// Start writeback every this many bytes so the final fsync has little left to do.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl CsvSink {
    /// Creates the temporary file in `dir` and starts the writer thread.
    pub fn create(dir: &Path) -> Result<Self, SinkError> {
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| io_error(dir, e))?;
        let (tx, rx) = mpsc::channel(64);
        let dir = dir.to_path_buf();
        let worker = tokio::task::spawn_blocking(move || write_loop(temp, rx, &dir));
        Ok(Self { tx, worker })
    }

    /// Hands a chunk to the writer. Fails early when the writer already failed (a CSV or disk
    /// error), so a bad download stops instead of streaming to the end.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        if self.tx.send(Msg::Chunk(chunk)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Ends the body: the last checks run, the file is flushed and fsynced.
    pub async fn finish(self) -> Result<CheckedFile, SinkError> {
        let _ = self.tx.send(Msg::Finish).await;
        drop(self.tx);
        self.worker.await.unwrap_or(Err(SinkError::Abandoned))
    }

    async fn failure(&mut self) -> SinkError {
        match (&mut self.worker).await {
            Ok(Err(e)) => e,
            _ => SinkError::Abandoned,
        }
    }
}

impl CheckedFile {
    /// Renames the file to the first free name of `name(0)`, `name(1)`, ... (never over an
    /// existing file) and syncs the directory.
    pub fn persist(self, dir: &Path, name: impl Fn(u32) -> String) -> Result<PathBuf, SinkError> {
        let mut temp = self.temp;
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
) -> Result<CheckedFile, SinkError> {
    let mut check = CsvCheck::new();
    let file = temp.as_file().try_clone().map_err(|e| io_error(dir, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut written = 0u64;
    let mut flushed_to = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Chunk(chunk)) => {
                check.feed(&chunk)?;
                out.write_all(&chunk).map_err(|e| io_error(dir, e))?;
                written += chunk.len() as u64;
                if written - flushed_to >= WRITEBACK_EVERY {
                    out.flush().map_err(|e| io_error(dir, e))?;
                    start_writeback(out.get_ref(), flushed_to, written - flushed_to);
                    flushed_to = written;
                }
            }
            Some(Msg::Finish) => break,
            None => return Err(SinkError::Abandoned),
        }
    }
    let summary = check.finish()?;
    out.flush().map_err(|e| io_error(dir, e))?;
    out.get_ref().sync_all().map_err(|e| io_error(dir, e))?;
    Ok(CheckedFile { temp, summary })
}

/// Asks the kernel to start writing a range to disk without waiting for it.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open fd and a range inside the file; the call only schedules I/O.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

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
        let path = checked.persist(dir.path(), |_| "x.csv".into()).unwrap();
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
