//! Files that belong to opsdeck's user alone (the ledger, the run history, locks, scheduler
//! state, deploy logs): directories 0700 and files 0600 whatever the umask, and never opened
//! through a symlink, so nobody else can read them or redirect a write to another file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` and its missing parents, each 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Options for a private file: created 0600, `O_NOFOLLOW` (a symlink at `path` is refused
/// with `ELOOP`). Add `read`, `write`, `append`, `create` as needed.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o
}

/// Opens (creating) a private file for appending, e.g. a deploy log; its directory is created
/// 0700 when missing.
pub fn append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    options().create(true).append(true).open(path)
}

/// Sets `path` to 0600 unless it already is; never through a symlink.
fn restrict(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_file() && meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn side(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Opens an SQLite database as a private file, never through a symlink. A database SQLite
/// creates here is made 0600 at once, before WAL mode creates `-wal` and `-shm` (SQLite gives
/// them the database file's mode); `own` also makes an existing database and its side files
/// 0600 (files only opsdeck reads, such as the run history). Only paths are touched, never a
/// descriptor: closing any descriptor of the file would drop the POSIX locks SQLite holds for
/// this process, and another process could then delete the WAL under our other connections.
pub fn open_db(path: &Path, own: bool) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let io_err = |e: io::Error| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("{}: {e}", path.display())),
        )
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(dir).map_err(io_err)?;
    }
    let new =
        matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound);
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )?;
    if new || own {
        for p in [path.to_path_buf(), side(path, "-wal"), side(path, "-shm")] {
            match restrict(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(e)),
                _ => {}
            }
        }
    }
    Ok(conn)
}

/// Makes `dir` the state dir of this process: created 0700 when missing, else it must belong
/// to this user, and it is set to 0700. The server's files live there.
pub fn claim_dir(dir: &Path) -> Result<(), String> {
    create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "the state dir {} belongs to uid {}, not to this user (uid {me})",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} 0700: {e}", dir.display()))?;
        tracing::info!("the state dir {} is now 0700", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_not_followed_and_the_target_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = append(&link).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        assert!(open_db(&link, true).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
