//! Where the API tokens' rows live: `tokens.db` in the server's data dir (SQLite, 0600), or
//! the `tokens` table of the PostgreSQL database (`storage.url`), so a token made through one
//! server authenticates on every other. Both keep only each token's SHA-256.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::tokens::{TokenError, TokenInfo};
use crate::storage::PgConfig;
use crate::storage::pg::{Migration, migrate_once};

/// A stored token as `verify` reads it.
pub struct TokenRow {
    pub name: String,
    pub role: String,
    pub hash: Vec<u8>,
    pub last_used: Option<String>,
    pub revoked: bool,
}

/// What differs between the stores: SQL and connections.
pub trait TokenTable: Send + Sync {
    /// Stores a new token, replacing a revoked one of that name. `Some(created_at)` of the
    /// live token of that name instead, when there is one (nothing written).
    fn insert(
        &self,
        name: &str,
        role: &str,
        hash: &[u8],
        now: &str,
        by: &str,
    ) -> Result<Option<String>, TokenError>;
    /// Every token, by name.
    fn list(&self) -> Result<Vec<TokenInfo>, TokenError>;
    /// Sets `revoked_at` of the live token `name`; how many rows (0 or 1).
    fn revoke(&self, name: &str, now: &str) -> Result<u64, TokenError>;
    /// Every token with its hash.
    fn rows(&self) -> Result<Vec<TokenRow>, TokenError>;
    /// Records a use.
    fn touch(&self, name: &str, now: &str) -> Result<(), TokenError>;
}

/// `tokens.db`: one connection.
pub struct SqliteTokens {
    conn: Mutex<Connection>,
}

impl SqliteTokens {
    /// Opens (or creates, 0600, never through a symlink) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteTokens, TokenError> {
        let io = |source| TokenError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                name TEXT PRIMARY KEY,
                role TEXT NOT NULL,
                hash BLOB NOT NULL,
                created_at TEXT NOT NULL,
                created_by TEXT NOT NULL,
                last_used TEXT,
                revoked_at TEXT
            );",
        )?;
        Ok(SqliteTokens {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TokenTable for SqliteTokens {
    fn insert(
        &self,
        name: &str,
        role: &str,
        hash: &[u8],
        now: &str,
        by: &str,
    ) -> Result<Option<String>, TokenError> {
        // One connection behind a mutex, and only the server opens the file: no race.
        let conn = self.conn();
        let live: Option<String> = conn
            .query_row(
                "SELECT created_at FROM tokens WHERE name = ?1 AND revoked_at IS NULL",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if live.is_some() {
            return Ok(live);
        }
        conn.execute(
            "INSERT OR REPLACE INTO tokens (name, role, hash, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, role, hash, now, by],
        )?;
        Ok(None)
    }

    fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT name, role, created_at, created_by, last_used, revoked_at
             FROM tokens ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TokenInfo {
                name: r.get(0)?,
                role: r.get(1)?,
                created_at: r.get(2)?,
                created_by: r.get(3)?,
                last_used: r.get(4)?,
                revoked_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoke(&self, name: &str, now: &str) -> Result<u64, TokenError> {
        Ok(self.conn().execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, now],
        )? as u64)
    }

    fn rows(&self) -> Result<Vec<TokenRow>, TokenError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT name, role, hash, last_used, revoked_at IS NOT NULL FROM tokens",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TokenRow {
                name: r.get(0)?,
                role: r.get(1)?,
                hash: r.get(2)?,
                last_used: r.get(3)?,
                revoked: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn touch(&self, name: &str, now: &str) -> Result<(), TokenError> {
        self.conn().execute(
            "UPDATE tokens SET last_used = ?2 WHERE name = ?1",
            params![name, now],
        )?;
        Ok(())
    }
}

/// The token table's schema (`opsdeck_migrations`, component `tokens`).
pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        sql: "CREATE TABLE tokens (
                name TEXT PRIMARY KEY,
                role TEXT NOT NULL,
                hash BYTEA NOT NULL,
                created_at TEXT NOT NULL,
                created_by TEXT NOT NULL,
                last_used TEXT,
                revoked_at TEXT);"
            .into(),
    }]
}

/// The `tokens` table of a PostgreSQL database; each call borrows a pooled connection.
pub struct PgTokens {
    cfg: PgConfig,
}

impl PgTokens {
    /// Brings the schema up to date (once per database and process).
    pub fn open(cfg: &PgConfig) -> Result<PgTokens, TokenError> {
        migrate_once(cfg, "tokens", &migrations()).map_err(TokenError::Postgres)?;
        Ok(PgTokens { cfg: cfg.clone() })
    }

    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, TokenError> {
        let c = self.cfg.connect().map_err(TokenError::Postgres)?;
        c.with(f)
            .map_err(|e| TokenError::Postgres(crate::storage::pg::describe(&e)))
    }
}

impl TokenTable for PgTokens {
    fn insert(
        &self,
        name: &str,
        role: &str,
        hash: &[u8],
        now: &str,
        by: &str,
    ) -> Result<Option<String>, TokenError> {
        self.with(|c| {
            // One statement: of two servers creating the same name, one inserts and the
            // other finds the live row (the conflict's WHERE leaves it alone).
            let inserted = c.query_opt(
                "INSERT INTO tokens (name, role, hash, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash,
                   created_at = excluded.created_at, created_by = excluded.created_by,
                   last_used = NULL, revoked_at = NULL
                 WHERE tokens.revoked_at IS NOT NULL
                 RETURNING name",
                &[&name, &role, &hash, &now, &by],
            )?;
            if inserted.is_some() {
                return Ok(None);
            }
            let at = c
                .query_opt(
                    "SELECT created_at FROM tokens WHERE name = $1 AND revoked_at IS NULL",
                    &[&name],
                )?
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_default();
            Ok(Some(at))
        })
    }

    fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT name, role, created_at, created_by, last_used, revoked_at
                 FROM tokens ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| TokenInfo {
                name: r.get(0),
                role: r.get(1),
                created_at: r.get(2),
                created_by: r.get(3),
                last_used: r.get(4),
                revoked_at: r.get(5),
            })
            .collect())
        })
    }

    fn revoke(&self, name: &str, now: &str) -> Result<u64, TokenError> {
        self.with(|c| {
            c.execute(
                "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &now],
            )
        })
    }

    fn rows(&self) -> Result<Vec<TokenRow>, TokenError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT name, role, hash, last_used, revoked_at IS NOT NULL FROM tokens",
                &[],
            )?
            .iter()
            .map(|r| TokenRow {
                name: r.get(0),
                role: r.get(1),
                hash: r.get(2),
                last_used: r.get(3),
                revoked: r.get(4),
            })
            .collect())
        })
    }

    fn touch(&self, name: &str, now: &str) -> Result<(), TokenError> {
        self.with(|c| {
            c.execute(
                "UPDATE tokens SET last_used = $2 WHERE name = $1",
                &[&name, &now],
            )
            .map(drop)
        })
    }
}
