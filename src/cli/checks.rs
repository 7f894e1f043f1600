//! `opsdeck check` beyond the config and TestOps: the run history, the release ledger and
//! the Docker engine, so a problem shows here before it stops the dashboard or a deploy.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::config::{Config, DeployerKind};

/// Runs the extra checks, one `line(ok, what, detail)` each.
pub async fn run(cfg: &Config, data_dir: &Path, line: &mut impl FnMut(bool, &str, String)) {
    match &cfg.storage {
        // In the database: migrated and read as the server would.
        Some(pg) => {
            let pg = pg.clone();
            let checked = tokio::task::spawn_blocking(move || {
                crate::export::RunHistory::open_pg(&pg)
                    .and_then(|h| h.recent_runs("export", 1))
                    .map(|_| format!("{pg}: the run history, outbox and tokens tables"))
                    .map_err(|e| format!("{pg}: {e}"))
                    .and_then(|ok| {
                        crate::notify::Outbox::open_pg(&pg)
                            .map_err(|e| format!("{pg}: the outbox: {e}"))?;
                        crate::server::tokens::TokenStore::open_for(Some(&pg), Path::new("."))
                            .map_err(|e| format!("{pg}: {e}"))?;
                        Ok(ok)
                    })
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match checked {
                Ok(ok) => line(true, "history", ok),
                Err(e) => line(false, "history", e),
            }
        }
        None => sqlite_line(
            line,
            "history",
            &data_dir.join(crate::paths::HISTORY_DB),
            "it will be moved aside and a new one started at the next start",
        ),
    }
    match crate::storage::LedgerAt::of(cfg, data_dir) {
        crate::storage::LedgerAt::Sqlite(ledger) => sqlite_line(
            line,
            "releases.ledger",
            &ledger,
            "move it aside to start a new one",
        ),
        at @ crate::storage::LedgerAt::Postgres(_) => {
            // Connects, migrates (as the server would at start) and checks the chain.
            let checked = tokio::task::spawn_blocking(move || {
                let ledger = crate::release::Ledger::open_at(&at).map_err(|e| e.to_string())?;
                ledger
                    .verify()
                    .map(|v| format!("{at}: {v}"))
                    .map_err(|e| format!("{at}: {e}"))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match checked {
                Ok(ok) => line(true, "storage.url", ok),
                Err(e) => line(false, "storage.url", e),
            }
        }
    }
    let wants_docker = (cfg.releases.deployer == DeployerKind::Swarm
        && !cfg.releases.services.is_empty())
        || cfg
            .logs
            .sources
            .iter()
            .flatten()
            .any(|s| s.service.is_some());
    if wants_docker {
        let probe = async {
            let docker = crate::release::deploy::swarm::SwarmDeployer::docker().await?;
            docker
                .version()
                .await
                .map(|v| v.version.unwrap_or_default())
                .map_err(|e| format!("cannot reach the Docker engine: {e}"))
        };
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(v)) => line(true, "docker", format!("engine {v} reachable")),
            Ok(Err(e)) => line(false, "docker", e),
            Err(_) => line(
                false,
                "docker",
                "the engine did not answer within 5 s".into(),
            ),
        }
    }
}

/// A missing database is fine (made on first use); an unreadable or corrupt one is not.
fn sqlite_line(line: &mut impl FnMut(bool, &str, String), what: &str, path: &Path, remedy: &str) {
    if !path.exists() {
        line(true, what, format!("{} (not created yet)", path.display()));
        return;
    }
    let checked = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)));
    match checked {
        Ok(r) if r == "ok" => line(true, what, format!("{} is intact", path.display())),
        Ok(r) => line(
            false,
            what,
            format!("{} is corrupt ({r}); {remedy}", path.display()),
        ),
        Err(e) => line(
            false,
            what,
            format!(
                "{} is unreadable or corrupt ({e}); {remedy}",
                path.display()
            ),
        ),
    }
}
