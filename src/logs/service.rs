//! `LogTailer`: follows every log source on one blocking thread and reports new lines through
//! the event channel in batches, so a writer of 100 000 lines a second costs a few events a
//! second, never a key press.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::tail::{Tail, TailEvent};
use crate::events::{Event, EventTx};

/// Lines read from the end of each source when it is opened.
pub const INITIAL_LINES: usize = 2000;
/// How often the sources are polled.
pub const POLL: Duration = Duration::from_millis(200);

/// A log source: a name and a file path or glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub name: String,
    pub spec: String,
}

/// What the tailer reports.
#[derive(Debug, Clone)]
pub enum LogEvent {
    /// A source was added; its index is its position in the order of `Added` events.
    Added(LogSource),
    Tail {
        source: usize,
        event: TailEvent,
    },
}

/// Adds sources to a running tailer.
#[derive(Clone)]
pub struct LogTailerHandle {
    tx: mpsc::UnboundedSender<LogSource>,
}

impl LogTailerHandle {
    /// Follows one more source (e.g. the deploy log of the selected release).
    pub fn add(&self, source: LogSource) {
        let _ = self.tx.send(source);
    }
}

/// Starts the tailer with `sources`.
pub fn spawn(
    sources: Vec<LogSource>,
    events: EventTx,
    cancel: CancellationToken,
) -> (LogTailerHandle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<LogSource>();
    for s in sources {
        let _ = tx.send(s);
    }
    let task = tokio::task::spawn_blocking(move || {
        let mut tails: Vec<Tail> = Vec::new();
        while !cancel.is_cancelled() {
            while let Ok(src) = rx.try_recv() {
                let (tail, evs) = Tail::open(&src.spec, INITIAL_LINES);
                let index = tails.len();
                tails.push(tail);
                if events
                    .blocking_send(Event::Log(LogEvent::Added(src)))
                    .is_err()
                {
                    return;
                }
                for event in evs {
                    let _ = events.blocking_send(Event::Log(LogEvent::Tail {
                        source: index,
                        event,
                    }));
                }
            }
            for (source, tail) in tails.iter_mut().enumerate() {
                for event in tail.poll() {
                    if events
                        .blocking_send(Event::Log(LogEvent::Tail { source, event }))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    });
    (LogTailerHandle { tx }, task)
}
