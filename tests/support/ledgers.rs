//! One ledger test, two stores: `both!(name)` runs `fn name(&TestLedger)` on an SQLite file
//! and on a PostgreSQL database of the throwaway cluster (`postgres.rs`; skipped with the
//! reason when none can start, unless OPSDECK_REQUIRE_POSTGRES=1).
#![allow(dead_code)]

use std::sync::Arc;

use opsdeck::release::Ledger;
use opsdeck::storage::{LedgerAt, PgConfig};

#[path = "postgres.rs"]
pub mod pg;

/// Where a test's ledger lives.
pub enum Store {
    Sqlite(tempfile::TempDir),
    Postgres(pg::Database),
}

/// A ledger location for one test, and a foreign writer for it.
pub struct TestLedger {
    pub store: Store,
    pub at: LedgerAt,
}

impl TestLedger {
    pub fn sqlite() -> TestLedger {
        let dir = tempfile::tempdir().unwrap();
        let at = LedgerAt::Sqlite(dir.path().join("releases.db"));
        TestLedger {
            store: Store::Sqlite(dir),
            at,
        }
    }

    /// `None` (the reason printed) when no PostgreSQL can start.
    pub fn postgres() -> Option<TestLedger> {
        let db = pg::database()?;
        let at = LedgerAt::Postgres(Arc::new(PgConfig::new(&db.url, None).unwrap()));
        Some(TestLedger {
            store: Store::Postgres(db),
            at,
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.store, Store::Postgres(_))
    }

    /// A new connection to the ledger, as another process would open it.
    pub fn open(&self) -> Ledger {
        Ledger::open_at(&self.at).unwrap()
    }

    /// Runs SQL as a foreign writer (`sqlite3`, `psql`). `DROP TRIGGER name` is given
    /// PostgreSQL's `ON audit`.
    pub fn sql(&self, statements: &str) -> Result<(), String> {
        match &self.store {
            Store::Sqlite(dir) => rusqlite::Connection::open(dir.path().join("releases.db"))
                .and_then(|c| c.execute_batch(statements))
                .map_err(|e| e.to_string()),
            Store::Postgres(db) => {
                let re = regex::Regex::new(r"DROP TRIGGER (\w+)").unwrap();
                let statements = re.replace_all(statements, "DROP TRIGGER $1 ON audit");
                db.connect()
                    .batch_execute(&statements)
                    .map_err(|e| opsdeck::storage::pg::describe(&e))
            }
        }
    }

    /// One text value from a query (SQLite or PostgreSQL).
    pub fn query_text(&self, query: &str) -> Option<String> {
        match &self.store {
            Store::Sqlite(dir) => rusqlite::Connection::open(dir.path().join("releases.db"))
                .unwrap()
                .query_row(query, [], |r| r.get(0))
                .unwrap(),
            Store::Postgres(db) => db.connect().query_one(query, &[]).unwrap().get(0),
        }
    }

    /// The config lines that put `opsdeck` on this ledger.
    pub fn config_toml(&self) -> String {
        match &self.at {
            LedgerAt::Sqlite(p) => format!("[releases]\nledger = {:?}\n", p.display().to_string()),
            LedgerAt::Postgres(pg) => format!("[storage]\nurl = {:?}\n", pg.url()),
        }
    }
}

/// `mod name { sqlite, postgres }` running `fn name(&TestLedger)` on each store.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::ledgers::TestLedger::sqlite());
            }
            #[test]
            fn postgres() {
                if let Some(l) = super::ledgers::TestLedger::postgres() {
                    super::$name(&l);
                }
            }
        }
    };
}
