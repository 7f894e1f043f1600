use super::*;

fn env_none(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_parts(Some(Path::new("/etc/opsdeck.toml")), text, &env_none)
}

#[test]
fn defaults_match_the_design() {
    let c = load("").unwrap();
    assert_eq!(c.export.dir, PathBuf::from("./exports"));
    assert_eq!(c.export.schedule.expr(), "0 7 * * *");
    assert_eq!(c.export.retention_days, 30);
    assert_eq!(c.export.max_attempts, 3);
    assert_eq!(c.export.retry_delays, vec![secs(300), secs(600), secs(900)]);
    assert_eq!(c.export.catch_up, secs(6 * 3600));
    assert_eq!(c.testops.mapping.len(), 26);
    assert_eq!(c.logging.keep_days, 14);
}

#[test]
fn unknown_key_names_key_file_line_and_table() {
    let e =
        load("[testops]\nbase_url = \"https://x\"\n\n[export]\nretention_day = 3\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("/etc/opsdeck.toml:5:"), "{msg}");
    assert!(msg.contains("unknown key `retention_day`"), "{msg}");
    assert!(msg.contains("(in [export])"), "{msg}");
}

#[test]
fn bad_cron_names_the_key_and_line() {
    let e = load("[export]\n\nschedule = \"0 25 * * *\"\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/etc/opsdeck.toml:3"), "{msg}");
    assert!(msg.contains("export.schedule"), "{msg}");
    assert!(msg.contains("0 25 * * *"), "{msg}");
}

#[test]
fn bad_duration_and_timezone_are_explained() {
    let e = load("[export]\nretry_delays = [\"5m\", \"soon\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":2:") && e.contains("export.retry_delays") && e.contains("soon"),
        "{e}"
    );
    let e = load("[export]\ntimezone = \"Mars/Olympus\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("export.timezone") && e.contains("Mars/Olympus"),
        "{e}"
    );
}

#[test]
fn env_overrides_file_and_cli_env_names_match_the_old_exporter() {
    let text = "[testops]\nbase_url = \"https://file\"\ntoken = \"from-file\"\n[export]\ndir = \"/file\"\nschedule = \"0 1 * * *\"\n";
    let env = |k: &str| match k {
        "TESTOPS_BASE_URL" => Some("https://env/".to_string()),
        "TESTOPS_TOKEN" => Some("from-env".to_string()),
        "EXPORT_PATH" => Some("/env".to_string()),
        "CRON_SCHEDULE" => Some("0 2 * * *".to_string()),
        _ => None,
    };
    let c = Config::from_parts(None, text, &env).unwrap();
    assert_eq!(c.testops.base_url.as_deref(), Some("https://env"));
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(c.require_token().unwrap()),
        "from-env"
    );
    assert_eq!(c.testops.token_origin, Origin::Env("TESTOPS_TOKEN"));
    assert_eq!(c.export.dir, PathBuf::from("/env"));
    assert_eq!(c.export.schedule.expr(), "0 2 * * *");
    let e = Config::from_parts(None, "", &|k: &str| {
        (k == "CRON_SCHEDULE").then(|| "nope".to_string())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("CRON_SCHEDULE"), "{e}");
}

#[test]
fn missing_token_says_how_to_set_it_and_secrets_never_print() {
    let c = load("[testops]\nbase_url = \"https://x\"\n").unwrap();
    let e = c.require_token().unwrap_err().to_string();
    assert!(
        e.contains("testops.token")
            && e.contains("/etc/opsdeck.toml")
            && e.contains("TESTOPS_TOKEN"),
        "{e}"
    );
    let c = load("[testops]\ntoken = \"s3cr3t-value\"\n").unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
}

#[test]
fn token_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tok");
    std::fs::write(&f, "abc123\n").unwrap();
    let text = format!("[testops]\ntoken_file = \"{}\"\n", f.display());
    let c = load(&text).unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(c.require_token().unwrap()),
        "abc123"
    );
    std::fs::write(&f, "  \n").unwrap();
    assert!(load(&text).unwrap_err().to_string().contains("empty"));
}

