//! A full disk during an export: a real 1 MB tmpfs as the export directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

mod support;

use bytes::Bytes;
use support::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_export_clearly_and_leaves_no_file() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    // About 2.5 MB of CSV for a 1 MB file system.
    sim.set_body(101, Body::Bytes(Bytes::from(sample_csv("API", 20_000, 5))));
    let ws = Workspace::new(&sim.base_url(), "max_attempts = 1");
    std::fs::create_dir_all(&ws.export_dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&ws.export_dir)
        .output()
        .unwrap();
    if !mounted.status.success() {
        let why = text(&mounted.stderr);
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs: {why}"
        );
        eprintln!("skipped: cannot mount a small tmpfs here (needs root): {why}");
        return;
    }
    let _mount = Mount(ws.export_dir.clone());

    let out = ws.run(&["export", "--group", "API"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: group API:") && err.contains("is full"),
        "{err}"
    );
    assert!(ws.export_files().is_empty(), "{:?}", ws.export_files());

    // The disk has room again for a small export: it works, nothing was left behind.
    sim.set_body(101, Body::Bytes(Bytes::from(sample_csv("API", 100, 5))));
    let out = ws.run(&["export", "--group", "API"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(ws.export_files().len(), 1);
}
