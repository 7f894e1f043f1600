//! The export-directory watcher, with a real notify watcher on a real directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::time::Duration;

use opsdeck::events::Event;
use opsdeck::export::{ExportDirWatcher, ExportStore};
use tokio_util::sync::CancellationToken;

async fn next_listing(rx: &mut opsdeck::events::EventRx) -> Vec<String> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no listing within 10 s");
        if let Some(Event::ExportDir(l)) = ev {
            return l
                .files
                .iter()
                .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
        }
    }
}

#[tokio::test]
async fn files_added_renamed_and_removed_by_others_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = opsdeck::events::channel();
    let cancel = CancellationToken::new();
    let task = ExportDirWatcher::spawn(
        ExportStore::new(dir.path()),
        Duration::from_millis(100),
        tx,
        cancel.clone(),
    )
    .unwrap();
    assert!(next_listing(&mut rx).await.is_empty());

    let a = dir
        .path()
        .join("testops_export_17_API_2026-11-20_07-00-00.csv");
    std::fs::write(&a, "a;b\n").unwrap();
    std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
    assert_eq!(
        next_listing(&mut rx).await,
        ["testops_export_17_API_2026-11-20_07-00-00.csv"]
    );

    let b = dir.path().join("testops_export_UI_2026-11-21_07-00-00.csv");
    std::fs::rename(&a, &b).unwrap();
    assert_eq!(
        next_listing(&mut rx).await,
        ["testops_export_UI_2026-11-21_07-00-00.csv"]
    );

    std::fs::remove_file(&b).unwrap();
    assert!(next_listing(&mut rx).await.is_empty());
    cancel.cancel();
    task.await.unwrap();
}
