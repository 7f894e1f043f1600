//! Editing a job's cron expression: the next run is checked as it is typed.

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use super::input::{self, Typed};
use super::{CronEdit, Overlay};
use crate::schedule::CronSchedule;
use crate::tui::msg::Cmd;

/// Keys of the cron editor: Enter saves a valid expression, Esc closes; `current` is the
/// job's schedule (its time zone), `None` when the job is gone.
pub fn key(
    mut e: CronEdit,
    current: Option<&CronSchedule>,
    now: DateTime<Utc>,
    k: KeyEvent,
) -> (Option<Overlay>, Option<Cmd>) {
    match input::key(&mut e.input, k) {
        Typed::Cancel => (None, None),
        Typed::Submit(expr) => {
            if e.check.is_ok() {
                let cmd = Cmd::SaveCron {
                    job: e.job.clone(),
                    expr,
                };
                (None, Some(cmd))
            } else {
                (Some(Overlay::EditCron(e)), None)
            }
        }
        Typed::Edited => {
            if let Some(s) = current {
                e.check = check_cron(s, e.input.value(), now);
            }
            (Some(Overlay::EditCron(e)), None)
        }
    }
}

/// The next run of `expr` (in `current`'s time zone), or why it is not a schedule.
pub fn check_cron(
    current: &CronSchedule,
    expr: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let s = CronSchedule::parse(expr, Some(current.timezone()))?;
    s.next_after(now)
        .ok_or_else(|| "this expression never runs".to_string())
}
