//! Recovery at start: a corrupt run history is moved aside and replaced, temporary downloads
//! of processes that died are removed, and their runs are marked interrupted.

use std::path::{Path, PathBuf};

use super::history::{RunHistory, SqliteHistory};
use super::store::TEMP_PREFIX;

/// Whether a process with this id runs on this host. Our own id counts as dead: at start we
/// have no download yet, so a file or run carrying our pid is a previous life's (in a
/// container, opsdeck is pid 1 every time).
pub fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() || pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // Signal 0 checks existence; EPERM means it exists under another user.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The prefix of this process's temporary downloads: `.opsdeck-download-<pid>-`.
pub fn temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", std::process::id())
}

/// Removes `.opsdeck-download-<pid>-*` files of processes that are gone. Files of the older
/// name without a pid are removed when older than a day. Returns what was removed.
pub fn remove_stale_temps(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut removed = vec![];
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let pid = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u32>().ok());
        let stale = match pid {
            Some(pid) => !pid_alive(pid),
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 86_400),
        };
        if stale && std::fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// At start: removes dead processes' temporary downloads, and tells the front end (log and
/// event) what recovery did.
pub fn start_notices(
    history_notice: Option<String>,
    store: &super::ExportStore,
    events: &crate::events::EventTx,
) {
    for f in remove_stale_temps(store.dir()) {
        tracing::info!(
            "removed the temporary download of a process that ended: {}",
            f.display()
        );
    }
    if let Some(msg) = history_notice {
        tracing::warn!("{msg}");
        let _ = events.try_send(crate::events::Event::Notice(msg));
    }
}

/// Opens the run history; when the file is not a database or is corrupt, moves it (and its
/// WAL files) aside as `history.db.corrupt-<time>` and starts a fresh one. The message says
/// where the old one went.
pub fn open_history(path: &Path) -> rusqlite::Result<(RunHistory, Option<String>)> {
    match SqliteHistory::open(path).and_then(|h| h.integrity().map(|()| h)) {
        Ok(h) => Ok((RunHistory::from_store(h), None)),
        Err(e) if is_corruption(&e) => {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let aside = path.with_file_name(format!(
                "{}.corrupt-{stamp}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            std::fs::rename(path, &aside)
                .map_err(|_| rusqlite::Error::InvalidPath(path.to_path_buf()))?;
            for suffix in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{suffix}", path.display()));
                let _ = std::fs::rename(&side, format!("{}{suffix}", aside.display()));
            }
            let h = RunHistory::open(path)?;
            let msg = format!(
                "the run history {} was corrupt ({e}); it was moved to {} and a new one started",
                path.display(),
                aside.display()
            );
            Ok((h, Some(msg)))
        }
        Err(e) => Err(e),
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
        ),
        rusqlite::Error::QueryReturnedNoRows => false,
        rusqlite::Error::SqlInputError { .. } => false,
        other => other.to_string().contains("malformed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_garbage_history_is_moved_aside_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        std::fs::write(
            &path,
            b"this is not a database, just forty-odd bytes of text",
        )
        .unwrap();
        let (h, msg) = open_history(&path).unwrap();
        let msg = msg.expect("a message");
        assert!(msg.contains("corrupt"), "{msg}");
        assert!(h.recent_runs("export", 5).unwrap().is_empty());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("history.db.corrupt-")),
            "{names:?}"
        );
    }

    #[test]
    fn temps_of_dead_processes_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        // A child that has exited: its pid is free (and not reused this quickly).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let parent = std::os::unix::process::parent_id();
        let dead_file = dir.path().join(format!("{TEMP_PREFIX}{dead}-abc"));
        let live_file = dir.path().join(format!("{TEMP_PREFIX}{parent}-abc"));
        std::fs::write(&dead_file, b"x").unwrap();
        std::fs::write(&live_file, b"x").unwrap();
        let removed = remove_stale_temps(dir.path());
        assert_eq!(removed, vec![dead_file.clone()]);
        assert!(live_file.exists());
    }
}
