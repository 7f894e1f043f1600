//! A command: argv (no shell), the delivery as JSON on stdin, opsdeck's environment without
//! its secrets. Exit 0 means delivered; anything else is retried.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{SendError, payload};
use crate::notify::Delivery;

/// Runs `argv` with `d` on stdin, within `timeout`.
pub async fn send(argv: &[String], timeout: Duration, d: &Delivery) -> Result<(), SendError> {
    let retry = |error: String| SendError::Retry { error, after: None };
    let Some((prog, args)) = argv.split_first() else {
        return Err(SendError::Permanent("command: empty argv".into()));
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("OPSDECK_NOTIFY_ID", d.id.to_string())
        .env("OPSDECK_NOTIFY_EVENT", d.event.kind.as_str());
    crate::release::deploy::child_env::scrub(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| retry(format!("command {prog}: cannot start: {e}")))?;
    let input = serde_json::to_vec(&payload(d)).unwrap_or_default();
    let mut stdin = child.stdin.take();
    let mut stderr = child.stderr.take();
    let run = async {
        if let Some(s) = stdin.as_mut() {
            // A command that does not read its stdin is fine.
            let _ = s.write_all(&input).await;
            let _ = s.write_all(b"\n").await;
        }
        drop(stdin.take());
        let mut err = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.take(4096).read_to_end(&mut err).await;
        }
        (child.wait().await, err)
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(retry(format!(
            "command {prog}: no exit within {}",
            humantime::format_duration(timeout)
        ))),
        Ok((Err(e), _)) => Err(retry(format!("command {prog}: {e}"))),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), err)) => {
            let err = crate::sanitize::clean_max(String::from_utf8_lossy(&err).trim(), 300);
            Err(retry(format!(
                "command {prog}: {status}{}",
                if err.is_empty() {
                    String::new()
                } else {
                    format!(": {err}")
                }
            )))
        }
    }
}
