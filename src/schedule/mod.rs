//! Scheduled jobs: cron evaluation, the single-leader lock, the shared "last fired" state (file or PostgreSQL) and
//! the scheduler service that fires exports and retention cleanups.

mod cron;
mod fired;
mod lock;
mod paused;
mod scheduler;
mod state;

pub use cron::CronSchedule;
pub use fired::FiredStore;
pub use lock::{Holder, LOCK_FILE, LeaderLock, whoami};
pub use paused::{PAUSED_FILE, load_paused, set_paused};
pub use scheduler::{JobKind, JobSpec, ScheduleEvent, Scheduler, SchedulerCommand, run_cleanup};
pub use state::{STATE_FILE, SchedulerState};
