//! `opsdeck storage migrate`: an SQLite ledger copied into an empty PostgreSQL one, row for
//! row (ids, times, snapshots and hashes as stored), then verified there: the copy must hold
//! the same number of rows and end on the same chain head as the source.

use std::io::Write;
use std::path::Path;

use rusqlite::types::Value;

use super::chain::{AUDIT_COLUMNS, RELEASE_COLUMNS, Verified};
use super::pg::{PgLedger, WRITE_LOCK};
use super::{LedgerStore, SqliteLedger};
use crate::storage::PgConfig;

/// What was copied: the source's verdict, and the copy's (equal, or the copy failed).
#[derive(Debug, Clone)]
pub struct Copied {
    pub source: Verified,
    pub copy: Verified,
}

/// Copies the ledger at `from` into the (empty) ledger at `to` and verifies the copy.
/// A source that does not verify is not copied: its tampering would travel along.
pub fn sqlite_to_postgres(from: &Path, to: &PgConfig) -> Result<Copied, String> {
    if !from.exists() {
        return Err(format!("{}: no such ledger", from.display()));
    }
    let source = SqliteLedger::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let verified = source
        .verify()
        .map_err(|e| format!("{} does not verify, nothing copied: {e}", from.display()))?;
    let target = PgLedger::open(to).map_err(|e| e.to_string())?;
    let conn = source
        .sqlite()
        .ok_or_else(|| format!("{} is not an SQLite ledger", from.display()))?;
    // One read transaction on the source: the rows of the verdict above, unless a writer
    // came in between, which the final comparison would catch.
    let read = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    let releases = rows(
        &read,
        &format!("SELECT {RELEASE_COLUMNS} FROM releases ORDER BY id"),
        13,
    )?;
    let audit = rows(
        &read,
        &format!("SELECT {AUDIT_COLUMNS}, release_snapshot, hash FROM audit ORDER BY id"),
        11,
    )?;
    drop(read);
    target
        .write_raw(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
            let n: i64 = tx
                .query_one(
                    "SELECT (SELECT count(*) FROM releases) + (SELECT count(*) FROM audit)",
                    &[],
                )?
                .get(0);
            if n > 0 {
                return Ok(Err(format!(
                    "{to} already holds a ledger ({n} rows); copy into an empty database"
                )));
            }
            copy_in(
                tx,
                &format!("COPY releases ({RELEASE_COLUMNS}) FROM STDIN"),
                &releases,
            )?;
            copy_in(
                tx,
                &format!("COPY audit ({AUDIT_COLUMNS}, release_snapshot, hash) FROM STDIN"),
                &audit,
            )?;
            Ok(Ok(()))
        })
        .map_err(|e| format!("copying into {to}: {e}"))??;
    let copy = target
        .verify()
        .map_err(|e| format!("the copy in {to} does not verify: {e}"))?;
    if copy != verified {
        return Err(format!(
            "the copy in {to} differs from the source: {copy} against {verified}"
        ));
    }
    Ok(Copied {
        source: verified,
        copy,
    })
}

/// Every row as COPY text lines.
fn rows(conn: &rusqlite::Connection, query: &str, n: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut st = conn.prepare(query).map_err(|e| e.to_string())?;
    let mut rows = st.query([]).map_err(|e| e.to_string())?;
    while let Some(r) = rows.next().map_err(|e| e.to_string())? {
        for i in 0..n {
            if i > 0 {
                out.push(b'\t');
            }
            match r.get::<_, Value>(i).map_err(|e| e.to_string())? {
                Value::Null => out.extend_from_slice(b"\\N"),
                Value::Integer(v) => out.extend_from_slice(v.to_string().as_bytes()),
                Value::Real(v) => out.extend_from_slice(v.to_string().as_bytes()),
                Value::Text(t) => escape(&mut out, &t),
                Value::Blob(_) => {
                    return Err(format!(
                        "a blob in column {i} of `{query}`: not a ledger opsdeck wrote"
                    ));
                }
            }
        }
        out.push(b'\n');
    }
    Ok(out)
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
