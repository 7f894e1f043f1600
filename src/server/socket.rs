//! The server's Unix socket: one server per socket path. A lock file beside the socket says
//! who owns it; a socket left by a killed server is replaced, a live one refuses a second.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the socket could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("already running (pid {pid}) on {}", .socket.display())]
    AlreadyRunning { pid: String, socket: PathBuf },
    #[error("cannot listen on {}: {source}", .socket.display())]
    Io {
        socket: PathBuf,
        source: std::io::Error,
    },
}

/// Keeps the socket ours (the lock) and removes it when dropped.
pub struct SocketGuard {
    pub path: PathBuf,
    _lock: std::fs::File,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path`: takes `<path>.lock` (never following a symlink), replaces a stale socket,
/// and opens the socket to every local user (what each may do is decided per request).
pub fn bind(path: &Path) -> Result<(tokio::net::UnixListener, SocketGuard), BindError> {
    let io = |source| BindError::Io {
        socket: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(io)?;
    if lock.try_lock().is_err() {
        let mut pid = String::new();
        let _ = lock.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(BindError::AlreadyRunning {
            pid: if pid.is_empty() {
                "unknown".into()
            } else {
                pid.into()
            },
            socket: path.to_path_buf(),
        });
    }
    lock.set_len(0).map_err(io)?;
    lock.rewind().map_err(io)?;
    write!(lock, "{}", std::process::id()).map_err(io)?;
    // We hold the lock, so a socket file here is a dead server's.
    match std::fs::symlink_metadata(path) {
        Ok(_) => std::fs::remove_file(path).map_err(io)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(io)?;
    Ok((
        listener,
        SocketGuard {
            path: path.to_path_buf(),
            _lock: lock,
        },
    ))
}
