//! `CommandDeployer`: runs the team's deploy or rollback command (an argv array, no shell)
//! with `{service}`, `{tag}`, `{image}`, `{rollback_to_tag}` filled in (also passed as
//! `OPSDECK_*` environment variables), its output appended to a deploy log. The exit code
//! decides the result.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// What a command is run for.
#[derive(Debug, Clone)]
pub struct CommandVars {
    pub service: String,
    pub tag: String,
    pub image: String,
    pub rollback_to_tag: String,
}

/// Fills the placeholders of one argument.
pub fn fill(arg: &str, v: &CommandVars) -> String {
    arg.replace("{service}", &v.service)
        .replace("{tag}", &v.tag)
        .replace("{image}", &v.image)
        .replace("{rollback_to_tag}", &v.rollback_to_tag)
}

/// Runs `argv` with the placeholders filled, appending its output to `log`; `Ok` when it
/// exits 0 within `timeout`.
pub async fn run(
    argv: &[String],
    vars: &CommandVars,
    log: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let argv: Vec<String> = argv.iter().map(|a| fill(a, vars)).collect();
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".into());
    };
    // Owner-only: a script's output is nobody else's business.
    let file = crate::private::append(log)
        .map_err(|e| format!("cannot open the deploy log {}: {e}", log.display()))?;
    {
        use std::io::Write;
        let mut f = &file;
        let _ = writeln!(
            f,
            "=== {} opsdeck runs: {}",
            chrono::Utc::now().to_rfc3339(),
            argv.join(" ")
        );
    }
    let mut cmd = tokio::process::Command::new(program);
    super::child_env::scrub(&mut cmd);
    let mut child = cmd
        .args(args)
        .env("OPSDECK_SERVICE", &vars.service)
        .env("OPSDECK_TAG", &vars.tag)
        .env("OPSDECK_IMAGE", &vars.image)
        .env("OPSDECK_ROLLBACK_TO_TAG", &vars.rollback_to_tag)
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(|e| e.to_string())?)
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "{program} did not finish within {}s; killed (log: {})",
                timeout.as_secs(),
                log.display()
            ))
        }
        Ok(Err(e)) => Err(format!("{program}: {e}")),
        Ok(Ok(status)) if status.success() => {
            Ok(format!("{program} succeeded (log: {})", log.display()))
        }
        Ok(Ok(status)) => Err(format!(
            "{program} failed with {status} (log: {})",
            log.display()
        )),
    }
}

/// `<data dir>/deployments/<service>/<tag>-prod.log` or `<tag>-rollback.log`.
pub fn log_path(data_dir: &Path, service: &str, tag: &str, rollback: bool) -> PathBuf {
    let kind = if rollback { "rollback" } else { "prod" };
    data_dir
        .join("deployments")
        .join(service)
        .join(format!("{tag}-{kind}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> CommandVars {
        CommandVars {
            service: "api".into(),
            tag: "v2".into(),
            image: "r/api:v2".into(),
            rollback_to_tag: "v1".into(),
        }
    }

    #[tokio::test]
    async fn placeholders_env_log_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_path(dir.path(), "api", "v2", false);
        let argv: Vec<String> = [
            "sh",
            "-c",
            "echo deploying $0 $OPSDECK_TAG; exit 0",
            "{image}",
        ]
        .map(String::from)
        .to_vec();
        let ok = run(&argv, &vars(), &log, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(ok.contains("succeeded"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("deploying r/api:v2 v2"), "{text}");
        let argv: Vec<String> = ["sh", "-c", "echo broken >&2; exit 3"]
            .map(String::from)
            .to_vec();
        let e = run(&argv, &vars(), &log, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(std::fs::read_to_string(&log).unwrap().contains("broken"));
        let argv: Vec<String> = ["sleep", "5"].map(String::from).to_vec();
        let e = run(&argv, &vars(), &log, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }
}
