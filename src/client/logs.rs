//! The server's log sources in a client dashboard: each one streamed from
//! `/v1/logs/{source}?follow=1` and handed to the Logs tab as the same `LogEvent`s the
//! in-process tailer sends, so the tab cannot tell the difference.

use std::time::Duration;

use futures_util::StreamExt;
use hyper::Method;
use tokio_util::sync::CancellationToken;

use super::Remote;
use crate::logs::{LogEvent, LogLine, LogSource, LogTx, TailEvent};

/// Source ids of remote sources start here, clear of the local tailer's.
pub const REMOTE_ID_BASE: usize = 1 << 20;

/// The names of the server's log sources.
pub async fn names(remote: &Remote) -> Result<Vec<String>, super::ClientError> {
    remote.http.get_json("/v1/logs").await
}

/// Follows the server's log sources `names` until `cancel`.
pub fn spawn(
    remote: Remote,
    names: Vec<String>,
    tx: LogTx,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            let id = REMOTE_ID_BASE + i;
            let source = LogSource::file(name.clone(), format!("server:{name}"));
            // Announced before its lines, on the same channel: never dropped.
            if tx.send(LogEvent::Added { id, source }).await.is_err() {
                return;
            }
            tasks.push(tokio::spawn(follow(
                remote.clone(),
                name,
                id,
                tx.clone(),
                cancel.clone(),
            )));
        }
        for t in tasks {
            let _ = t.await;
        }
    })
}

async fn follow(remote: Remote, name: String, id: usize, tx: LogTx, cancel: CancellationToken) {
    let mut tail = crate::logs::service::INITIAL_LINES;
    loop {
        let path = format!("/v1/logs/{}?tail={tail}&follow=1", super::urlenc(&name));
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            s = remote.http.lines(Method::GET, &path, None) => s,
        };
        if let Ok(lines) = stream {
            let mut lines = Box::pin(lines.ready_chunks(512));
            loop {
                let chunk = tokio::select! {
                    () = cancel.cancelled() => return,
                    c = lines.next() => c,
                };
                let Some(chunk) = chunk else { break };
                let mut batch = Vec::new();
                for line in chunk.into_iter().flatten() {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if let Some(note) = v["note"].as_str() {
                        let ev = TailEvent::Note(note.to_string());
                        let _ = tx.send(LogEvent::Tail { id, event: ev }).await;
                    } else if let Some(text) = v["text"].as_str() {
                        batch.push(LogLine::parse(text.as_bytes()));
                    }
                }
                if !batch.is_empty()
                    && tx
                        .send(LogEvent::Tail {
                            id,
                            event: TailEvent::Lines(batch),
                        })
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
        // Reconnected later: only what is new since (lines of the gap may repeat).
        tail = 0;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