#[test]
fn groups_inherit_project_and_tree_and_are_validated() {
    let c = load(
        "[testops]\nproject_id = 17\ntree_id = 937\n[[testops.groups]]\nname = \"API\"\nid = 1\n\
         [[testops.groups]]\nname = \"UI\"\nid = 2\nproject_id = 5\n",
    )
    .unwrap();
    assert_eq!(
        c.testops.groups[0],
        Group {
            name: "API".into(),
            id: 1,
            project_id: 17,
            tree_id: 937
        }
    );
    assert_eq!(c.testops.groups[1].project_id, 5);
    assert_eq!(c.select_groups(&["ui".into()]).unwrap()[0].name, "UI");
    assert!(
        c.select_groups(&["web".into()])
            .unwrap_err()
            .contains("API, UI")
    );
    let e = load("[[testops.groups]]\nname = \"A_B\"\nid = 1\nproject_id = 1\ntree_id = 1\n")
        .unwrap_err();
    assert!(e.to_string().contains(":2"), "{e}");
    let e = load("[[testops.groups]]\nname = \"API\"\nid = 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("testops.project_id"), "{e}");
}

#[test]
fn custom_mapping_replaces_the_default() {
    let c = load("[[testops.mapping]]\nfield = \"role\"\nname = \"Owner\"\nroleId = -1\nitemsSeparator = \",\"\n").unwrap();
    assert_eq!(c.testops.mapping.len(), 1);
    assert_eq!(c.testops.mapping[0].role_id, Some(-1));
}

#[test]
fn example_config_parses_and_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = Config::from_parts(Some(&path), &text, &|k: &str| {
        // token_file points at a Docker secret that does not exist here.
        (k == "TESTOPS_TOKEN").then(|| "t".to_string())
    })
    .unwrap();
    assert_eq!(c.testops.groups.len(), 2);
    // Every key of docs/contracts.md's table, and every env var, is mentioned.
    for key in [
        "base_url",
        "token",
        "token_file",
        "project_id",
        "tree_id",
        "[[testops.groups]]",
        "dir",
        "schedule",
        "timezone",
        "retention_days",
        "max_attempts",
        "retry_delays",
        "catch_up",
        "ledger",
        "deployer",
        "approvers",
        "sources",
        "keep_days",
        "[[testops.mapping]]",
        "TESTOPS_BASE_URL",
        "TESTOPS_TOKEN",
        "TESTOPS_TOKEN_FILE",
        "EXPORT_PATH",
        "CRON_SCHEDULE",
        "allow_http",
        "ca_file",
        "SSL_CERT_FILE",
        "[testops.client_auth]",
        "delete_after_download",
        "max_bytes",
        "attempt_timeout",
        "min_rate",
        "allow_sub_minute",
        "listen",
        "tls_cert",
        "tls_key",
        "group = ",
        "[storage]",
        "password_file",
    ] {
        assert!(
            text.contains(key),
            "config.example.toml does not mention {key}"
        );
    }
}

#[test]
fn the_tcp_listener_needs_tls_off_loopback() {
    assert!(load("").unwrap().listen.is_none());
    for addr in ["127.0.0.1:7443", "[::1]:7443"] {
        let c = load(&format!("[server]\nlisten = \"{addr}\"\n")).unwrap();
        let l = c.listen.unwrap();
        assert!(l.addr.ip().is_loopback() && l.tls.is_none());
    }
    let msg = load("[server]\n\nlisten = \"0.0.0.0:7443\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("/etc/opsdeck.toml:3: invalid value for `server.listen`"),
        "{msg}"
    );
    assert!(
        msg.contains("server.tls_cert") && msg.contains("server.tls_key"),
        "{msg}"
    );
    let c = load(
        "[server]\nlisten = \"0.0.0.0:7443\"\ntls_cert = \"/etc/c.pem\"\ntls_key = \"/etc/k.pem\"\n",
    )
    .unwrap();
    let tls = c.listen.unwrap().tls.unwrap();
    assert_eq!(tls.key, PathBuf::from("/etc/k.pem"));
    let msg = load("[server]\nlisten = \"0.0.0.0:7443\"\ntls_cert = \"/etc/c.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`server.tls_key`"), "{msg}");
    let msg = load("[server]\nlisten = \"manager:7443\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is not an IP address and port"), "{msg}");
    // TLS files without a listener: a warning, no listener.
    let c = load("[server]\ntls_cert = \"/etc/c.pem\"\ntls_key = \"/etc/k.pem\"\n").unwrap();
    assert!(c.listen.is_none());
    assert!(c.warnings.iter().any(|w| w.contains("server.listen")));
}

#[test]
fn failure_policy_and_health_gate_are_read_and_checked() {
    let svc = "[[releases.services]]\nname = \"api\"\n";
    let c = load(svc).unwrap();
    let s = &c.releases.services[0];
    assert_eq!(
        (
            s.on_failure,
            s.health_url.as_deref(),
            s.health_retries,
            s.health_timeout
        ),
        (OnFailure::Rollback, None, 3, secs(60))
    );
    let c = load(&format!(
        "{svc}on_failure = \"pause\"\nhealth_url = \"http://127.0.0.1:8080/health\"\nhealth_retries = 5\nhealth_timeout = \"20s\"\n"
    ))
    .unwrap();
    let s = &c.releases.services[0];
    assert_eq!(
        (s.on_failure, s.health_retries, s.health_timeout),
        (OnFailure::Pause, 5, secs(20))
    );
    for (bad, key, line) in [
        ("on_failure = \"retry\"", "releases.services.on_failure", 3),
        (
            "health_url = \"ftp://x/health\"",
            "releases.services.health_url",
            3,
        ),
        ("health_retries = 0", "releases.services.health_retries", 3),
        (
            "health_timeout = \"soon\"",
            "releases.services.health_timeout",
            3,
        ),
    ] {
        let e = load(&format!("{svc}{bad}\n")).unwrap_err().to_string();
        assert!(
            e.contains(key) && e.contains(&format!("/etc/opsdeck.toml:{line}")),
            "{bad}: {e}"
        );
    }
}

