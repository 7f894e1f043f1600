//! The audit hash chain: every audit row stores the release as it was right after the row
//! (`release_snapshot`) and `hash = SHA-256(prev hash, the row, the snapshot)`. `verify` walks
//! the chain and compares every release with its last row's snapshot, so an audit row edited,
//! deleted or inserted by hand, and a release changed without an audit row, are all found.
//!
//! The hash input (all UTF-8, `\n`-separated):
//! `opsdeck-audit-v1`, the previous row's hash (64 `0`s for the first row), the JSON array
//! `[id, release_id, at, actor, sudo_user, ssh_client, from_status, to_status, note]` and the
//! snapshot: the JSON array of the release's columns as stored, `[id, service_name,
//! release_tag, rollback_to_tag, image, status, initiated_by, github_run_id,
//! github_action_link, github_ref, created_at, started_at, completed_at]`. The hash is
//! unkeyed: it finds edits made with plain SQL; someone who recomputes the whole chain is
//! found only by comparing the head (printed by `release verify`, logged by the server) with
//! an earlier record.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// The "previous hash" of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub const RELEASE_COLUMNS: &str =
    "id, service_name, release_tag, rollback_to_tag, image, status, initiated_by,
    github_run_id, github_action_link, github_ref, created_at, started_at, completed_at";
pub const AUDIT_COLUMNS: &str =
    "id, release_id, at, actor, sudo_user, ssh_client, from_status, to_status, note";

/// Where a ledger stops matching its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// An audit row, by its id.
    Audit(i64),
    /// A release row, by its id.
    Release(i64),
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Row::Audit(id) => write!(f, "audit row {id}"),
            Row::Release(id) => write!(f, "release {id}"),
        }
    }
}

/// The first row that does not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger tampered at {row}: {reason}")]
pub struct Tamper {
    pub row: Row,
    pub reason: String,
}

/// A ledger whose chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub audit_rows: u64,
    pub releases: u64,
    /// Id and hash of the last audit row (`None` for an empty ledger): compare with an earlier
    /// record to notice a chain recomputed from scratch.
    pub head: Option<(i64, String)>,
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ledger ok: {} audit rows, {} releases",
            self.audit_rows, self.releases
        )?;
        if let Some((id, hash)) = &self.head {
            write!(f, ", head row {id} sha256 {hash}")?;
        }
        Ok(())
    }
}

/// Why `verify` did not say yes.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Tampered(#[from] Tamper),
    #[error("the ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the ledger: {0}")]
    Postgres(String),
}

fn json(v: Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        Value::Real(r) => r.into(),
        Value::Text(t) => t.into(),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            serde_json::json!({ "blob": hex })
        }
    }
}

fn columns(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<String> {
    let vals = (0..n)
        .map(|i| r.get::<_, Value>(i).map(json))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(serde_json::Value::Array(vals).to_string())
}

/// The release's columns as stored, as the canonical JSON array.
pub fn snapshot(conn: &Connection, release_id: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        &format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = ?1"),
        params![release_id],
        |r| columns(r, 13),
    )
    .optional()
}

