//! Where the server keeps its state: SQLite files in the data dir (the default), or one
//! PostgreSQL database (`storage.url`), so that several servers can share it.
//!
//! Each kind of state has a store trait with an SQLite and a PostgreSQL implementation: the
//! release ledger (`release::ledger::LedgerStore`), the run history
//! (`export::history::HistoryStore`), the notification outbox (`notify::outbox::OutboxStore`),
//! the API tokens (`server::token_table::TokenTable`) and the scheduler's last-fired record
//! (`schedule::FiredStore`). With PostgreSQL, the leadership among servers is `leader.rs`.

pub mod leader;
pub mod migrate;
pub mod pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use pg::PgConfig;

/// A store call that failed (history, outbox).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Already worded; never holds the password.
    #[error("{0}")]
    Postgres(String),
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Postgres(pg::describe(&e))
    }
}

/// Where the release ledger lives.
#[derive(Debug, Clone)]
pub enum LedgerAt {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(Arc<PgConfig>),
}

impl LedgerAt {
    /// The ledger a configuration names: `storage.url` when set, else `releases.ledger`, else
    /// `<data dir>/releases.db`.
    pub fn of(cfg: &crate::config::Config, data_dir: &Path) -> LedgerAt {
        match &cfg.storage {
            Some(pg) => LedgerAt::Postgres(pg.clone()),
            None => LedgerAt::Sqlite(
                cfg.releases
                    .ledger
                    .clone()
                    .unwrap_or_else(|| data_dir.join("releases.db")),
            ),
        }
    }
}

/// The path, or the database without its password: fit for logs and errors.
impl std::fmt::Display for LedgerAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerAt::Sqlite(p) => write!(f, "{}", p.display()),
            LedgerAt::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}
