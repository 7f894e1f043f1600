//! `opsdeck storage migrate`: a server's SQLite state copied into an empty PostgreSQL
//! database and verified there. Four stores, each a file of the data dir: the release ledger
//! (`releases.db`), the run history (`history.db`), the notification outbox (`notify.db`) and
//! the API tokens (`tokens.db`). A missing file is skipped (said so); the ledger's chain is
//! verified on the source first and not copied when it does not verify.
//!
//! One PostgreSQL transaction for everything: the write locks, then every target table must
//! be empty (else nothing is written), then `COPY` of each table as stored (ids, times,
//! hashes), the serial sequences moved past the copied ids, and, before the commit, every
//! table read back: the same row count and the same SHA-256 over its rows in key order as the
//! source. After the commit the copied ledger's chain is verified again and must end on the
//! source's head.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::PgConfig;
use super::pg::describe;
use crate::release::ledger::chain::Verified;
use crate::release::ledger::pg::{PgLedger, WRITE_LOCK};
use crate::release::ledger::{LedgerStore, SqliteLedger};

/// How a column is read on both sides (as text, for the copy and the digest alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Integers and text: `CAST(c AS TEXT)` / `c::text`.
    Value,
    /// A blob / bytea: lower-case hex.
    Bytes,
    /// SQLite's 0/1 integer, PostgreSQL's boolean: "0" or "1".
    Bool,
}

use Kind::{Bool, Bytes, Value};

/// One table: its name on each side, its columns, the key the rows are read in order of.
struct Table {
    sqlite: &'static str,
    pg: &'static str,
    /// What the summary line calls one row and several.
    noun: (&'static str, &'static str),
    columns: &'static [(&'static str, Kind)],
    /// An integer `id` (ordered numerically; a BIGSERIAL on PostgreSQL when `serial`), or a
    /// text key (ordered by bytes on both sides).
    key: &'static str,
    numeric_key: bool,
    serial: bool,
    /// A column PostgreSQL has and SQLite does not, filled with this process's host name
    /// (the runs' `host`: the pids in the file are this host's). Not part of the digest.
    host_column: Option<&'static str>,
    /// Count the rows by this column's value in the summary (the deliveries' state).
    tally: Option<usize>,
}

/// One store: its file in the data dir and its tables.
struct Store {
    name: &'static str,
    file: &'static str,
    tables: &'static [Table],
}

const LEDGER: Store = Store {
    name: "ledger",
    file: "releases.db",
    tables: &[
        Table {
            sqlite: "releases",
            pg: "releases",
            noun: ("release", "releases"),
            columns: &[
                ("id", Value),
                ("service_name", Value),
                ("release_tag", Value),
                ("rollback_to_tag", Value),
                ("image", Value),
                ("status", Value),
                ("initiated_by", Value),
                ("github_run_id", Value),
                ("github_action_link", Value),
                ("github_ref", Value),
                ("created_at", Value),
                ("started_at", Value),
                ("completed_at", Value),
            ],
            key: "id",
            numeric_key: true,
            // Ids are chosen as SQLite chooses them (largest + 1, under the write lock).
            serial: false,
            host_column: None,
            tally: None,
        },
        Table {
            sqlite: "audit",
            pg: "audit",
            noun: ("audit row", "audit rows"),
            columns: &[
                ("id", Value),
                ("release_id", Value),
                ("at", Value),
                ("actor", Value),
                ("sudo_user", Value),
                ("ssh_client", Value),
                ("from_status", Value),
                ("to_status", Value),
                ("note", Value),
                ("release_snapshot", Value),
                ("hash", Value),
            ],
            key: "id",
            numeric_key: true,
            serial: false,
            host_column: None,
            tally: None,
        },
    ],
};

