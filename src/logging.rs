//! tracing set-up: stderr for CLI commands, and a daily-rolling file in `<data dir>/logs/` that
//! the Logs tab tails. Keeps `logging.keep_days` files.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Keeps the file writer alive; dropping it flushes the log.
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// stderr and the rolling file.
    StderrAndFile,
    /// The rolling file only (the dashboard owns the terminal).
    FileOnly,
}

/// Installs the global subscriber. `RUST_LOG` overrides `level`. A log directory that cannot
/// be created costs the file log, not the command.
pub fn init(level: &str, dir: &Path, keep_days: usize, target: LogTarget) -> LogGuard {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(format!("warn,opsdeck={level}")))
            .unwrap_or_else(|_| EnvFilter::new("warn,opsdeck=info"))
    };
    let file = crate::private::create_dir(dir).ok().and_then(|()| {
        private_dir(dir);
        RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix("opsdeck")
            .filename_suffix("log")
            .max_log_files(keep_days)
            .build(dir)
            .ok()
    });
    let (file_layer, guard) = match file {
        Some(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (
                Some(
                    fmt::layer()
                        .with_ansi(false)
                        .with_writer(crate::sanitize::Redacting(writer))
                        .with_filter(filter()),
                ),
                Some(guard),
            )
        }
        None => (None, None),
    };
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let stderr_layer = (target == LogTarget::StderrAndFile).then(|| {
        fmt::layer()
            .with_writer(crate::sanitize::Redacting(std::io::stderr))
            .with_ansi(colour)
            .with_target(false)
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    LogGuard(guard)
}

/// Makes a directory readable by its owner only: logs and the run history hold error
/// messages from servers, which are no one else's business.
pub fn private_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}
