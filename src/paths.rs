//! Where opsdeck keeps its own files.

use std::path::PathBuf;

/// The data directory: `OPSDECK_DATA_DIR`, else `~/.local/share/opsdeck` on Linux.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OPSDECK_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    directories::ProjectDirs::from("", "", "opsdeck")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".opsdeck"))
}

/// The daily-rolling log files.
pub fn log_dir() -> PathBuf {
    data_dir().join("logs")
}

/// File name of the export run history database inside the data dir.
pub const HISTORY_DB: &str = "history.db";

/// The server's socket: `server.socket` / `OPSDECK_SOCKET` when set, else
/// `/run/opsdeck/opsdeck.sock` when that directory is writable, else
/// `$XDG_RUNTIME_DIR/opsdeck.sock` (or `/tmp/opsdeck-<uid>.sock` without one).
pub fn socket_path(configured: Option<&std::path::Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    let run = std::path::Path::new("/run/opsdeck");
    if nix::unistd::access(run, nix::unistd::AccessFlags::W_OK).is_ok() {
        return run.join("opsdeck.sock");
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("opsdeck.sock");
    }
    PathBuf::from(format!("/tmp/opsdeck-{}.sock", nix::unistd::getuid()))
}

/// Where clients look for the server: `--server` / `OPSDECK_SERVER`, else the configured
/// socket, else `/run/opsdeck/opsdeck.sock` when it exists (a team's server), else the
/// per-user default.
pub fn client_socket_path(
    server_flag: Option<&std::path::Path>,
    configured: Option<&std::path::Path>,
) -> PathBuf {
    if let Some(p) = server_flag.or(configured) {
        return p.to_path_buf();
    }
    let team = std::path::Path::new("/run/opsdeck/opsdeck.sock");
    if team.exists() {
        return team.to_path_buf();
    }
    socket_path(None)
}