#[test]
fn storage_is_sqlite_unless_a_url_is_set() {
    assert!(load("").unwrap().storage.is_none());
    let c = load("[storage]\nurl = \"postgres://opsdeck@db.internal/opsdeck\"\n").unwrap();
    let pg = c.storage.as_ref().unwrap();
    assert_eq!(pg.url(), "postgres://opsdeck@db.internal/opsdeck");
    assert!(!pg.has_password());
    // Plain TCP to another host is allowed, with a warning naming the file and line.
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("/etc/opsdeck.toml:2") && w.contains("db.internal")),
        "{:?}",
        c.warnings
    );
    // A Unix socket or loopback: no warning.
    for url in [
        "postgres:///opsdeck?host=/run/postgresql",
        "postgres://opsdeck@127.0.0.1:5432/opsdeck",
        "postgresql://opsdeck@localhost/opsdeck",
    ] {
        let c = load(&format!("[storage]\nurl = \"{url}\"\n")).unwrap();
        assert!(c.warnings.is_empty(), "{url}: {:?}", c.warnings);
    }
}

#[test]
fn storage_errors_name_key_file_and_line_and_never_the_password() {
    let cases = [
        ("url = \"mysql://x/y\"", "storage.url", "postgres://"),
        (
            "url = \"postgres://u:hunter2-pw@h/db\"",
            "storage.url",
            "password_file",
        ),
        (
            "url = \"postgres://u@h/db?password=hunter2-pw\"",
            "storage.url",
            "password_file",
        ),
        (
            "url = \"postgres://u@h/db?port=x\"",
            "storage.url",
            "not a PostgreSQL URL",
        ),
        (
            "password_file = \"/nonexistent/pw\"",
            "storage.password_file",
            "storage.url is not",
        ),
        (
            "password_file = \"/nonexistent/pw\"\nurl = \"postgres://u@h/db\"",
            "storage.password_file",
            "cannot read /nonexistent/pw",
        ),
        (
            "url_file = \"/nonexistent/url\"",
            "storage.url_file",
            "cannot read /nonexistent/url",
        ),
        (
            "url_file = \"/nonexistent/url\"\nurl = \"postgres://u@h/db\"",
            "storage.url_file",
            "give one of them",
        ),
    ];
    for (body, key, says) in cases {
        let e = load(&format!("# storage\n[storage]\n{body}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/opsdeck.toml:3:"), "{e}");
        assert!(e.contains(&format!("`{key}`")), "{e}");
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("hunter2-pw"), "{e}");
    }
}

#[test]
fn the_storage_password_comes_from_its_file_and_is_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pg_password");
    std::fs::write(&f, "s3cret-pg-Pw\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[storage]\nurl = \"postgres://opsdeck@127.0.0.1/opsdeck\"\npassword_file = \"{}\"\n",
        f.display()
    );
    let c = load(&text).unwrap();
    assert!(c.storage.as_ref().unwrap().has_password());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let shown = format!("{c:?} {}", c.storage.as_ref().unwrap());
    assert!(!shown.contains("s3cret-pg-Pw"), "{shown}");
    // Registered as a secret: any echo of it is masked.
    assert!(!crate::sanitize::clean("auth s3cret-pg-Pw failed").contains("s3cret-pg-Pw"));
    // Readable by others: a warning, like the token file.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = load(&text).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("chmod 600")),
        "{:?}",
        c.warnings
    );
    // Empty: refused.
    std::fs::write(&f, "\n").unwrap();
    let e = load(&text).unwrap_err().to_string();
    assert!(
        e.contains("storage.password_file") && e.contains("is empty"),
        "{e}"
    );
}

#[test]
fn ui_theme_and_readonly_are_read_and_an_unknown_theme_is_named() {
    let c = load("").unwrap();
    assert_eq!((c.ui.theme.as_str(), c.ui.readonly), ("default", false));
    let c = load("[ui]\ntheme = \"high-contrast\"\nreadonly = true\n").unwrap();
    assert_eq!(
        (c.ui.theme.as_str(), c.ui.readonly),
        ("high-contrast", true)
    );
    let e = load("[ui]\nnotify = true\ntheme = \"solarized\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ui.theme")
            && e.contains("/etc/opsdeck.toml:3")
            && e.contains("default, light, high-contrast"),
        "{e}"
    );
}

#[test]
fn storage_url_from_a_file_as_docker_secrets_give_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("url");
    std::fs::write(&f, "postgres:///opsdeck?host=/run/postgresql\n").unwrap();
    let c = load(&format!("[storage]\nurl_file = \"{}\"\n", f.display())).unwrap();
    assert_eq!(
        c.storage.unwrap().url(),
        "postgres:///opsdeck?host=/run/postgresql"
    );
    // A password in the file is refused as in `url`, naming the file's key.
    std::fs::write(&f, "postgres://u:hunter2-pw@h/db\n").unwrap();
    let e = load(&format!("[storage]\nurl_file = \"{}\"\n", f.display()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`storage.url_file`") && !e.contains("hunter2"),
        "{e}"
    );
}
