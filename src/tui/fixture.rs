//! A fixed dashboard state for tests and snapshots: two groups, a month of files, two jobs.
#![cfg(test)]

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};

use super::app::{App, FileRow, JobRow, update};
use super::msg::{HistoryView, Msg, SavedExport};
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
            app.exports.files.push(FileRow {
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
    app.exports.files.reverse();
    app.exports.total_bytes = app.exports.files.iter().map(|f| f.size).sum();
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
    let generation = app.requests.start(super::request::Req::History);
    update(
        &mut app,
        Msg::History {
            generation,
            history: view,
        },
    );
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
    app.tab = super::tab::Tab::Releases;
    update(
        &mut app,
        Msg::Service(crate::events::Event::Releases(releases())),
    );
    app
}

/// The engine's live state of the fixture's services: api healthy, web drifted from the
/// ledger, worker paused by a failed task of 0.9.2.
pub fn services() -> Vec<crate::release::engine::ServiceLive> {
    use crate::release::engine::{Drift, ServiceLive, TaskLive};
    let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
    let task = |id: &str, slot: u64, node: &str, tag: &str, state: &str, desired: &str| TaskLive {
        id: id.into(),
        slot: Some(slot),
        node: node.into(),
        tag: tag.into(),
        state: state.into(),
        desired_state: desired.into(),
        since: at("2026-11-22T10:00:00Z"),
        ..Default::default()
    };
    let mut healthy = task("a1b2c3d4e5f6", 1, "node1", "v1.4.0", "running", "running");
    healthy.health = Some("healthy".into());
    let mut failed = task("3f2a9c1b0d4e", 2, "node2", "0.9.2", "failed", "shutdown");
    failed.error = "task: non-zero exit (1)".into();
    failed.exit_code = Some(1);
    vec![
        ServiceLive {
            service: "api".into(),
            swarm_service: "prod_api".into(),
            image: "registry/api:v1.4.0".into(),
            tag: "v1.4.0".into(),
            desired: 2,
            running: 2,
            update_state: "completed".into(),
            updated_at: at("2026-11-22T10:00:00Z"),
            tasks: vec![
                healthy,
                task("b2c3d4e5f6a1", 2, "node2", "v1.4.0", "running", "running"),
                task("c3d4e5f6a1b2", 1, "node1", "v1.3.2", "shutdown", "shutdown"),
            ],
            ledger_tag: Some("v1.4.0".into()),
            ..Default::default()
        },
        ServiceLive {
            service: "web".into(),
            swarm_service: "web".into(),
            image: "registry/web:2.3.1".into(),
            tag: "2.3.1".into(),
            desired: 2,
            running: 2,
            update_state: "completed".into(),
            updated_at: at("2026-11-23T08:15:00Z"),
            tasks: vec![
                task("d4e5f6a1b2c3", 1, "node1", "2.3.1", "running", "running"),
                task("e5f6a1b2c3d4", 2, "node2", "2.3.1", "running", "running"),
            ],
            ledger_tag: Some("2.3.0".into()),
            drift: Some(Drift {
                engine_tag: "2.3.1".into(),
                ledger_tag: "2.3.0".into(),
                since: at("2026-11-23T08:15:00Z"),
            }),
            ..Default::default()
        },
        ServiceLive {
            service: "worker".into(),
            swarm_service: "prod_worker".into(),
            image: "registry/worker:0.9.2".into(),
            tag: "0.9.2".into(),
            desired: 2,
            running: 1,
            update_state: "paused".into(),
            update_message:
                "update paused due to failure or early termination of task 3f2a9c1b0d4e".into(),
            updated_at: at("2026-11-22T14:02:00Z"),
            tasks: vec![
                task("f6a1b2c3d4e5", 1, "node1", "0.9.1", "running", "running"),
                failed,
            ],
            ledger_tag: Some("0.9.1".into()),
            ..Default::default()
        },
    ]
}

/// The releases tab with the engine's live state of every service.
pub fn app_with_services(size: (u16, u16)) -> App {
    let mut app = app_on_releases(size);
    update(
        &mut app,
        Msg::Service(crate::events::Event::Services(std::sync::Arc::new(
            services(),
        ))),
    );
    app
}
