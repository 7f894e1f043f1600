//! The single-leader lock: an advisory `flock` on a file in the state dir (the server's, or in
//! local mode the user's data dir), not in the shared export dir, where anyone who can write
//! could plant a symlink to someone else's file and have it truncated.
//!
//! Whoever holds it runs scheduled jobs; everyone else reads the holder (pid, host, user) from
//! the file to report it. The kernel drops the lock when the holder dies, so no stale lock.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the state dir.
pub const LOCK_FILE: &str = "scheduler.lock";

/// A held leader lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LeaderLock {
    _file: File,
    path: PathBuf,
}

/// Who holds the lock, as the holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder(pub String);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// This process, as written into the lock file.
pub fn whoami() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let user = std::env::var("USER").unwrap_or_else(|_| "?".into());
    format!("pid {} on {host} (user {user})", std::process::id())
}

impl LeaderLock {
    /// Tries to become leader. `Ok(Err(holder))` when another process holds the lock. A
    /// symlink at the lock's path is an error, never followed.
    pub fn try_acquire(dir: &Path) -> std::io::Result<Result<LeaderLock, Holder>> {
        let path = dir.join(LOCK_FILE);
        let mut file = crate::private::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.seek(SeekFrom::Start(0))?;
                writeln!(file, "{}", whoami())?;
                file.sync_data()?;
                Ok(Ok(LeaderLock { _file: file, path }))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                file.read_to_string(&mut who)?;
                let who = who.trim();
                Ok(Err(Holder(if who.is_empty() {
                    "another process".into()
                } else {
                    who.into()
                })))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquirer_is_told_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = LeaderLock::try_acquire(dir.path()).unwrap().unwrap();
        // flock is per open file description, so a second open in this process conflicts too.
        let holder = LeaderLock::try_acquire(dir.path()).unwrap().unwrap_err();
        assert!(
            holder.0.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        drop(first);
        assert!(LeaderLock::try_acquire(dir.path()).unwrap().is_ok());
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_kept() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("bashrc");
        std::fs::write(&victim, "alias ll='ls -l'\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(LOCK_FILE)).unwrap();
        let e = LeaderLock::try_acquire(dir.path()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "alias ll='ls -l'\n"
        );
    }
}
