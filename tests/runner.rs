//! The export runner service used in-process, as the dashboard will use it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

mod support;

use std::time::Duration;

use bytes::Bytes;
use opsdeck::config::{Config, process_env};
use opsdeck::events::Event;
use opsdeck::export::{ExportEvent, Trigger};
use opsdeck::services::{ServiceSet, Services};
use support::*;

#[tokio::test]
async fn a_group_is_never_exported_twice_at_once() {
    let sim = SimTestOps::start(SimOptions {
        chunk_delay: Some(Duration::from_millis(20)),
        chunk_size: 4096,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    sim.set_body(101, Body::Bytes(Bytes::from(sample_csv("API", 1000, 1))));
    let ws = Workspace::new(&sim.base_url(), "");
    let cfg = Config::load(Some(&ws.config), &process_env).unwrap();
    let (tx, mut rx) = opsdeck::events::channel();
    let services = Services::start(
        &cfg,
        &ws.data_dir,
        tx,
        ServiceSet {
            scheduler: false,
            watcher: false,
            health: false,
            exports_optional: false,
        },
    )
    .unwrap();
    let api = cfg.select_groups(&["API".into()]).unwrap();

    let first = tokio::spawn({
        let runner = services.runner.clone();
        let api = api.clone();
        async move { runner.export(api, Trigger::Manual).await }
    });
    // Wait until the first export is downloading, then ask again.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
        {
            Some(Event::Export(ExportEvent::Progress { .. })) => break,
            Some(_) => {}
            None => panic!("event channel closed"),
        }
    }
    let second = services
        .runner
        .export(api, Trigger::Scheduled(chrono::Utc::now()))
        .await;
    assert_eq!(second.skipped, ["API"]);
    assert!(second.saved.is_empty() && !second.all_saved());

    let first = first.await.unwrap();
    assert!(first.all_saved(), "{first:?}");
    assert_eq!(
        sim.counters()
            .export_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    services.shutdown().await;
}
