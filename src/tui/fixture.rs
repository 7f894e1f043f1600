//! A fixed dashboard state for tests and snapshots: two groups, a month of files, two jobs.
#![cfg(test)]

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};

use super::app::{App, FileRow, HistoryView, JobRow, Msg, SavedExport, update};
use crate::export::RunRecord;
use crate::schedule::{CronSchedule, JobKind};

pub fn now() -> DateTime<Utc> {
    "2026-11-23T09:41:30Z".parse().unwrap()
}

pub fn app(size: (u16, u16)) -> App {
    let jobs = vec![
        JobRow {
            name: "export".into(),
            kind: JobKind::Export,
            schedule: CronSchedule::parse("0 7 * * *", None).unwrap(),
            paused: false,
            runs: vec![],
        },
        JobRow {
            name: "cleanup".into(),
            kind: JobKind::Cleanup,
            schedule: CronSchedule::parse("30 3 * * *", None).unwrap(),
            paused: true,
            runs: vec![],
        },
    ];
    let mut app = App::new(
        vec!["API".into(), "UI".into()],
        jobs,
        PathBuf::from("/srv/exports"),
        now(),
    );
    app.size = size;
    let mut saved = Vec::new();
    for day in 0..30 {
        let at: DateTime<Utc> =
            "2026-10-24T07:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::days(day);
        for (g, base) in [("API", 180u64), ("UI", 95)] {
            let path = PathBuf::from(format!(
                "/srv/exports/testops_export_17_{g}_{}.csv",
                at.format("%Y-%m-%d_%H-%M-%S")
            ));
            app.files.push(FileRow {
                path: path.clone(),
                group: g.into(),
                taken_at: at,
                size: 30_000 + day as u64 * 400,
            });
            saved.push(SavedExport {
                group: g.into(),
                file: path,
                rows: base + day as u64 * 3,
                at,
            });
        }
    }
    app.files.reverse();
    app.total_bytes = app.files.iter().map(|f| f.size).sum();
    let runs = (0..3)
        .map(|i| RunRecord {
            id: 100 - i,
            job: "export".into(),
            trigger: "scheduled".into(),
            scheduled_for: None,
            started_at: "2026-11-22T07:00:00Z".parse::<DateTime<Utc>>().unwrap()
                - Duration::days(i),
            finished_at: Some(
                "2026-11-22T07:00:06Z".parse::<DateTime<Utc>>().unwrap() - Duration::days(i),
            ),
            outcome: if i == 1 { "failed".into() } else { "ok".into() },
            detail: None,
        })
        .collect();
    let view = HistoryView {
        runs: [("export".to_string(), runs)].into_iter().collect(),
        attempts: [(100, 1), (99, 3), (98, 2)].into_iter().collect(),
        saved,
    };
    update(&mut app, Msg::History(view));
    app.lock = super::app::LockState::Leader;
    app.testops = Some(Ok(()));
    app.disk_free = Some(80_200_000_000);
    app
}

/// Releases in every section, timestamps fixed relative to `now()`.
pub fn releases() -> Vec<crate::release::Release> {
    use crate::release::{Release, Status};
    let mk = |id: i64, service: &str, tag: &str, status: Status, hours: i64| Release {
        id,
        service_name: service.into(),
        release_tag: tag.into(),
        rollback_to_tag: None,
        image: None,
        status,
        initiated_by: Some("github".into()),
        github_run_id: Some(format!("{}", 9000 + id)),
        github_action_link: None,
        github_ref: None,
        created_at: now() - Duration::hours(hours),
        started_at: None,
        completed_at: (status == Status::Deployed)
            .then(|| now() - Duration::hours(hours) + Duration::minutes(30)),
    };
    vec![
        mk(9, "api", "v1.5.0", Status::ManualTesting, 2),
        mk(8, "web", "2.4.0", Status::Building, 3),
        mk(7, "worker", "0.9.2", Status::ProductionFailed, 20),
        mk(6, "api", "v1.4.0", Status::Deployed, 30),
        mk(5, "web", "2.3.2", Status::ManualTesting, 40),
        mk(3, "api", "v1.3.2", Status::Deployed, 200),
    ]
}

pub fn app_on_releases(size: (u16, u16)) -> App {
    let mut app = app(size);
    app.tab = super::app::Tab::Releases;
    update(
        &mut app,
        Msg::Service(crate::events::Event::Releases(releases())),
    );
    app
}
