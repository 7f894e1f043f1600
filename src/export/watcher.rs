//! `ExportDirWatcher`: a notify watcher on the export directory, debounced, that reports a
//! fresh listing whenever files appear, vanish or are renamed, by anyone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use notify::RecursiveMode;
use notify_debouncer_mini::new_debouncer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::store::{ExportFile, ExportStore};
use crate::events::{Event, EventTx};

/// The export files at a moment, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirListing {
    pub files: Vec<ExportFile>,
    pub total_bytes: u64,
    pub at: DateTime<Utc>,
}

impl DirListing {
    /// Lists the store now (blocking).
    pub fn read(store: &ExportStore) -> std::io::Result<DirListing> {
        let files = store.list()?;
        Ok(DirListing {
            total_bytes: files.iter().map(|f| f.size).sum(),
            files,
            at: Utc::now(),
        })
    }
}

/// The watcher service.
pub struct ExportDirWatcher;

impl ExportDirWatcher {
    /// Watches `store`'s directory until `cancel` fires, sending `Event::ExportDir` after each
    /// burst of changes (quiet for `debounce`). Sends one listing at start.
    pub fn spawn(
        store: ExportStore,
        debounce: Duration,
        events: EventTx,
        cancel: CancellationToken,
    ) -> notify::Result<tokio::task::JoinHandle<()>> {
        std::fs::create_dir_all(store.dir()).map_err(notify::Error::io)?;
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let mut debouncer = new_debouncer(
            debounce,
            move |res: notify_debouncer_mini::DebounceEventResult| {
                match res {
                    // A full channel already means "list again": nothing is lost by dropping this.
                    Ok(_) => {
                        let _ = tx.try_send(());
                    }
                    Err(e) => tracing::warn!("export directory watcher: {e}"),
                }
            },
        )?;
        debouncer
            .watcher()
            .watch(store.dir(), RecursiveMode::NonRecursive)?;
        Ok(tokio::spawn(async move {
            let _keep_alive = debouncer;
            let mut previous: Option<DirListing> = None;
            let mut first = true;
            loop {
                if !first {
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        got = rx.recv() => if got.is_none() { break },
                    }
                }
                first = false;
                let s = store.clone();
                let listing = match tokio::task::spawn_blocking(move || DirListing::read(&s)).await
                {
                    Ok(Ok(l)) => l,
                    Ok(Err(e)) => {
                        tracing::warn!("cannot list {}: {e}", store.dir().display());
                        continue;
                    }
                    Err(_) => break,
                };
                if previous.as_ref().is_some_and(|p| p.files == listing.files) {
                    continue;
                }
                if let Some(prev) = &previous {
                    log_changes(prev, &listing);
                }
                previous = Some(listing.clone());
                if events.send(Event::ExportDir(listing)).await.is_err() {
                    break;
                }
            }
        }))
    }
}

fn log_changes(prev: &DirListing, now: &DirListing) {
    for f in &now.files {
        if !prev.files.iter().any(|p| p.path == f.path) {
            tracing::info!(file = %f.path.display(), "export file appeared");
        }
    }
    for p in &prev.files {
        if !now.files.iter().any(|f| f.path == p.path) {
            tracing::info!(file = %p.path.display(), "export file removed");
        }
    }
}
