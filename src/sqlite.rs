//! SQLite set-up shared by the run history and the release ledger.

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

/// Switches to WAL. Two processes opening a new database at the same moment can find it
/// locked while the other switches; the busy handler does not cover that case, so retry for
/// a few seconds.
pub fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let start = Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy
                    && start.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    /// Many processes' worth of connections opening one new history and ledger at once.
    #[test]
    fn concurrent_first_opens_all_succeed() {
        // A race: repeat it on fresh files so a regression shows on most runs.
        for _ in 0..10 {
            race_once();
        }
    }

    fn race_once() {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("history.db");
        let ledger = dir.path().join("releases.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (h, l, b) = (history.clone(), ledger.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    let hist = crate::export::RunHistory::open(&h)
                        .map(drop)
                        .map_err(|e| e.to_string());
                    let ledg = crate::release::Ledger::open(&l)
                        .map(drop)
                        .map_err(|e| e.to_string());
                    (hist, ledg)
                })
            })
            .collect();
        for h in handles {
            let (hist, ledg) = h.join().unwrap();
            assert!(hist.is_ok(), "{hist:?}");
            assert!(ledg.is_ok(), "{ledg:?}");
        }
    }
}
