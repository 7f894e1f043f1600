//! `ExportJob`: exports one group, with retries, streaming into a checked temporary file that
//! is renamed to its final name only when complete.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::csv_check::{CsvError, CsvSummary};
use super::history::{AttemptEnd, RunHistory};
use super::limits::{DownloadLimits, RateGuard, strip_bom};
use super::sink::{CsvSink, SinkError};
use super::store::{ExportName, ExportStore};
use crate::config::{ColumnMapping, Group};
use crate::events::{Event, EventTx};
use crate::testops::{ExportSelection, TestOpsClient, TestOpsError};

/// Why an export run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Trigger {
    /// A person pressed a key or ran `opsdeck export`.
    Manual,
    /// The scheduler, for the given scheduled instant.
    Scheduled(DateTime<Utc>),
    /// The scheduler catching up a run missed while no process was up.
    CatchUp(DateTime<Utc>),
}

impl Trigger {
    /// The name stored in the run history.
    pub fn label(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Scheduled(_) => "scheduled",
            Trigger::CatchUp(_) => "catch-up",
        }
    }

    /// The scheduled instant, for scheduled runs.
    pub fn scheduled_for(&self) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Manual => None,
            Trigger::Scheduled(t) | Trigger::CatchUp(t) => Some(*t),
        }
    }
}

/// Where an attempt is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stage {
    Requesting,
    Preparing { poll: u32 },
    Downloading { bytes: u64, total: Option<u64> },
    Checking,
}

/// Progress and results of exports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ExportEvent {
    Progress {
        run_id: i64,
        group: String,
        attempt: u32,
        max_attempts: u32,
        stage: Stage,
    },
    RetryScheduled {
        run_id: i64,
        group: String,
        attempt: u32,
        max_attempts: u32,
        at: DateTime<Utc>,
        error: String,
    },
    Saved {
        run_id: i64,
        group: String,
        path: PathBuf,
        bytes: u64,
        rows: u64,
        attempts: u32,
    },
    Failed {
        run_id: i64,
        group: String,
        error: String,
        attempts: u32,
    },
    /// The group was not started because an export of it is already running.
    Skipped { group: String, reason: String },
    RunFinished {
        run_id: i64,
        trigger: Trigger,
        saved: usize,
        failed: usize,
    },
}

#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    TestOps(#[from] TestOpsError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cancelled")]
    Cancelled,
    #[error("the export is larger than export.max_bytes ({limit} bytes); refused")]
    TooLarge { limit: u64 },
    #[error(
        "the download is slower than export.min_rate: {got} bytes in {per:?}, at least {need} needed"
    )]
    TooSlow { got: u64, need: u64, per: Duration },
    #[error("the attempt took longer than export.attempt_timeout ({0:?})")]
    Deadline(Duration),
}

impl AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::TestOps(e) => e.is_retryable(),
            AttemptError::Sink(SinkError::Exists(_))
            | AttemptError::Cancelled
            | AttemptError::TooLarge { .. } => false,
            AttemptError::TooSlow { .. } | AttemptError::Deadline(_) => true,
            AttemptError::Sink(_) => true,
        }
    }
}

/// Everything one group export needs; shared by all runs.
pub struct ExportJob {
    pub client: Arc<TestOpsClient>,
    pub store: ExportStore,
    pub history: RunHistory,
    pub mapping: Arc<Vec<ColumnMapping>>,
    pub max_attempts: u32,
    pub retry_delays: Vec<Duration>,
    pub events: EventTx,
    pub limits: DownloadLimits,
}

