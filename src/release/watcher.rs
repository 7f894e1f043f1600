//! `LedgerWatcher`: reports the release list whenever the ledger changes, by anyone (the CLI
//! from CI, another dashboard). Polls SQLite's cheap `data_version` once a second.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;
use crate::events::{Event, EventTx};

/// Spawns the watcher on a blocking thread (SQLite calls block).
pub fn spawn(
    path: PathBuf,
    events: EventTx,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let ledger = match Ledger::open(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = events.blocking_send(Event::ReleasesUnavailable(format!(
                    "{}: {e}",
                    path.display()
                )));
                return;
            }
        };
        let mut seen = None;
        while !cancel.is_cancelled() {
            if let Ok(v) = ledger.data_version()
                && seen != Some(v)
            {
                seen = Some(v);
                match ledger.list(None, None) {
                    Ok(list) => {
                        if events.blocking_send(Event::Releases(list)).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!("cannot read the ledger: {e}"),
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
}