const HISTORY: Store = Store {
    name: "history",
    file: crate::paths::HISTORY_DB,
    tables: &[
        Table {
            sqlite: "runs",
            pg: "runs",
            noun: ("run", "runs"),
            columns: &[
                ("id", Value),
                ("job", Value),
                ("trigger", Value),
                ("scheduled_for", Value),
                ("started_at", Value),
                ("finished_at", Value),
                ("outcome", Value),
                ("detail", Value),
                ("pid", Value),
            ],
            key: "id",
            numeric_key: true,
            serial: true,
            host_column: Some("host"),
            tally: None,
        },
        Table {
            sqlite: "attempts",
            pg: "attempts",
            noun: ("attempt", "attempts"),
            columns: &[
                ("id", Value),
                ("run_id", Value),
                ("group_name", Value),
                ("attempt", Value),
                ("max_attempts", Value),
                ("started_at", Value),
                ("finished_at", Value),
                ("outcome", Value),
                ("bytes", Value),
                ("rows", Value),
                ("file", Value),
                ("error", Value),
            ],
            key: "id",
            numeric_key: true,
            serial: true,
            host_column: None,
            tally: None,
        },
    ],
};

const OUTBOX: Store = Store {
    name: "outbox",
    file: "notify.db",
    tables: &[
        Table {
            sqlite: "events",
            pg: "notify_events",
            noun: ("event", "events"),
            columns: &[
                ("id", Value),
                ("kind", Value),
                ("body", Value),
                ("created_at", Value),
            ],
            key: "id",
            numeric_key: true,
            serial: true,
            host_column: None,
            tally: None,
        },
        Table {
            sqlite: "deliveries",
            pg: "notify_deliveries",
            noun: ("delivery", "deliveries"),
            columns: &[
                ("id", Value),
                ("event_id", Value),
                ("sink", Value),
                ("state", Value),
                ("attempts", Value),
                ("next_at", Value),
                ("created_at", Value),
                ("updated_at", Value),
                ("last_error", Value),
            ],
            key: "id",
            numeric_key: true,
            serial: true,
            host_column: None,
            tally: Some(3),
        },
        Table {
            sqlite: "export_groups",
            pg: "notify_export_groups",
            noun: ("export group", "export groups"),
            columns: &[("grp", Value), ("failing", Bool)],
            key: "grp",
            numeric_key: false,
            serial: false,
            host_column: None,
            tally: None,
        },
    ],
};

const TOKENS: Store = Store {
    name: "tokens",
    file: crate::server::tokens::TOKENS_DB,
    tables: &[Table {
        sqlite: "tokens",
        pg: "tokens",
        noun: ("token", "tokens"),
        columns: &[
            ("name", Value),
            ("role", Value),
            ("hash", Bytes),
            ("created_at", Value),
            ("created_by", Value),
            ("last_used", Value),
            ("revoked_at", Value),
        ],
        key: "name",
        numeric_key: false,
        serial: false,
        host_column: None,
        tally: None,
    }],
};

const STORES: [&Store; 4] = [&LEDGER, &HISTORY, &OUTBOX, &TOKENS];

/// Where the SQLite state is: `sqlite:DATA_DIR` (the four files in it) or `sqlite:LEDGER`
/// (that ledger, and the other files beside it, where a server with the default paths keeps
/// them).
#[derive(Debug, Clone)]
pub struct Source {
    pub dir: PathBuf,
    pub ledger: PathBuf,
}

impl Source {
    /// From the path after `sqlite:`; it must exist.
    pub fn at(path: &Path) -> Result<Source, String> {
        if path.is_dir() {
            return Ok(Source {
                dir: path.to_path_buf(),
                ledger: path.join(LEDGER.file),
            });
        }
        if !path.is_file() {
            return Err(format!("{}: no such ledger or data dir", path.display()));
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(Source {
            dir: dir.to_path_buf(),
            ledger: path.to_path_buf(),
        })
    }

    fn file_of(&self, store: &Store) -> PathBuf {
        if store.name == LEDGER.name {
            self.ledger.clone()
        } else {
            self.dir.join(store.file)
        }
    }
}

/// What happened to one store.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Its file was not there.
    Skipped { store: &'static str, path: PathBuf },
    /// Copied and verified: rows per table (`(noun, count)`), and the tallied states.
    Copied {
        store: &'static str,
        tables: Vec<((&'static str, &'static str), u64)>,
        tally: Vec<(String, u64)>,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Skipped { store, path } => {
                write!(f, "{store}: skipped, no {}", path.display())
            }
            Outcome::Copied {
                store,
                tables,
                tally,
            } => {
                write!(f, "{store}: ")?;
                for (i, (noun, n)) in tables.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{n} {}", if *n == 1 { noun.0 } else { noun.1 })?;
                    if noun.1 == "deliveries" && !tally.is_empty() {
                        let parts: Vec<String> =
                            tally.iter().map(|(s, n)| format!("{n} {s}")).collect();
                        write!(f, " ({})", parts.join(", "))?;
                    }
                }
                write!(f, " copied, verified")
            }
        }
    }
}