/// The hash of one row.
pub fn row_hash(prev: &str, audit_row: &str, snapshot: &str) -> String {
    let mut h = Sha256::new();
    for part in ["opsdeck-audit-v1", prev, audit_row, snapshot] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn head(conn: &Connection) -> rusqlite::Result<Option<(i64, Option<String>)>> {
    conn.query_row(
        "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Appends one audit row, chained; call inside the writing transaction, after the release
/// row has its new content.
#[allow(clippy::too_many_arguments)]
pub fn append(
    conn: &Connection,
    release_id: i64,
    at: &str,
    actor: &str,
    sudo_user: Option<&str>,
    ssh_client: Option<&str>,
    from: Option<&str>,
    to: &str,
    note: Option<&str>,
) -> rusqlite::Result<()> {
    // The id is chosen here (under the write lock) because the hash covers it and the audit
    // table allows no UPDATE afterwards.
    let (id, prev) = match head(conn)? {
        Some((id, hash)) => (id + 1, hash.unwrap_or_default()),
        None => (1, GENESIS.to_string()),
    };
    let snap = snapshot(conn, release_id)?.unwrap_or_else(|| "null".into());
    let row = serde_json::json!([
        id, release_id, at, actor, sudo_user, ssh_client, from, to, note
    ])
    .to_string();
    conn.execute(
        "INSERT INTO audit (id, release_id, at, actor, sudo_user, ssh_client, from_status,
                            to_status, note, release_snapshot, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            id,
            release_id,
            at,
            actor,
            sudo_user,
            ssh_client,
            from,
            to,
            note,
            snap,
            row_hash(&prev, &row, &snap)
        ],
    )
    .map(drop)
}

/// Schema 2: adds the chain and computes it once for the rows already there. Their snapshot is
/// the release as it is at migration (what it was earlier is not known). Runs inside the
/// caller's `BEGIN IMMEDIATE`.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE audit ADD COLUMN release_snapshot TEXT;
         ALTER TABLE audit ADD COLUMN hash TEXT;
         DROP TRIGGER IF EXISTS audit_no_update;",
    )?;
    let rows: Vec<(i64, i64, String)> = {
        let mut st = conn.prepare(&format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id"))?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, columns(r, 9)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut prev = GENESIS.to_string();
    for (id, release_id, row) in rows {
        let snap = snapshot(conn, release_id)?.unwrap_or_else(|| "null".into());
        let hash = row_hash(&prev, &row, &snap);
        conn.execute(
            "UPDATE audit SET release_snapshot = ?2, hash = ?3 WHERE id = ?1",
            params![id, snap, hash],
        )?;
        prev = hash;
    }
    conn.execute_batch(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;",
    )
}

/// Checks the chain, then every release against its last audit row. Names the first row that
/// does not match.
pub fn verify(conn: &Connection) -> Result<Verified, VerifyError> {
    // One read transaction: the audit and the releases are read from the same snapshot, or a
    // release committed between the two reads would look inserted outside opsdeck.
    let tx = conn.unchecked_transaction()?;
    let conn: &Connection = &tx;
    let mut walk = Walk::default();
    {
        let mut st = conn.prepare(&format!(
            "SELECT {AUDIT_COLUMNS}, release_snapshot, hash FROM audit ORDER BY id"
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let release_id = match r.get::<_, Value>(1)? {
                Value::Integer(i) => Some(i),
                _ => None,
            };
            walk.audit(
                r.get(0)?,
                release_id,
                &columns(r, 9)?,
                r.get(9)?,
                r.get(10)?,
            )?;
        }
    }
    let mut st = conn.prepare(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases ORDER BY id"
    ))?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        walk.release(r.get(0)?, &columns(r, 13)?)?;
    }
    Ok(walk.finish()?)
}

/// The check itself, fed the audit rows in id order, then the releases in id order, by either
/// store: the same rows give the same verdict and the same head on SQLite and PostgreSQL.
#[derive(Debug)]
pub struct Walk {
    /// release id -> (last audit row id, its snapshot)
    last: std::collections::BTreeMap<i64, (i64, String)>,
    prev: String,
    prev_id: Option<i64>,
    count: u64,
    head: Option<(i64, String)>,
    releases: u64,
}

impl Default for Walk {
    fn default() -> Self {
        Walk {
            last: Default::default(),
            prev: GENESIS.to_string(),
            prev_id: None,
            count: 0,
            head: None,
            releases: 0,
        }
    }
}

fn tamper(row: Row, reason: impl Into<String>) -> Tamper {
    Tamper {
        row,
        reason: reason.into(),
    }
}

impl Walk {
    /// The next audit row: its id, its release id (`None` when not a number), the canonical
    /// JSON of its columns (`audit_json`), its stored snapshot and hash.
    pub fn audit(
        &mut self,
        id: i64,
        release_id: Option<i64>,
        row: &str,
        snap: Option<String>,
        hash: Option<String>,
    ) -> Result<(), Tamper> {
        let (Some(snap), Some(hash)) = (snap, hash) else {
            return Err(tamper(Row::Audit(id), "no hash: written outside opsdeck"));
        };
        if row_hash(&self.prev, row, &snap) != hash {
            // Ids jump before this row: a deleted row rather than a changed one.
            let gap = self.prev_id.map_or(id != 1, |b| b != id - 1);
            let reason = if gap {
                "the row before it was deleted (the chain does not link)"
            } else {
                "its content or the row before it was changed (the hash does not match)"
            };
            return Err(tamper(Row::Audit(id), reason));
        }
        let Some(release_id) = release_id else {
            return Err(tamper(Row::Audit(id), "release_id is not a number"));
        };
        let snap_id = serde_json::from_str::<serde_json::Value>(&snap)
            .ok()
            .and_then(|v| v.get(0).and_then(|i| i.as_i64()));
        if snap_id != Some(release_id) {
            return Err(tamper(
                Row::Audit(id),
                format!("its snapshot is not of release {release_id}"),
            ));
        }
        self.last.insert(release_id, (id, snap));
        self.prev = hash.clone();
        self.prev_id = Some(id);
        self.head = Some((id, hash));
        self.count += 1;
        Ok(())
    }

    /// The next release: its id and the canonical JSON of its columns (`snapshot_json`).
    pub fn release(&mut self, id: i64, now: &str) -> Result<(), Tamper> {
        match self.last.remove(&id) {
            None => Err(tamper(
                Row::Release(id),
                "no audit row records it (inserted outside opsdeck)",
            )),
            Some((audit_id, snap)) if snap != now => Err(tamper(
                Row::Release(id),
                format!(
                    "changed without an audit row: {} differ from what audit row {audit_id} recorded",
                    differing(&snap, now)
                ),
            )),
            Some(_) => {
                self.releases += 1;
                Ok(())
            }
        }
    }

    /// The verdict once every row was seen.
    pub fn finish(self) -> Result<Verified, Tamper> {
        if let Some((release_id, (audit_id, _))) = self.last.into_iter().next() {
            return Err(tamper(
                Row::Release(release_id),
                format!("deleted: audit row {audit_id} records it"),
            ));
        }
        Ok(Verified {
            audit_rows: self.count,
            releases: self.releases,
            head: self.head,
        })
    }
}

/// The canonical JSON of a release's columns (`RELEASE_COLUMNS` order) for a store whose
/// columns are typed: the id and twelve texts, exactly as SQLite's dynamic values give it.
pub fn snapshot_json(id: i64, texts: &[Option<String>; 12]) -> String {
    let mut v = vec![serde_json::Value::from(id)];
    v.extend(texts.iter().map(|t| serde_json::json!(t)));
    serde_json::Value::Array(v).to_string()
}

/// The canonical JSON of an audit row's columns (`AUDIT_COLUMNS` order) for a typed store.
pub fn audit_json(id: i64, release_id: i64, texts: &[Option<String>; 7]) -> String {
    let mut v = vec![
        serde_json::Value::from(id),
        serde_json::Value::from(release_id),
    ];
    v.extend(texts.iter().map(|t| serde_json::json!(t)));
    serde_json::Value::Array(v).to_string()
}

/// The names of the columns that differ between two snapshots.
fn differing(then: &str, now: &str) -> String {
    const NAMES: [&str; 13] = [
        "id",
        "service_name",
        "release_tag",
        "rollback_to_tag",
        "image",
        "status",
        "initiated_by",
        "github_run_id",
        "github_action_link",
        "github_ref",
        "created_at",
        "started_at",
        "completed_at",
    ];
    let parse = |s: &str| -> Vec<serde_json::Value> { serde_json::from_str(s).unwrap_or_default() };
    let (a, b) = (parse(then), parse(now));
    let names: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| a.get(*i) != b.get(*i))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "its columns".into()
    } else {
        names.join(", ")
    }
}
