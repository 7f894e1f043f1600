//! `LogTailer`: follows the log sources and reports new lines on a channel of their own
//! (`LogTx`), in batches, so a writer of 100 000 lines a second costs a few messages a second
//! and never delays or crowds out a control event. Each source is announced (`Added`) on that
//! channel by the reader of its lines, before them, with a waiting send: an announcement
//! cannot be dropped or overtaken. Files are polled on one blocking thread; Swarm services
//! stream from the Docker Engine API (follow, timestamps, `since` on reconnect).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::line::LogLine;
use super::tail::{Tail, TailEvent};

/// Lines read from the end of each source when it is opened.
pub const INITIAL_LINES: usize = 2000;
/// How often file sources are polled.
pub const POLL: Duration = Duration::from_millis(200);

/// Where a source's lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A file path or glob (the newest match is followed).
    File(String),
    /// A Swarm service's logs.
    Service(String),
}

/// A named log source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub name: String,
    pub kind: SourceKind,
}

impl LogSource {
    pub fn file(name: impl Into<String>, spec: impl Into<String>) -> LogSource {
        LogSource {
            name: name.into(),
            kind: SourceKind::File(spec.into()),
        }
    }

    /// The file spec, for file sources.
    pub fn spec(&self) -> Option<&str> {
        match &self.kind {
            SourceKind::File(s) => Some(s),
            SourceKind::Service(_) => None,
        }
    }
}

/// What the tailer reports. `id` identifies a source for its whole life; a source's `Added`
/// comes before any of its `Tail`s.
#[derive(Debug, Clone)]
pub enum LogEvent {
    Added { id: usize, source: LogSource },
    Tail { id: usize, event: TailEvent },
}

/// Sending half of the log channel.
pub type LogTx = mpsc::Sender<LogEvent>;
/// Receiving half of the log channel.
pub type LogRx = mpsc::Receiver<LogEvent>;

/// A new log channel. Bounded: a reader waits when the front end lags (lines are batched,
/// so 256 messages hold many thousands of lines).
pub fn channel() -> (LogTx, LogRx) {
    mpsc::channel(256)
}

/// Adds sources to a running tailer.
#[derive(Clone)]
pub struct LogTailerHandle {
    files: mpsc::UnboundedSender<(usize, LogSource)>,
    logs: LogTx,
    next_id: Arc<AtomicUsize>,
    cancel: CancellationToken,
    /// The services' followers; the tailer's task ends after them.
    followers: tokio_util::task::TaskTracker,
}

impl LogTailerHandle {
    /// Follows one more source. Never blocks: the source's reader announces it.
    pub fn add(&self, source: LogSource) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        match source.kind {
            SourceKind::File(_) => {
                let _ = self.files.send((id, source));
            }
            SourceKind::Service(_) => {
                self.followers.spawn(follow_service(
                    source,
                    id,
                    self.logs.clone(),
                    self.cancel.clone(),
                ));
            }
        }
    }
}