/// The whole copy: each store's outcome, in order (ledger, history, outbox, tokens), and
/// the ledger chain's verdict on the copy when a ledger was copied.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub stores: Vec<Outcome>,
    pub ledger: Option<Verified>,
}

/// One table read from one side: its rows as COPY text, their count and digest.
struct Read {
    copy: Vec<u8>,
    rows: u64,
    digest: [u8; 32],
    tally: Vec<(String, u64)>,
}

/// Copies every store found at `source` into `to` (which must hold none of their rows) and
/// verifies the copy.
pub fn sqlite_to_postgres(source: &Source, to: &PgConfig) -> Result<Migrated, String> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    // Read (and for the ledger, verify) every source before touching the database.
    let mut found: Vec<(&Store, Vec<Read>)> = Vec::new();
    let mut outcomes: Vec<Option<Outcome>> = Vec::new();
    let mut source_chain = None;
    for store in STORES {
        let path = source.file_of(store);
        if !path.is_file() {
            if store.name == LEDGER.name && path != source.dir.join(LEDGER.file) {
                return Err(format!("{}: no such ledger", path.display()));
            }
            outcomes.push(Some(Outcome::Skipped {
                store: store.name,
                path,
            }));
            continue;
        }
        if store.name == LEDGER.name {
            let l = SqliteLedger::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            source_chain =
                Some(l.verify().map_err(|e| {
                    format!("{} does not verify, nothing copied: {e}", path.display())
                })?);
        }
        found.push((store, read_sqlite(&path, store, &host)?));
        outcomes.push(None);
    }
    if found.is_empty() {
        return Err(format!(
            "no {}, {}, {} or {} in {}: nothing to copy",
            LEDGER.file,
            HISTORY.file,
            OUTBOX.file,
            TOKENS.file,
            source.dir.display()
        ));
    }

    // The schemas, as a server would create them at start.
    for (store, _) in &found {
        open_target(store, to)?;
    }

    let client = to.connect()?;
    let copied: Result<Vec<Outcome>, String> = client.with(|c| {
        let pg = |e: postgres::Error| format!("copying into {to}: {}", describe(&e));
        let mut tx = c.transaction().map_err(pg)?;
        // The writers' locks, in the order the server takes them, then the tables.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .map_err(pg)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&crate::notify::outbox::pg::ENQUEUE_LOCK],
        )
        .map_err(pg)?;
        let all: Vec<&str> = found
            .iter()
            .flat_map(|(s, _)| s.tables.iter().map(|t| t.pg))
            .collect();
        tx.batch_execute(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", all.join(", ")))
            .map_err(pg)?;
        let mut full = Vec::new();
        for t in &all {
            let n: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .map_err(pg)?
                .get(0);
            if n > 0 {
                full.push(format!("{t} holds {n} rows"));
            }
        }
        if !full.is_empty() {
            return Err(format!(
                "{to} is not empty ({}); storage migrate copies into an empty database, \
                 nothing copied",
                full.join(", ")
            ));
        }
        let mut done = Vec::new();
        for (store, reads) in &found {
            let mut tables = Vec::new();
            let mut tally = Vec::new();
            for (t, src) in store.tables.iter().zip(reads) {
                let mut cols: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
                cols.extend(t.host_column);
                copy_in(
                    &mut tx,
                    &format!("COPY {} ({}) FROM STDIN", t.pg, cols.join(", ")),
                    &src.copy,
                )
                .map_err(pg)?;
                if t.serial {
                    tx.execute(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{0}', '{1}'),
                                    COALESCE((SELECT max({1}) FROM {0}), 0) + 1, false)",
                            t.pg, t.key
                        ),
                        &[],
                    )
                    .map_err(pg)?;
                }
                let back = read_pg(&mut tx, t).map_err(pg)?;
                if back.rows != src.rows || back.digest != src.digest {
                    return Err(format!(
                        "{}: the copy of {} differs from the source ({} rows, sha256 {} \
                         against {} rows, sha256 {}); nothing copied",
                        store.name,
                        t.sqlite,
                        back.rows,
                        hex(&back.digest),
                        src.rows,
                        hex(&src.digest)
                    ));
                }
                tables.push((t.noun, src.rows));
                tally.extend(src.tally.iter().cloned());
            }
            done.push(Outcome::Copied {
                store: store.name,
                tables,
                tally,
            });
        }
        tx.commit().map_err(pg)?;
        Ok(done)
    });
    drop(client);
    let mut copied = copied?.into_iter();
    let stores = outcomes
        .into_iter()
        .filter_map(|o| o.or_else(|| copied.next()))
        .collect();

    // The chain again, on the committed copy: the same rows and head as the source.
    let ledger = match source_chain {
        Some(verified) => {
            let copy = PgLedger::open(to)
                .map_err(|e| e.to_string())
                .and_then(|l| l.verify().map_err(|e| e.to_string()))
                .map_err(|e| format!("the copy in {to} does not verify: {e}"))?;
            if copy != verified {
                return Err(format!(
                    "the copy in {to} differs from the source: {copy} against {verified}"
                ));
            }
            Some(copy)
        }
        None => None,
    };
    Ok(Migrated { stores, ledger })
}

