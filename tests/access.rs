//! Who may do what, with real Unix users: the server runs as its own system user and each
//! client runs as another user through `runuser`. The kernel's peer credentials decide; a
//! client's config, `SUDO_USER` or `SSH_CONNECTION` never do. Needs root (CI runs as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/server.rs"]
mod server;
#[path = "support/users.rs"]
mod users;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use server::{TestServer, text};
use users::sh;

/// Groups and users for each role; created once, kept (names are test-only).
fn users() -> bool {
    if !users::root("the access tests") {
        return false;
    }
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        users::ensure(
            &["odk_qa", "odk_ops"],
            &[
                ("odk_alice", "odk_qa"),
                ("odk_bob", "odk_ops"),
                ("odk_cibot", ""),
                ("odk_mallory", ""),
                ("odk_srv", ""),
            ],
        )
    });
    true
}

const ACCESS: &str = r#"[access]
viewers = ["@odk_ops", "@odk_qa", "odk_cibot"]
ci = ["odk_cibot", "odk_alice"]
approvers = ["@odk_qa"]
deployers = ["@odk_ops"]
self_approval = false
"#;

/// A server running as `odk_srv`, with its files in a state dir only it can read.
fn team_server() -> TestServer {
    let mut s = TestServer::new("0.1", ACCESS);
    std::fs::set_permissions(s.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Every user must be able to run the binary: a copy in the shared root.
    s.bin = users::runnable_copy_of_opsdeck(&s.dir);
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    for d in ["state", "run", "exports"] {
        let p = s.dir.join(d);
        std::fs::create_dir_all(&p).unwrap();
        sh(&["chown", "odk_srv", p.to_str().unwrap()]);
    }
    std::fs::set_permissions(s.dir.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.run_as = Some("odk_srv".into());
    s.read_as = Some("odk_bob".into());
    s.start();
    s
}

fn as_user(s: &TestServer, user: &str, args: &[&str]) -> std::process::Output {
    s.client_as(user, args).output().unwrap()
}

fn create_as(s: &TestServer, user: &str, tag: &str) -> i64 {
    let out = as_user(
        s,
        user,
        &[
            "release",
            "create",
            "--service",
            "api",
            "--tag",
            tag,
            "--status",
            "manual_testing",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().parse().unwrap()
}

fn audit(s: &TestServer, id: i64) -> Vec<serde_json::Value> {
    s.json(&format!("/v1/releases/{id}"))["audit"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn roles_come_from_the_servers_config_and_the_kernels_identity() {
    if !users() {
        return;
    }
    let s = team_server();

    // whoami: identity and roles as the server sees them.
    let out = as_user(&s, "odk_alice", &["whoami", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["user"], "odk_alice");
    assert!(
        me["groups"].as_array().unwrap().contains(&"odk_qa".into()),
        "{me}"
    );
    assert_eq!(
        me["roles"],
        serde_json::json!(["viewers", "ci", "approvers"])
    );
    // What a dashboard greys out: each action alice may not do, with the server's sentence.
    assert_eq!(
        me["refusals"]["rollback"],
        "odk_alice may not roll back: needs deployers (@odk_ops)"
    );
    assert!(me["refusals"].get("approve").is_none(), "{me}");

    // CI creates; an approver approves; the audit names the kernel's user.
    let id = create_as(&s, "odk_cibot", "v1.0.0");
    let out = as_user(&s, "odk_alice", &["release", "approve", &id.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    s.wait_status(id, "deployed");
    let a = audit(&s, id);
    assert_eq!(a[0]["actor"], "odk_cibot");
    assert_eq!(a[1]["actor"], "odk_alice");
    assert_eq!(a[1]["to"], "manual_test_passed");

    // A deployer who is no approver, with a client config that lists nobody as approver:
    // refused, exit 4, a sentence naming the person, the action and the role.
    let id = create_as(&s, "odk_cibot", "v1.1.0");
    let own = s.dir.join("bob.toml");
    std::fs::write(&own, "[releases]\napprovers = []\n").unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = audit(&s, id).len();
    let out = s
        .client_as("odk_bob", &["release", "approve", &id.to_string()])
        .env("OPSDECK_CONFIG", &own)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("odk_bob may not approve: needs approvers (@odk_qa)"),
        "{}",
        text(&out.stderr)
    );
    // Nothing changed but the refusal's audit entry.
    assert_eq!(s.status_of(id), "manual_testing");
    let a = audit(&s, id);
    assert_eq!(a.len(), before + 1);
    let last = a.last().unwrap();
    assert_eq!(last["actor"], "odk_bob");
    assert_eq!(last["from"], last["to"]);
    assert!(last["note"].as_str().unwrap().contains("refused"), "{last}");

    // root has no role it is not given, and SUDO_USER does not make it someone else.
    let out = s
        .client(&["release", "approve", &id.to_string()])
        .env("SUDO_USER", "odk_alice")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("root may not approve"),
        "{}",
        text(&out.stderr)
    );

    // Whoever created a release may not approve it (self_approval = false).
    let own_id = create_as(&s, "odk_alice", "v1.2.0");
    let out = as_user(
        &s,
        "odk_alice",
        &["release", "approve", &own_id.to_string()],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("they created it"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(s.status_of(own_id), "manual_testing");

    // Not a viewer: cannot even read.
    let out = as_user(&s, "odk_mallory", &["release", "list"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));

    // Rolling back is for deployers: alice is refused, bob may.
    let deployed = s.json("/v1/releases?status=deployed").as_array().unwrap()[0]["id"]
        .as_i64()
        .unwrap();
    let out = as_user(
        &s,
        "odk_alice",
        &["release", "rollback", &deployed.to_string(), "--to", "v0.9"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    // A tag that never ran needs --force (issue 9, release input).
    let out = as_user(
        &s,
        "odk_bob",
        &["release", "rollback", &deployed.to_string(), "--to", "v0.9"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("never ran"),
        "{}",
        text(&out.stderr)
    );
    let out = as_user(
        &s,
        "odk_bob",
        &[
            "release",
            "rollback",
            &deployed.to_string(),
            "--to",
            "v0.9",
            "--force",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // What a client says about its SSH origin is kept, marked unverified.
    let id = create_as(&s, "odk_cibot", "v1.3.0");
    let out = s
        .client_as(
            "odk_alice",
            &[
                "release",
                "reject",
                &id.to_string(),
                "--reason",
                "broken login",
            ],
        )
        .env("SSH_CONNECTION", "203.0.113.9 52000 10.0.0.1 22")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let last = audit(&s, id).last().unwrap().clone();
    assert_eq!(last["actor"], "odk_alice");
    assert_eq!(last["ssh_client"], "203.0.113.9 (unverified)");
}

#[test]
fn the_servers_files_belong_to_the_server_alone() {
    if !users() {
        return;
    }
    let s = team_server();
    let id = create_as(&s, "odk_cibot", "v2.0.0");
    assert!(id > 0);
    let srv = nix::unistd::User::from_name("odk_srv").unwrap().unwrap();
    let ledger = s.data.join("releases.db");
    let meta = std::fs::metadata(&ledger).unwrap();
    assert_eq!(meta.uid(), srv.uid.as_raw());
    assert_eq!(meta.mode() & 0o077, 0, "ledger mode {:o}", meta.mode());
    // Another user cannot open it, so the API is the only way in.
    let out = Command::new("runuser")
        .args(["-u", "odk_bob", "--", "cat"])
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Nor write the ledger in local mode behind the server's back.
    let out = s
        .client_as("odk_bob", &["--local", "release", "list"])
        .env("OPSDECK_DATA_DIR", &s.data)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out.stdout));
}