/// Starts the tailer with `sources`, reporting on `logs`. The task it returns ends once
/// `cancel` has stopped the file reader and every service follower.
pub fn spawn(
    sources: Vec<LogSource>,
    logs: LogTx,
    cancel: CancellationToken,
) -> (LogTailerHandle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, LogSource)>();
    let handle = LogTailerHandle {
        files: tx,
        logs: logs.clone(),
        next_id: Arc::new(AtomicUsize::new(0)),
        cancel: cancel.clone(),
        followers: tokio_util::task::TaskTracker::new(),
    };
    let followers = handle.followers.clone();
    for s in sources {
        handle.add(s);
    }
    let files = tokio::task::spawn_blocking(move || {
        let mut tails: Vec<(usize, Tail)> = Vec::new();
        while !cancel.is_cancelled() {
            while let Ok((id, source)) = rx.try_recv() {
                let spec = source.spec().unwrap_or_default().to_string();
                // Announced before its lines, on the same channel, waiting for room.
                if logs.blocking_send(LogEvent::Added { id, source }).is_err() {
                    return;
                }
                let (tail, evs) = Tail::open(&spec, INITIAL_LINES);
                tails.push((id, tail));
                for event in evs {
                    if logs.blocking_send(LogEvent::Tail { id, event }).is_err() {
                        return;
                    }
                }
            }
            for (id, tail) in tails.iter_mut() {
                for event in tail.poll() {
                    if logs
                        .blocking_send(LogEvent::Tail { id: *id, event })
                        .is_err()
                    {
                        return;
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    });
    let task = tokio::spawn(async move {
        let _ = files.await;
        followers.close();
        followers.wait().await;
    });
    (handle, task)
}

/// Streams a Swarm service's logs, reconnecting (from the last timestamp seen) when the
/// stream ends, until cancelled. Announces the source first.
async fn follow_service(source: LogSource, id: usize, logs: LogTx, cancel: CancellationToken) {
    let SourceKind::Service(service) = source.kind.clone() else {
        return;
    };
    if logs.send(LogEvent::Added { id, source }).await.is_err() {
        return;
    }
    // A full channel nobody drains must not outlive the cancel: the tailer's task waits for
    // this one at shutdown.
    let send = |event: TailEvent| {
        let (logs, cancel) = (logs.clone(), cancel.clone());
        async move {
            tokio::select! {
                sent = logs.send(LogEvent::Tail { id, event }) => sent.is_ok(),
                () = cancel.cancelled() => false,
            }
        }
    };
    let mut since: i32 = 0;
    let mut first = true;
    // One parser for the stream's life: the format is detected once, and a stack trace split
    // across two chunks still joins its message.
    let mut parser = super::multiline::Parser::default();
    loop {
        let docker = match crate::release::deploy::SwarmDeployer::docker().await {
            Ok(d) => d,
            Err(e) => {
                if !send(TailEvent::Note(format!("{service}: {e}"))).await {
                    return;
                }
                tokio::select! { () = cancel.cancelled() => return, () = tokio::time::sleep(Duration::from_secs(5)) => continue }
            }
        };
        let options = bollard::query_parameters::LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            timestamps: true,
            since,
            tail: if first {
                INITIAL_LINES.to_string()
            } else {
                "all".into()
            },
            ..Default::default()
        };
        first = false;
        let mut stream = docker.service_logs(&service, Some(options));
        let mut batch: Vec<LogLine> = Vec::new();
        let mut raw: Vec<Vec<u8>> = Vec::new();
        let mut partial: Vec<u8> = Vec::new();
        let ended = loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                n = tokio::time::timeout(Duration::from_millis(100), stream.next()) => n,
            };
            match next {
                Err(_) => {}
                Ok(None) => break "the log stream ended".to_string(),
                Ok(Some(Err(e))) => break e.to_string(),
                Ok(Some(Ok(out))) => {
                    partial.extend_from_slice(&out.into_bytes());
                    while let Some(nl) = memchr::memchr(b'\n', &partial) {
                        raw.push(partial[..nl].to_vec());
                        partial.drain(..=nl);
                    }
                    for line in parser.parse_batch(&std::mem::take(&mut raw)) {
                        // Docker's own prefix time, for `since` on reconnect.
                        if let Some(ts) = super::format::prefix::strip(&line.text).ts {
                            since = ts.timestamp() as i32;
                        }
                        batch.push(line);
                    }
                    if batch.len() < 500 {
                        continue;
                    }
                }
            }
            if !batch.is_empty() && !send(TailEvent::Lines(std::mem::take(&mut batch))).await {
                return;
            }
        };
        if !batch.is_empty() && !send(TailEvent::Lines(batch)).await {
            return;
        }
        if !send(TailEvent::Note(format!("{service}: {ended}; reconnecting"))).await {
            return;
        }
        tokio::select! { () = cancel.cancelled() => return, () = tokio::time::sleep(Duration::from_secs(2)) => {} }
        // Lines of the last second may come again; better twice than lost.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tailer's task ends after its service followers (they were detached): once it has
    /// ended, no follower holds a sender, even with a full channel nobody drains.
    #[tokio::test]
    async fn the_tailers_task_ends_after_its_service_followers() {
        // Room for the announcement only: the follower's next message waits.
        let (tx, mut rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let (handle, task) = spawn(
            vec![LogSource {
                name: "web".into(),
                kind: SourceKind::Service("opsdeck-test-no-such-service".into()),
            }],
            tx,
            cancel.clone(),
        );
        drop(handle);
        let Some(LogEvent::Added { source, .. }) = rx.recv().await else {
            panic!("no announcement");
        };
        assert_eq!(source.name, "web");
        // Whatever it says next (engine unreachable, no such service) fills the channel.
        while rx.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the tailer's task outlived its cancel")
            .unwrap();
        // Every sender is gone once the task has ended: only what was queued is left.
        loop {
            match rx.try_recv() {
                Ok(LogEvent::Tail { .. }) => continue,
                Ok(other) => panic!("{other:?}"),
                Err(e) => {
                    assert_eq!(e, mpsc::error::TryRecvError::Disconnected);
                    break;
                }
            }
        }
    }
}