/// Creates (migrates) a store's tables in the target, as the server does at start.
fn open_target(store: &Store, to: &PgConfig) -> Result<(), String> {
    let r = match store.name {
        "ledger" => PgLedger::open(to).map(drop).map_err(|e| e.to_string()),
        "history" => crate::export::RunHistory::open_pg(to)
            .map(drop)
            .map_err(|e| e.to_string()),
        "outbox" => crate::notify::outbox::Outbox::open_pg(to)
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => crate::server::tokens::TokenStore::open_for(Some(to), Path::new("."))
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    r.map_err(|e| format!("the {} tables in {to}: {e}", store.name))
}

/// Every table of `store` in the SQLite file at `path`, in one read transaction. A column
/// an older file does not have reads as NULL; a table it does not have, as empty.
fn read_sqlite(path: &Path, store: &Store, host: &str) -> Result<Vec<Read>, String> {
    let err = |e: rusqlite::Error| format!("{}: {e}", path.display());
    let conn = rusqlite::Connection::open(path).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    let tx = conn.unchecked_transaction().map_err(err)?;
    let mut out = Vec::new();
    for t in store.tables {
        let have: Vec<String> = {
            let mut st = tx
                .prepare("SELECT name FROM pragma_table_info(?1)")
                .map_err(err)?;
            st.query_map([t.sqlite], |r| r.get(0))
                .map_err(err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(err)?
        };
        let mut read = Reader::new(t, host);
        if !have.is_empty() {
            let exprs: Vec<String> = t
                .columns
                .iter()
                .map(|(c, k)| match (have.iter().any(|h| h == c), k) {
                    (false, _) => "NULL".to_string(),
                    (true, Bytes) => format!("lower(hex({c}))"),
                    (true, _) => format!("CAST({c} AS TEXT)"),
                })
                .collect();
            // The key qualified: unqualified, it could name the output column (text).
            let q = format!(
                "SELECT {} FROM {1} ORDER BY {1}.{2}",
                exprs.join(", "),
                t.sqlite,
                t.key
            );
            let mut st = tx.prepare(&q).map_err(err)?;
            let mut rows = st.query([]).map_err(err)?;
            while let Some(r) = rows.next().map_err(err)? {
                let mut values = Vec::with_capacity(t.columns.len());
                for i in 0..t.columns.len() {
                    values.push(r.get::<_, Option<String>>(i).map_err(err)?);
                }
                read.row(&values);
            }
        }
        out.push(read.done());
    }
    Ok(out)
}

/// A table read back from PostgreSQL with the same text forms as from SQLite.
fn read_pg(tx: &mut postgres::Transaction<'_>, t: &Table) -> Result<Read, postgres::Error> {
    let exprs: Vec<String> = t
        .columns
        .iter()
        .map(|(c, k)| match k {
            Value => format!("{c}::text"),
            Bytes => format!("encode({c}, 'hex')"),
            Bool => format!("{c}::int::text"),
        })
        .collect();
    // The key qualified: unqualified, it would name the output column `id::text`.
    let order = if t.numeric_key {
        format!("{}.{}", t.pg, t.key)
    } else {
        format!("{}.{} COLLATE \"C\"", t.pg, t.key)
    };
    let q = format!("SELECT {} FROM {} ORDER BY {order}", exprs.join(", "), t.pg);
    let mut read = Reader::new(t, "");
    for r in tx.query(&q, &[])? {
        let values: Vec<Option<String>> = (0..t.columns.len()).map(|i| r.get(i)).collect();
        read.row(&values);
    }
    Ok(read.done())
}

/// Builds a `Read` row by row.
struct Reader<'a> {
    table: &'a Table,
    host: &'a str,
    read: Read,
    hash: Sha256,
}

impl<'a> Reader<'a> {
    fn new(table: &'a Table, host: &'a str) -> Self {
        Reader {
            table,
            host,
            read: Read {
                copy: Vec::new(),
                rows: 0,
                digest: [0; 32],
                tally: Vec::new(),
            },
            hash: Sha256::new(),
        }
    }

    fn row(&mut self, values: &[Option<String>]) {
        let out = &mut self.read.copy;
        for (i, (v, (_, kind))) in values.iter().zip(self.table.columns).enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match v {
                None => {
                    out.extend_from_slice(b"\\N");
                    self.hash.update([0u8]);
                }
                Some(s) => {
                    if *kind == Bytes {
                        // bytea's hex input, its backslash escaped for COPY.
                        out.extend_from_slice(b"\\\\x");
                    }
                    escape(out, s);
                    self.hash.update([1u8]);
                    self.hash.update((s.len() as u64).to_le_bytes());
                    self.hash.update(s.as_bytes());
                }
            }
        }
        if self.table.host_column.is_some() {
            out.push(b'\t');
            escape(out, self.host);
        }
        out.push(b'\n');
        self.read.rows += 1;
        if let Some(i) = self.table.tally {
            let state = values
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "null".into());
            match self.read.tally.iter_mut().find(|(s, _)| *s == state) {
                Some((_, n)) => *n += 1,
                None => self.read.tally.push((state, 1)),
            }
        }
    }

    fn done(mut self) -> Read {
        self.read.digest = self.hash.finalize().into();
        self.read.tally.sort();
        self.read
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// COPY's text format: backslash, tab, newline and carriage return escaped.
fn escape(out: &mut Vec<u8>, t: &str) {
    for b in t.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
}

fn copy_in(
    tx: &mut postgres::Transaction<'_>,
    statement: &str,
    data: &[u8],
) -> Result<(), postgres::Error> {
    let mut w = tx.copy_in(statement)?;
    // A write error here is the server's, reported again by finish.
    let _ = w.write_all(data);
    w.finish().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_its_key_among_its_columns_and_the_tally_names_a_column() {
        for s in STORES {
            for t in s.tables {
                assert!(t.columns.iter().any(|(c, _)| *c == t.key), "{}", t.pg);
                assert!(t.tally.is_none_or(|i| i < t.columns.len()), "{}", t.pg);
                assert!(!t.serial || t.numeric_key, "{}", t.pg);
            }
        }
    }

    #[test]
    fn the_digest_tells_null_from_empty_and_moved_boundaries() {
        let t = &TOKENS.tables[0];
        let digest = |rows: &[&[Option<&str>]]| {
            let mut r = Reader::new(t, "");
            for row in rows {
                let v: Vec<Option<String>> = row.iter().map(|v| v.map(String::from)).collect();
                r.row(&v);
            }
            r.done().digest
        };
        let a = digest(&[&[Some("ab"), Some("c"), None]]);
        assert_ne!(a, digest(&[&[Some("a"), Some("bc"), None]]));
        assert_ne!(a, digest(&[&[Some("ab"), Some("c"), Some("")]]));
        assert_eq!(a, digest(&[&[Some("ab"), Some("c"), None]]));
    }
}
