//! `GET /v1/logs/{source}?tail=N&follow=1`: the server's log sources (its own log, the deploy
//! logs in its state dir, the configured files and Swarm services) as NDJSON, so a client
//! needs neither read access to the files nor the Docker socket.

use std::sync::Arc;

use serde_json::json;

use super::state::ServerState;
use crate::logs::{LogLine, SourceKind, Tail, TailEvent};

/// One line for the wire.
fn line_json(source: &str, l: &LogLine) -> String {
    json!({
        "source": source,
        "ts": l.ts,
        "level": l.level.map(|v| v.as_str().to_ascii_lowercase()),
        "text": l.text,
    })
    .to_string()
}

fn note_json(source: &str, note: &str) -> String {
    json!({"source": source, "note": note}).to_string()
}

/// The names of the server's sources.
pub fn names(s: &ServerState) -> Vec<String> {
    crate::tui::log_sources(&s.cfg, &s.data_dir, &[])
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// Streams `source` into `tx`: its last `tail` lines, then, with `follow`, new ones until
/// the client leaves or the server stops. `None` when there is no such source.
pub fn stream(
    s: &Arc<ServerState>,
    source: &str,
    tail: usize,
    follow: bool,
    tx: tokio::sync::mpsc::Sender<String>,
) -> Option<()> {
    let src = crate::tui::log_sources(&s.cfg, &s.data_dir, &[])
        .into_iter()
        .find(|x| x.name == source)?;
    let stop = s.shutdown.clone();
    let name = src.name.clone();
    match src.kind {
        SourceKind::File(spec) => {
            tokio::task::spawn_blocking(move || {
                let send = |events: Vec<TailEvent>| -> bool {
                    for e in events {
                        let lines: Vec<String> = match &e {
                            TailEvent::Lines(ls) => {
                                ls.iter().map(|l| line_json(&name, l)).collect()
                            }
                            TailEvent::Note(n) => vec![note_json(&name, n)],
                        };
                        for l in lines {
                            if tx.blocking_send(l).is_err() {
                                return false;
                            }
                        }
                    }
                    true
                };
                let (mut t, first) = Tail::open(&spec, tail);
                if !send(first) || !follow {
                    return;
                }
                while !stop.is_cancelled() && !tx.is_closed() {
                    std::thread::sleep(crate::logs::service::POLL);
                    if !send(t.poll()) {
                        return;
                    }
                }
            });
        }
        SourceKind::Service(_) => {
            let (etx, mut erx) = crate::logs::service::channel();
            let cancel = stop.child_token();
            let (_h, task) = crate::logs::service::spawn(vec![src], etx, cancel.clone());
            tokio::spawn(async move {
                let mut first = true;
                while let Some(ev) = tokio::select! {
                    e = erx.recv() => e,
                    () = tx.closed() => None,
                } {
                    let crate::logs::LogEvent::Tail { event, .. } = ev else {
                        continue;
                    };
                    let lines: Vec<String> = match &event {
                        TailEvent::Lines(ls) => {
                            let skip = if first {
                                ls.len().saturating_sub(tail)
                            } else {
                                0
                            };
                            first = false;
                            ls[skip..].iter().map(|l| line_json(&name, l)).collect()
                        }
                        TailEvent::Note(n) => vec![note_json(&name, n)],
                    };
                    for l in lines {
                        if tx.send(l).await.is_err() {
                            cancel.cancel();
                            return;
                        }
                    }
                    if !follow && !first {
                        break;
                    }
                }
                cancel.cancel();
                let _ = task.await;
            });
        }
    }
    Some(())
}
