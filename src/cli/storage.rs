//! `opsdeck storage migrate`: a server's SQLite state (ledger, run history, outbox, API
//! tokens) copied into PostgreSQL and verified there (`storage::migrate`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::{Cli, EXIT_USAGE};
use crate::storage::PgConfig;

/// The storage subcommands.
#[derive(Debug, Subcommand)]
pub enum StorageCmd {
    /// Copy a server's SQLite state into an empty PostgreSQL database: the release ledger
    /// (releases and audit, the hash chain as it is), the run history, the notification
    /// outbox (queued messages stay queued) and the API tokens (their hashes). One
    /// transaction: refused, nothing written, when any target table holds rows. Verified
    /// before the commit (the same row count and SHA-256 over the rows of every table) and
    /// the ledger's chain again after it (same rows, same head); the source ledger is
    /// verified first and not copied when it does not verify. Stop the server first.
    Migrate {
        /// sqlite:DATA_DIR (releases.db, history.db, notify.db and tokens.db in it, each
        /// skipped when missing) or sqlite:LEDGER (that ledger, and the others beside it).
        #[arg(long, value_name = "sqlite:PATH")]
        from: String,
        /// The database: postgres://… without a password (default: storage.url).
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// A file holding the database password (default: storage.password_file, when --to
        /// is storage.url or not given).
        #[arg(long, value_name = "PATH")]
        password_file: Option<PathBuf>,
    },
}

/// Runs a storage subcommand.
pub async fn run(cli: &Cli, cmd: &StorageCmd) -> ExitCode {
    let StorageCmd::Migrate {
        from,
        to,
        password_file,
    } = cmd;
    let usage = |m: String| {
        eprintln!("error: {m}");
        ExitCode::from(EXIT_USAGE)
    };
    let Some(path) = from.strip_prefix("sqlite:") else {
        return usage(format!("--from `{from}` must be sqlite:PATH"));
    };
    let from = match crate::storage::migrate::Source::at(Path::new(path)) {
        Ok(s) => s,
        Err(m) => return usage(format!("--from: {m}")),
    };
    let cfg = match super::load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let target = match target(
        cfg.storage.as_ref(),
        to.as_deref(),
        password_file.as_deref(),
    ) {
        Ok(t) => t,
        Err(m) => return usage(m),
    };
    let shown = target.to_string();
    let done = tokio::task::spawn_blocking(move || {
        crate::storage::migrate::sqlite_to_postgres(&from, &target)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match done {
        Ok(m) => {
            println!("copied into {shown}:");
            for s in &m.stores {
                println!("{s}");
            }
            if let Some(v) = &m.ledger {
                println!("{v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", crate::sanitize::clean(&e));
            ExitCode::FAILURE
        }
    }
}

/// The database to copy into: `--to` with `--password-file`, else `storage.url` with its
/// password.
fn target(
    configured: Option<&Arc<PgConfig>>,
    to: Option<&str>,
    password_file: Option<&Path>,
) -> Result<PgConfig, String> {
    let password = match password_file {
        Some(p) => Some(read_password(p)?),
        None => None,
    };
    match (to, configured) {
        (Some(url), Some(c)) if url == c.url() && password.is_none() => Ok(c.as_ref().clone()),
        (Some(url), _) => PgConfig::new(url, password).map_err(|e| format!("--to: {e}")),
        (None, Some(c)) => match password {
            Some(p) => PgConfig::new(c.url(), Some(p)).map_err(|e| format!("storage.url: {e}")),
            None => Ok(c.as_ref().clone()),
        },
        (None, None) => Err("no database: give --to postgres://… or set storage.url".into()),
    }
}

fn read_password(p: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(p).map_err(|e| format!("--password-file {}: {e}", p.display()))?;
    let pw = text.strip_suffix('\n').unwrap_or(&text).to_string();
    if pw.is_empty() {
        return Err(format!("--password-file {} is empty", p.display()));
    }
    crate::sanitize::register_secret(&pw);
    Ok(pw)
}
