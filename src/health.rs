//! `HealthProbe`: checks TestOps reachability (a token exchange) and the export disk's free
//! space now and then, for the status bar. Headless-usable like every service.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventTx};
use crate::testops::TestOpsClient;

/// How often TestOps is probed; a token exchange is cheap but not free.
pub const TESTOPS_EVERY: Duration = Duration::from_secs(300);
/// How often while it fails, so its recovery shows soon.
pub const TESTOPS_FAILING_EVERY: Duration = Duration::from_secs(30);
/// How often free disk space is read.
pub const DISK_EVERY: Duration = Duration::from_secs(30);

/// Free bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated path and a zeroed out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Spawns the probe; it reports only changes, so an idle dashboard stays idle.
pub fn spawn(
    client: Option<Arc<TestOpsClient>>,
    export_dir: PathBuf,
    events: EventTx,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut testops_tick = tokio::time::interval(TESTOPS_EVERY);
        let mut disk_tick = tokio::time::interval(DISK_EVERY);
        let mut last_health: Option<Result<(), String>> = None;
        let mut last_free: Option<u64> = None;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = testops_tick.tick() => {
                    let health = match &client {
                        Some(c) => c.exchange().await.map(drop).map_err(|e| e.to_string()),
                        None => Err("testops.base_url or the token is not configured".into()),
                    };
                    let every = if health.is_ok() { TESTOPS_EVERY } else { TESTOPS_FAILING_EVERY };
                    if testops_tick.period() != every {
                        testops_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    }
                    if last_health.as_ref() != Some(&health) {
                        last_health = Some(health.clone());
                        let _ = events.send(Event::TestOpsHealth(health)).await;
                    }
                }
                _ = disk_tick.tick() => {
                    // The disk the exports go to, even before the directory exists.
                    let dir = export_dir.ancestors().find(|a| a.exists()).unwrap_or(&export_dir).to_path_buf();
                    if let Ok(Ok(free)) = tokio::task::spawn_blocking(move || free_bytes(&dir)).await {
                        // Report changes of at least 1 MB, not every written block.
                        if last_free.is_none_or(|l| l.abs_diff(free) >= 1 << 20) {
                            last_free = Some(free);
                            let _ = events.send(Event::DiskFree(free)).await;
                        }
                    }
                }
            }
        }
    })
}
