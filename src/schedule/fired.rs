//! Where the scheduler records the instant each job last fired for: the state file in the
//! state dir (one server), or PostgreSQL (`storage.url`, several servers), where recording an
//! instant is a compare-and-set on (job, previous instant). A scheduler fires only the
//! instants it managed to record, so two servers (say a new leader and an old one that has
//! not yet noticed it lost the database) never both run one instant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::state::SchedulerState;
use crate::storage::PgConfig;
use crate::storage::pg::{Migration, describe, migrate};

/// The last-fired record.
#[derive(Debug, Clone)]
pub enum FiredStore {
    /// `scheduler.json` in the state dir; only this process's leader writes it.
    StateDir(PathBuf),
    /// The table `opsdeck_schedule_fired`, shared by every server on the database.
    Postgres(Arc<PgConfig>),
}

/// The table (component `schedule` in `opsdeck_migrations`).
fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        sql: "CREATE TABLE opsdeck_schedule_fired (
                job TEXT PRIMARY KEY, last_fired TEXT NOT NULL,
                by_server TEXT NOT NULL, at TEXT NOT NULL)"
            .into(),
    }]
}

/// One instant as stored: the CAS compares this text.
fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl FiredStore {
    /// Every job's last fired instant.
    pub async fn load(&self) -> Result<BTreeMap<String, DateTime<Utc>>, String> {
        match self {
            FiredStore::StateDir(dir) => Ok(SchedulerState::load(dir).last_fired),
            FiredStore::Postgres(pg) => {
                let pg = pg.clone();
                blocking(move || {
                    let c = pg.connect()?;
                    c.with(|c| {
                        migrate(c, "schedule", &migrations())?;
                        let rows = c
                            .query("SELECT job, last_fired FROM opsdeck_schedule_fired", &[])
                            .map_err(|e| describe(&e))?;
                        Ok(rows
                            .iter()
                            .filter_map(|r| {
                                let at = DateTime::parse_from_rfc3339(r.get::<_, &str>(1)).ok()?;
                                Some((r.get::<_, String>(0), at.with_timezone(&Utc)))
                            })
                            .collect())
                    })
                })
                .await
            }
        }
    }

    /// Records that `job` fires for `at`, if its record still says `prev` (`None`: no record
    /// yet). `Ok(false)`: another server recorded something else first; do not fire.
    pub async fn claim(
        &self,
        fired: &mut BTreeMap<String, DateTime<Utc>>,
        job: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, String> {
        let prev = fired.get(job).copied();
        let won = match self {
            FiredStore::StateDir(dir) => {
                let mut state = SchedulerState {
                    last_fired: fired.clone(),
                };
                state.last_fired.insert(job.to_string(), at);
                state.save(dir).map_err(|e| {
                    format!("cannot write the scheduler state in {}: {e}", dir.display())
                })?;
                true
            }
            FiredStore::Postgres(pg) => {
                let (pg, job, me) = (
                    pg.clone(),
                    job.to_string(),
                    crate::storage::pg::instance().to_string(),
                );
                blocking(move || {
                    let c = pg.connect()?;
                    let now = text(Utc::now());
                    let n = c
                        .with(|c| {
                            match prev {
                            None => c.execute(
                                "INSERT INTO opsdeck_schedule_fired (job, last_fired, by_server, at)
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (job) DO NOTHING",
                                &[&job, &text(at), &me, &now],
                            ),
                            Some(prev) => c.execute(
                                "UPDATE opsdeck_schedule_fired
                                 SET last_fired = $2, by_server = $3, at = $4
                                 WHERE job = $1 AND last_fired = $5",
                                &[&job, &text(at), &me, &now, &text(prev)],
                            ),
                        }
                        })
                        .map_err(|e| describe(&e))?;
                    Ok(n == 1)
                })
                .await?
            }
        };
        if won {
            fired.insert(job.to_string(), at);
        }
        Ok(won)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}
