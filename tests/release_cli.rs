//! `opsdeck release ...` through the real binary, with the command deployer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

use std::path::PathBuf;
use std::process::Output;

struct Desk {
    _root: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Desk {
    /// A config with services `api` and `web`; the deploy fails while `<dir>/fail` exists.
    fn new(extra: &str) -> Desk {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_path_buf();
        let config = dir.join("config.toml");
        let fail = dir.join("fail");
        std::fs::write(
            &config,
            format!(
                r#"[releases]
deployer = "command"
{extra}

[[releases.services]]
name = "api"
repository = "registry.example.com/team/api"

[[releases.services]]
name = "web"

[releases.command]
deploy = ["sh", "-c", "sleep 0.3; echo deploying $OPSDECK_IMAGE; test ! -e \"$0\"", "{fail}"]
rollback = ["sh", "-c", "echo rolling back to {{rollback_to_tag}} $OPSDECK_ROLLBACK_TO_TAG"]
"#,
                fail = fail.display()
            ),
        )
        .unwrap();
        Desk {
            _root: root,
            dir,
            config,
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"));
        c.arg("release")
            .args(args)
            .env("OPSDECK_CONFIG", &self.config)
            .env("OPSDECK_DATA_DIR", self.dir.join("data"))
            .env("OPSDECK_SOCKET", self.dir.join("no-server.sock"))
            .env_remove("OPSDECK_SERVER");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn create(&self, service: &str, tag: &str) -> i64 {
        self.ok(&[
            "create",
            "--service",
            service,
            "--tag",
            tag,
            "--status",
            "manual_testing",
            "--initiated-by",
            "ci",
        ])
        .trim()
        .parse()
        .unwrap()
    }
}

fn status_of(d: &Desk, id: i64) -> String {
    d.json(&["show", &id.to_string(), "--json"])["release"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn create_list_show_and_their_json_shapes() {
    let d = Desk::new("");
    let id = d
        .ok(&[
            "create",
            "--service",
            "api",
            "--tag",
            "v1.2.0",
            "--initiated-by",
            "ci-bot",
            "--github-run-id",
            "77",
            "--github-link",
            "https://github.com/o/r/actions/runs/77",
            "--github-ref",
            "refs/tags/v1.2.0",
        ])
        .trim()
        .parse::<i64>()
        .unwrap();
    d.ok(&["status", &id.to_string(), "building"]);
    d.ok(&[
        "status",
        &id.to_string(),
        "manual_testing",
        "--note",
        "staging ok",
    ]);
    let list = d.json(&["list", "--json"]);
    let r = &list.as_array().unwrap()[0];
    for key in [
        "id",
        "service_name",
        "release_tag",
        "rollback_to_tag",
        "status",
        "initiated_by",
        "github_run_id",
        "github_action_link",
        "github_ref",
        "created_at",
        "started_at",
        "completed_at",
    ] {
        assert!(r.get(key).is_some(), "list --json lacks {key}: {r}");
    }
    assert_eq!(
        (r["status"].as_str(), r["github_run_id"].as_str()),
        (Some("manual_testing"), Some("77"))
    );
    let show = d.json(&["show", &id.to_string(), "--json"]);
    let audit = show["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 3);
    assert_eq!(audit[2]["to"], "manual_testing");
    assert_eq!(audit[2]["note"], "staging ok");
    assert!(audit[2]["actor"].as_str().is_some_and(|a| !a.is_empty()));
    assert_eq!(
        d.json(&["list", "--service", "web", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        d.json(&["list", "--status", "manual_testing", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let human = d.ok(&["show", &id.to_string()]);
    assert!(
        human.contains("api v1.2.0 — manual_testing") && human.contains("staging ok"),
        "{human}"
    );
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let d = Desk::new("");
    for (args, says) in [
        (
            vec!["create", "--service", "api", "--tag=-bad"],
            "not a valid tag",
        ),
        (
            vec!["create", "--service", "api", "--tag", "v1:latest"],
            "not a valid tag",
        ),
        (
            vec!["create", "--service", "db", "--tag", "v1"],
            "service `db` is not configured; configured services: api, web",
        ),
        (
            vec![
                "create",
                "--service",
                "api",
                "--tag",
                "v1",
                "--status",
                "deployed",
            ],
            "starts as initiated",
        ),
        (
            vec![
                "create",
                "--service",
                "api",
                "--tag",
                "v1",
                "--status",
                "approved",
            ],
            "unknown status",
        ),
    ] {
        let out = d.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(d.json(&["list", "--json"]).as_array().unwrap().len(), 0);

    let id = d
        .ok(&["create", "--service", "api", "--tag", "v1"])
        .trim()
        .to_string();
    let out = d.run(&["approve", &id]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("release 1 is initiated")
            && err.contains("from initiated only building is allowed"),
        "{err}"
    );
    let out = d.run(&["status", &id, "deployed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("use approve, reject or rollback"));
    assert_eq!(d.run(&["show", "99"]).status.code(), Some(2));
    assert_eq!(
        d.json(&["show", &id, "--json"])["audit"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was written"
    );
}

#[test]
fn approve_deploys_with_the_command_and_rollback_returns_to_the_previous_tag() {
    let d = Desk::new("");
    let v1 = d.create("api", "v1");
    d.ok(&["approve", &v1.to_string()]);
    assert_eq!(status_of(&d, v1), "deployed");
    let log = d.dir.join("data/deployments/api/v1-prod.log");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("deploying registry.example.com/team/api:v1")
    );

    let v2 = d.create("api", "v2");
    d.ok(&["approve", &v2.to_string()]);
    let out = d.ok(&["rollback", &v2.to_string()]);
    assert!(out.contains("rollback_done"), "{out}");
    let show = d.json(&["show", &v2.to_string(), "--json"]);
    assert_eq!(show["release"]["rollback_to_tag"], "v1");
    let log = std::fs::read_to_string(d.dir.join("data/deployments/api/v2-rollback.log")).unwrap();
    assert!(log.contains("rolling back to v1 v1"), "{log}");

    // A failing deploy: production_failed and exit 1; then it can be rolled back --to a tag.
    std::fs::write(d.dir.join("fail"), "").unwrap();
    let v3 = d.create("api", "v3");
    let out = d.run(&["approve", &v3.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("production_failed"));
    assert_eq!(status_of(&d, v3), "production_failed");
    d.ok(&["rollback", &v3.to_string(), "--to", "v1"]);
    assert_eq!(status_of(&d, v3), "rollback_done");
    // Nothing deployed before web: rollback needs --to.
    let w = d.create("web", "w1");
    d.ok(&[
        "reject",
        &w.to_string(),
        "--reason",
        "login broken on Safari",
    ]);
    let show = d.json(&["show", &w.to_string(), "--json"]);
    assert_eq!(show["release"]["status"], "manual_test_failed");
    assert_eq!(show["audit"][1]["note"], "login broken on Safari");
}

#[test]
fn only_approvers_may_act_and_refusals_are_audited() {
    let d = Desk::new(r#"approvers = ["somebody-else", "@no-such-group"]"#);
    let id = d.create("api", "v1");
    for args in [
        vec!["approve", "1"],
        vec!["reject", "1", "--reason", "no"],
        vec!["rollback", "1", "--to", "v0"],
    ] {
        let out = d.run(&args);
        // Exit 4: not allowed (the same code the server's 403 gives).
        assert_eq!(out.status.code(), Some(4), "{args:?}");
        assert!(
            text(&out.stderr).contains("is not in releases.approvers"),
            "{}",
            text(&out.stderr)
        );
    }
    let show = d.json(&["show", &id.to_string(), "--json"]);
    assert_eq!(show["release"]["status"], "manual_testing");
    let audit = show["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 4);
    assert!(
        audit[1]["note"]
            .as_str()
            .unwrap()
            .starts_with("refused approve")
    );
    // Anyone may look.
    d.ok(&["list"]);
}

#[test]
fn two_processes_approving_at_once_one_wins() {
    let d = Desk::new("");
    let id = d.create("api", "v1").to_string();
    let a = d
        .cmd(&["approve", &id])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = d
        .cmd(&["approve", &id])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(2)),
        "{codes:?}"
    );
    let loser = if a.status.success() { &b } else { &a };
    let err = text(&loser.stderr);
    assert!(
        err.contains("(root approved it ")
            || err.contains("(root set it to deploying ")
            || err.contains("(root set it to deployed "),
        "{err}"
    );
    assert_eq!(status_of(&d, id.parse().unwrap()), "deployed");
    let audit = d.json(&["show", &id, "--json"])["audit"]
        .as_array()
        .unwrap()
        .len();
    // created (manual_testing), manual_test_passed, deploying, deployed.
    assert_eq!(audit, 4);
}

#[test]
fn reconcile_settles_a_deploy_left_hanging_but_not_one_still_running() {
    use opsdeck::release::{Actor, Ledger, Status};
    let d = Desk::new("");
    let id = d.create("api", "v1");
    // A process that died mid-deploy left the release in deploying.
    let mut ledger = Ledger::open(&d.dir.join("data/releases.db")).unwrap();
    let actor = Actor {
        user: "gone".into(),
        sudo_user: None,
        ssh_client: None,
    };
    ledger
        .transition(id, Status::ManualTestPassed, &actor, None, None)
        .unwrap();
    ledger
        .transition(id, Status::Deploying, &actor, None, None)
        .unwrap();

    // While another process holds the release's work lock, it is left alone.
    let lock_dir = d.dir.join("data/deployments");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let lock = std::fs::File::create(lock_dir.join(format!(".release-{id}.lock"))).unwrap();
    lock.lock().unwrap();
    d.ok(&["reconcile"]);
    assert_eq!(status_of(&d, id), "deploying");
    drop(lock);

    d.ok(&["reconcile"]);
    assert_eq!(status_of(&d, id), "production_failed");
    let show = d.json(&["show", &id.to_string(), "--json"]);
    let note = show["audit"].as_array().unwrap().last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(note.contains("interrupted"), "{note}");
}

/// Issue 9, release input: `--image` outside the service's repositories was deployed unseen.
#[test]
fn image_must_be_of_the_services_repositories_and_is_shown() {
    let d = Desk::new("");
    let out = d.run(&[
        "create",
        "--service",
        "api",
        "--tag",
        "v1",
        "--image",
        "evil.example.com/miner",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("evil.example.com/miner") && err.contains("registry.example.com/team/api"),
        "{err}"
    );
    assert_eq!(d.json(&["list", "--json"]).as_array().unwrap().len(), 0);

    // Without --image the configured repository is stored, and show names the whole image.
    let id = d.create("api", "v1");
    let out = d.ok(&["show", &id.to_string()]);
    assert!(
        out.contains("image          registry.example.com/team/api:v1"),
        "{out}"
    );
    let show = d.json(&["show", &id.to_string(), "--json"]);
    assert_eq!(show["release"]["image"], "registry.example.com/team/api");
}

#[test]
fn allowed_repositories_admit_another_image() {
    let d = Desk::new("");
    // The service table is appended to by rewriting the config: api gains a mirror.
    let config = std::fs::read_to_string(&d.config).unwrap().replace(
        "repository = \"registry.example.com/team/api\"",
        "repository = \"registry.example.com/team/api\"\nallowed_repositories = [\"mirror.example.com/team/api\"]",
    );
    std::fs::write(&d.config, config).unwrap();
    let id = d.ok(&[
        "create",
        "--service",
        "api",
        "--tag",
        "v2",
        "--image",
        "mirror.example.com/team/api",
        "--status",
        "manual_testing",
    ]);
    let out = d.ok(&["show", id.trim()]);
    assert!(out.contains("mirror.example.com/team/api:v2"), "{out}");
    d.ok(&["approve", id.trim()]);
    let log = std::fs::read_to_string(d.dir.join("data/deployments/api/v2-prod.log")).unwrap();
    assert!(
        log.contains("deploying mirror.example.com/team/api:v2"),
        "{log}"
    );
}

#[test]
fn no_value_may_start_with_a_dash() {
    let d = Desk::new("");
    for (flag, value) in [
        ("--github-ref", "--upload-pack=touch /tmp/x"),
        ("--initiated-by", "-rf"),
        ("--image", "--privileged"),
    ] {
        let arg = format!("{flag}={value}");
        let out = d.run(&["create", "--service", "api", "--tag", "v1", &arg]);
        assert_eq!(out.status.code(), Some(2), "{arg}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("starts with `-`"),
            "{}",
            text(&out.stderr)
        );
    }
    let id = d.create("api", "v1");
    let out = d.run(&["reject", &id.to_string(), "--reason=--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(status_of(&d, id), "manual_testing");
    assert_eq!(d.json(&["list", "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn rollback_to_a_tag_that_never_ran_needs_force() {
    let d = Desk::new("");
    let v1 = d.create("api", "v1");
    d.ok(&["approve", &v1.to_string()]);
    let v2 = d.create("api", "v2");
    d.ok(&["approve", &v2.to_string()]);
    let out = d.run(&["rollback", &v2.to_string(), "--to", "v0.9"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("never ran") && err.contains("v1"), "{err}");
    assert_eq!(status_of(&d, v2), "deployed");
    let out = d.ok(&["rollback", &v2.to_string(), "--to", "v0.9", "--force"]);
    assert!(out.contains("rollback_done"), "{out}");
    let show = d.json(&["show", &v2.to_string(), "--json"]);
    assert_eq!(show["release"]["rollback_to_tag"], "v0.9");
}

/// `release cancel` needs a server's queue; `release deploy` refuses what is not approved and
/// is for approvers, as approving is.
#[test]
fn deploy_and_cancel_in_local_mode() {
    let d = Desk::new("");
    let id = d.create("api", "v1");
    let out = d.run(&["cancel", &id.to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("only a server queues deploys"),
        "{}",
        text(&out.stderr)
    );
    // Waiting for its verdict, not approved: deploy is a forbidden transition.
    let out = d.run(&["deploy", &id.to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(status_of(&d, id), "manual_testing");
    let d = Desk::new(r#"approvers = ["somebody-else"]"#);
    let id = d.create("api", "v1");
    let out = d.run(&["deploy", &id.to_string()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
}