/// Progress events are sent at most this often per group, so a fast download cannot flood.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl ExportJob {
    /// Exports `group`, retrying as configured. `Ok` holds the saved path and its counts.
    pub async fn run_group(
        &self,
        run_id: i64,
        group: &Group,
        cancel: &CancellationToken,
    ) -> Result<(PathBuf, CsvSummary), String> {
        let max = self.max_attempts;
        for attempt in 1..=max {
            tracing::info!(group = %group.name, "export attempt {attempt}/{max} started");
            let attempt_id = self
                .history
                .start_attempt(run_id, &group.name, attempt, max)
                .ok();
            let started = Utc::now();
            let deadline = self.limits.attempt_timeout;
            let result = tokio::select! {
                r = tokio::time::timeout(deadline, self.attempt(run_id, group, attempt, started)) => {
                    r.unwrap_or(Err(AttemptError::Deadline(deadline)))
                }
                () = cancel.cancelled() => Err(AttemptError::Cancelled),
            };
            let record = |end: AttemptEnd<'_>| {
                if let Some(id) = attempt_id
                    && let Err(e) = self.history.finish_attempt(id, &end)
                {
                    tracing::warn!("cannot record the attempt in the run history: {e}");
                }
            };
            match result {
                Ok((path, summary, export_id)) => {
                    // Outside the attempt's deadline: the file is saved, so a slow or failed
                    // delete is worth a warning, never a retry (which would save it twice).
                    if self.client.deletes_after_download()
                        && let Err(e) = self.client.delete_export(export_id).await
                    {
                        tracing::warn!(group = %group.name, "cannot delete export {export_id} on the server: {e}");
                    }
                    let file = path.display().to_string();
                    record(AttemptEnd {
                        outcome: "saved",
                        bytes: Some(summary.bytes),
                        rows: Some(summary.rows),
                        file: Some(&file),
                        error: None,
                    });
                    tracing::info!(group = %group.name, rows = summary.rows, bytes = summary.bytes, "export saved: {file}");
                    self.emit(ExportEvent::Saved {
                        run_id,
                        group: group.name.clone(),
                        path: path.clone(),
                        bytes: summary.bytes,
                        rows: summary.rows,
                        attempts: attempt,
                    })
                    .await;
                    return Ok((path, summary));
                }
                Err(e) => {
                    let error = e.to_string();
                    let last = attempt == max || !e.is_retryable();
                    let outcome = match (&e, last) {
                        (AttemptError::Cancelled, _) => "cancelled",
                        (_, true) => "failed",
                        (_, false) => "retrying",
                    };
                    record(AttemptEnd {
                        outcome,
                        error: Some(&error),
                        ..Default::default()
                    });
                    if last {
                        tracing::error!(group = %group.name, "export failed after attempt {attempt}/{max}: {error}");
                        self.emit(ExportEvent::Failed {
                            run_id,
                            group: group.name.clone(),
                            error: error.clone(),
                            attempts: attempt,
                        })
                        .await;
                        return Err(error);
                    }
                    let configured =
                        self.retry_delays[(attempt as usize - 1).min(self.retry_delays.len() - 1)];
                    let delay = e_retry_after(&e).map_or(configured, |ra| ra.max(configured));
                    let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    tracing::warn!(group = %group.name, "export attempt {attempt}/{max} failed: {error}; retrying at {}", at.format("%Y-%m-%d %H:%M:%S UTC"));
                    self.emit(ExportEvent::RetryScheduled {
                        run_id,
                        group: group.name.clone(),
                        attempt,
                        max_attempts: max,
                        at,
                        error,
                    })
                    .await;
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = cancel.cancelled() => {
                            let error = "cancelled while waiting to retry".to_string();
                            self.emit(ExportEvent::Failed { run_id, group: group.name.clone(), error: error.clone(), attempts: attempt }).await;
                            return Err(error);
                        }
                    }
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn attempt(
        &self,
        run_id: i64,
        group: &Group,
        attempt: u32,
        started: DateTime<Utc>,
    ) -> Result<(PathBuf, CsvSummary, u64), AttemptError> {
        let max = self.max_attempts;
        let progress = |stage| ExportEvent::Progress {
            run_id,
            group: group.name.clone(),
            attempt,
            max_attempts: max,
            stage,
        };
        self.emit(progress(Stage::Requesting)).await;
        let sel = ExportSelection {
            project_id: group.project_id,
            tree_id: group.tree_id,
            group_id: group.id,
        };
        let export_id = self.client.request_export(sel, &self.mapping).await?;
        let mut dl = self
            .client
            .start_download(export_id, |poll| {
                self.emit_progress(progress(Stage::Preparing { poll }))
            })
            .await?;
        if dl
            .content_type
            .as_deref()
            .is_some_and(|t| t.contains("html"))
        {
            return Err(SinkError::Csv(CsvError::NotCsv("HTML or XML")).into());
        }
        let max = self.limits.max_bytes;
        let total = dl.content_length;
        if total.is_some_and(|t| t > max) {
            return Err(AttemptError::TooLarge { limit: max });
        }
        let mut first = std::mem::take(&mut dl.first);
        let mut bytes = first.len() as u64;
        let first = loop {
            if let Some(f) = strip_bom(first.clone()) {
                break f;
            }
            match dl.next_chunk(bytes).await? {
                Some(more) => {
                    bytes += more.len() as u64;
                    first = [first, more].concat().into();
                }
                None => break first,
            }
        };
        let mut sink = CsvSink::create(self.store.dir())?;
        sink.write(first).await?;
        let mut last_report = Instant::now();
        let mut rate = RateGuard::new(self.limits.min_rate);
        let too_slow = |got| AttemptError::TooSlow {
            got,
            need: self.limits.min_rate.bytes,
            per: self.limits.min_rate.per,
        };
        loop {
            // Wait for a chunk no longer than the rate window has left, so a silent server is
            // judged too, not only a dripping one.
            let chunk = match tokio::time::timeout(rate.remaining(), dl.next_chunk(bytes)).await {
                Ok(c) => c?,
                Err(_) => {
                    rate.add(0).map_err(too_slow)?;
                    continue;
                }
            };
            let Some(chunk) = chunk else { break };
            bytes += chunk.len() as u64;
            if bytes > max {
                return Err(AttemptError::TooLarge { limit: max });
            }
            rate.add(chunk.len() as u64).map_err(too_slow)?;
            sink.write(chunk).await?;
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                self.emit_progress(progress(Stage::Downloading { bytes, total }));
            }
        }
        if let Some(total) = total.filter(|&t| t != bytes) {
            return Err(TestOpsError::Interrupted {
                bytes,
                message: format!("expected {total} bytes"),
            }
            .into());
        }
        self.emit(progress(Stage::Checking)).await;
        let checked = sink.finish().await?;
        let summary = checked.summary;
        // Two exports of a group in one second take the next free second.
        let (project, name) = (group.project_id, group.name.clone());
        let file_name = move |n: u32| {
            ExportName::file_name(
                project,
                &name,
                started + chrono::Duration::seconds(n.into()),
            )
        };
        let (dir, group) = (self.store.dir().to_path_buf(), self.store.group().cloned());
        let path =
            tokio::task::spawn_blocking(move || checked.persist(&dir, group.as_ref(), file_name))
                .await
                .map_err(|_| SinkError::Abandoned)??;
        Ok((path, summary, export_id))
    }

    async fn emit(&self, e: ExportEvent) {
        let _ = self.events.send(Event::Export(e)).await;
    }

    /// Progress is droppable: when the front end lags, skip reports instead of waiting.
    fn emit_progress(&self, e: ExportEvent) {
        let _ = self.events.try_send(Event::Export(e));
    }
}

fn e_retry_after(e: &AttemptError) -> Option<Duration> {
    match e {
        AttemptError::TestOps(t) => t.retry_after(),
        _ => None,
    }
}
