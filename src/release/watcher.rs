//! `LedgerWatcher`: reports the release list whenever the ledger changes, by anyone (the CLI
//! from CI, another dashboard), and verifies the audit chain on each change, so a ledger
//! edited behind opsdeck's back shows while it runs. Polls SQLite's cheap `data_version`
//! twice a second.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ledger::{Ledger, VerifyError};
use crate::events::{Event, EventTx};
use crate::storage::LedgerAt;

/// The dashboard's watcher (local mode): the release list and tamper evidence.
pub fn spawn(
    path: LedgerAt,
    events: EventTx,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || watch(path, events, cancel, true))
}

/// The server's watcher: only tamper evidence (the server publishes its own changes). Its
/// first pass is the check at start.
pub fn spawn_verifier(
    path: LedgerAt,
    events: EventTx,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || watch(path, events, cancel, false))
}

fn watch(path: LedgerAt, events: EventTx, cancel: CancellationToken, list: bool) {
    let ledger = match Ledger::open_at(&path) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("{path}: {e}");
            tracing::error!("cannot watch the ledger: {msg}");
            if list {
                let _ = events.blocking_send(Event::ReleasesUnavailable(msg));
            }
            return;
        }
    };
    let mut seen = None;
    let mut tampered = None;
    while !cancel.is_cancelled() {
        if let Ok(v) = ledger.data_version()
            && seen != Some(v)
        {
            let first = seen.is_none();
            seen = Some(v);
            match ledger.verify() {
                // The head, logged once: a record to compare with later.
                Ok(ok) if first => tracing::info!(ledger = %path, "{ok}"),
                Ok(_) => {}
                // Sticky: once seen, the evidence stays until a restart verifies again.
                Err(VerifyError::Tampered(t)) if tampered.as_ref() != Some(&t.row) => {
                    tracing::error!(ledger = %path, "{t}");
                    tampered = Some(t.row);
                    if events
                        .blocking_send(Event::LedgerTampered(t.row.to_string()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(VerifyError::Tampered(_)) => {}
                Err(e) => tracing::warn!(ledger = %path, "cannot verify: {e}"),
            }
            if list {
                match ledger.list(None, None) {
                    Ok(list) => {
                        if events.blocking_send(Event::Releases(list)).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!("cannot read the ledger: {e}"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
