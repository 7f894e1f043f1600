//! Configuration errors and `opsdeck check`, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;

#[tokio::test]
async fn unknown_key_bad_cron_and_missing_token_name_key_file_and_line() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "");
    let cfg = ws.config.display().to_string();

    std::fs::write(
        &ws.config,
        "[export]\ndir = \"/tmp/x\"\nretension_days = 3\n",
    )
    .unwrap();
    let out = ws.run(&["export"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{cfg}:3:")) && err.contains("unknown key `retension_days`"),
        "{err}"
    );

    std::fs::write(&ws.config, "[export]\n# daily\nschedule = \"0 7 * *\"\n").unwrap();
    let out = ws.run(&["run"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{cfg}:3"))
            && err.contains("export.schedule")
            && err.contains("0 7 * *"),
        "{err}"
    );

    std::fs::write(
        &ws.config,
        format!("[testops]\nbase_url = \"{}\"\nproject_id = 1\ntree_id = 2\n[[testops.groups]]\nname = \"API\"\nid = 3\n", sim.base_url()),
    )
    .unwrap();
    let out = ws.run(&["export"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("`testops.token` is not set") && err.contains("TESTOPS_TOKEN"),
        "{err}"
    );
}

#[tokio::test]
async fn check_reports_each_backend_and_fails_on_a_bad_token_without_leaking_it() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let ws = Workspace::new(&sim.base_url(), "");
    let out = ws.run(&["check"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "ok   config:",
        "ok   export.schedule: `0 7 * * *`",
        "ok   export.dir:",
        "ok   testops:",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert!(stdout.contains("token exchange succeeded"), "{stdout}");

    let ws = Workspace::with_token(&sim.base_url(), "not-the-right-one", "");
    std::fs::set_permissions(&ws.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ws.run(&["check"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL testops:") && stdout.contains("refused the API token"),
        "{stdout}"
    );
    assert!(
        stdout.contains("readable by group or others") && stdout.contains("chmod 600"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("not-the-right-one") && !text(&out.stderr).contains("not-the-right-one")
    );
}

#[tokio::test]
async fn old_exporter_environment_works_without_a_config_file() {
    let sim = SimTestOps::start(SimOptions::default()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let exports = home.path().join("out");
    let token_file = home.path().join("testops_token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"));
    cmd.arg("check")
        .env_remove("OPSDECK_CONFIG")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("cfg"))
        .env("OPSDECK_DATA_DIR", home.path().join("data"))
        .env("TESTOPS_BASE_URL", sim.base_url())
        .env("TESTOPS_TOKEN_FILE", &token_file)
        .env("EXPORT_PATH", &exports)
        .env("CRON_SCHEDULE", "15 6 * * 1-5")
        .env_remove("TESTOPS_TOKEN");
    let out = cmd.output().await.unwrap();
    let stdout = text(&out.stdout);
    // No groups in the environment: check says so, everything else passes.
    assert!(
        stdout.contains("ok   testops:") && stdout.contains("`15 6 * * 1-5`"),
        "{stdout}"
    );
    assert!(stdout.contains(&exports.display().to_string()), "{stdout}");
    assert!(stdout.contains("FAIL testops.groups"), "{stdout}");
    assert_eq!(out.status.code(), Some(1));
}
