//! CI over the network: `opsdeck run` with `server.listen`, TLS from a certificate made here
//! with rcgen, and bearer tokens from `opsdeck token`; called with curl like a CI step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic

#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::process::Command;

use server::{TestServer, free_port, text};

/// A self-signed certificate for 127.0.0.1 (rcgen): `srv.pem`, `srv.key`.
fn self_signed(dir: &Path) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("srv.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("srv.key"), ck.signing_key.serialize_pem()).unwrap();
}

/// A wrong token that does not look like one, so the log's redaction would not hide it.
const WRONG: &str = "not-an-opsdeck-token-7f3a9c41";

/// Every regular file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            found.extend(files_holding(&e.path(), needle));
        } else if ft.is_file() {
            let bytes = std::fs::read(e.path()).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(e.path());
            }
        }
    }
    found
}

/// curl to `url` with an optional bearer token and body: (status, body, curl's exit code).
fn curl(
    url: &str,
    cacert: Option<&Path>,
    token: Option<&str>,
    method: &str,
    body: Option<&str>,
) -> (u16, String, i32) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    if let Some(ca) = cacert {
        c.arg("--cacert").arg(ca);
    }
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        c.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    let out = c.arg(url).output().expect("curl");
    let t = text(&out.stdout);
    let (b, code) = t.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        b.to_string(),
        out.status.code().unwrap_or(-1),
    )
}

/// `token create`: the token (stdout, one line), after checking it is printed exactly once.
fn create_token(s: &TestServer, name: &str, role: &str) -> String {
    let out = s
        .client(&["token", "create", name, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let token = stdout.trim().to_string();
    assert!(
        token.starts_with("odk_") && token.len() == 47,
        "stdout: {stdout}"
    );
    assert_eq!(stdout.matches(&token).count(), 1, "{stdout}");
    assert!(!text(&out.stderr).contains(&token), "{}", text(&out.stderr));
    token
}

#[test]
fn a_ci_token_over_tls_creates_releases_and_nothing_more() {
    let port = free_port();
    let pki = tempfile::tempdir().unwrap();
    self_signed(pki.path());
    let (cert, key) = (pki.path().join("srv.pem"), pki.path().join("srv.key"));
    let mut s = TestServer::new(
        "0.1",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    // Everything every crate logs, to show that no token reaches the log.
    s.env.push(("RUST_LOG".into(), "trace".into()));
    s.start();
    let token = create_token(&s, "gha", "ci");
    let base = format!("https://127.0.0.1:{port}");
    let ca = Some(cert.as_path());
    let tok = Some(token.as_str());

    // Create a release and set its CI status, as a workflow step would.
    let (code, body, _) = curl(
        &format!("{base}/v1/releases"),
        ca,
        tok,
        "POST",
        Some(r#"{"service_name":"api","release_tag":"v2.0.0","github_run_id":"77"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    for status in ["building", "manual_testing"] {
        let (code, body, _) = curl(
            &format!("{base}/v1/releases/{id}/status"),
            ca,
            tok,
            "POST",
            Some(&format!(r#"{{"status":"{status}"}}"#)),
        );
        assert_eq!(code, 200, "{body}");
    }
    let audit = &s.json(&format!("/v1/releases/{id}"))["audit"];
    let actors: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["token/gha"; 3], "{audit}");

    // The same token may not approve: 403 with the role sentence, recorded, nothing changed.
    let (code, body, _) = curl(
        &format!("{base}/v1/releases/{id}/approve"),
        ca,
        tok,
        "POST",
        None,
    );
    assert_eq!(code, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["error"],
        "token/gha may not approve: needs approvers (the token's role is ci)"
    );
    assert_eq!(v["code"], "forbidden");
    assert_eq!(s.status_of(id), "manual_testing");
    let audit = s.json(&format!("/v1/releases/{id}"))["audit"].clone();
    assert!(
        audit
            .to_string()
            .contains("refused: token/gha may not approve")
    );
    // People see who it was: `release show` prints the actor unmasked.
    let show = s.ok(&["release", "show", &id.to_string()]);
    assert!(show.contains("token/gha"), "{show}");
    assert!(
        show.contains("refused: token/gha may not approve"),
        "{show}"
    );
    // Nor manage tokens over the network.
    let (code, body, _) = curl(&format!("{base}/v1/tokens"), ca, tok, "GET", None);
    assert_eq!(code, 403, "{body}");
    // It reads.
    let (code, body, _) = curl(&format!("{base}/v1/whoami"), ca, tok, "GET", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""roles":["viewers","ci"]"#), "{body}");

    // No token, a malformed one, another scheme: 401 in the error shape, on every route.
    for (path, auth) in [
        ("/v1/releases", None),
        ("/v1/health", None),
        ("/metrics", None),
        (
            "/v1/releases",
            Some("odk_not-a-real-token-at-all-0000000000000000000"),
        ),
        ("/v1/whoami", Some(WRONG)),
    ] {
        let (code, body, _) = curl(&format!("{base}{path}"), ca, auth, "GET", None);
        assert_eq!(code, 401, "{path} {auth:?}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "unauthorized", "{body}");
        assert!(v["error"].is_string());
    }

    // Plain HTTP to the TLS port gets no HTTP answer at all.
    let (code, body, exit) = curl(
        &format!("http://127.0.0.1:{port}/v1/releases"),
        None,
        tok,
        "GET",
        None,
    );
    assert_eq!(code, 0, "{body}");
    assert_ne!(exit, 0);

    // The socket ignores bearer headers: peer credentials stay the identity.
    let out = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(&s.socket)
        .args([
            "-H",
            "Authorization: Bearer odk_whatever-xxxxxxxxxxxxxxxxxxxxxxxx",
        ])
        .arg("http://opsdeck/v1/whoami")
        .output()
        .unwrap();
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !who["user"].as_str().unwrap().starts_with("token/"),
        "{who}"
    );

    // `token list` names it, never shows it; the store holds only its SHA-256.
    let list = s.ok(&["token", "list"]);
    assert!(list.contains("gha") && list.contains("ci"), "{list}");
    assert!(!list.contains(&token) && !list.contains("odk_"), "{list}");
    let json = s.ok(&["token", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(rows[0]["last_used"].is_string(), "{json}");
    assert!(!json.contains(&token));
    let db = s.data.join("tokens.db");
    let raw = std::fs::read(&db).unwrap();
    let secret_part = token.trim_start_matches("odk_");
    assert!(
        !raw.windows(secret_part.len())
            .any(|w| w == secret_part.as_bytes()),
        "the raw token is in tokens.db"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let hash: Vec<u8> = conn
        .query_row("SELECT hash FROM tokens WHERE name = 'gha'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let want = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    assert_eq!(hash, want.as_ref());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // An approvers token approves it, and the audit says which token did.
    let qa = create_token(&s, "qa", "approvers");
    let (code, body, _) = curl(
        &format!("{base}/v1/releases/{id}/approve?wait=1"),
        ca,
        Some(&qa),
        "POST",
        None,
    );
    assert_eq!(code, 200, "{body}");
    s.wait_status(id, "deployed");
    let audit = s.json(&format!("/v1/releases/{id}"))["audit"].clone();
    let approved = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["to"] == "manual_test_passed")
        .unwrap_or_else(|| panic!("no approval in {audit}"));
    assert_eq!(approved["actor"], "token/qa", "{audit}");

    // Revoked: 401 at once.
    s.ok(&["token", "revoke", "gha"]);
    let (code, body, _) = curl(&format!("{base}/v1/releases"), ca, tok, "GET", None);
    assert_eq!(code, 401, "{body}");
    assert!(s.ok(&["token", "list"]).contains("revoked"));
    let out = s.client(&["token", "revoke", "gha"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // Every refused attempt is counted: 3 without a token, 2 unknown, 1 revoked.
    let (code, metrics) = s.curl("GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("\nopsdeck_token_failures_total 6\n"),
        "{metrics}"
    );

    // The server's log (at trace level, every crate) names the refusals and who connected,
    // and holds neither the token nor a wrong one presented; nor does any file of the server.
    let log = s.stop_and_log();
    for want in [
        "refused: token/gha may not approve: needs approvers",
        "refused a request on the TCP listener: no bearer token (failed attempt 1 in this minute",
        "refused a request on the TCP listener: an unknown token",
        "refused a request on the TCP listener: the revoked token `gha` (failed attempt 6 in this minute, 6 since start)",
        "peer=127.0.0.1:",
        "API token created",
        "API token revoked",
    ] {
        assert!(log.contains(want), "no `{want}` in the log:\n{log}");
    }
    // (The search reads the databases: the ledger names the token as the actor.)
    assert!(!files_holding(&s.dir, "token/gha").is_empty());
    if std::env::var_os("OPSDECK_TEST_VERBOSE").is_some() {
        eprintln!("{log}");
    }
    for secret in [
        token.as_str(),
        secret_part,
        qa.as_str(),
        WRONG,
        "not-a-real-token-at-all",
    ] {
        assert!(!log.contains(secret), "`{secret}` is in the server's log");
        assert_eq!(
            files_holding(&s.dir, secret),
            Vec::<std::path::PathBuf>::new()
        );
    }
}

/// `opsdeck run` with the server's config: it must exit 2; its stderr.
fn run_fails(s: &TestServer) -> String {
    let out = Command::new(&s.bin)
        .arg("run")
        .env("OPSDECK_CONFIG", &s.config)
        .env("OPSDECK_DATA_DIR", &s.data)
        .env("OPSDECK_SOCKET", &s.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    text(&out.stderr)
}

#[test]
fn tls_files_that_do_not_work_are_named() {
    let port = free_port();
    let pki = tempfile::tempdir().unwrap();
    self_signed(pki.path());
    let (cert, key) = (pki.path().join("srv.pem"), pki.path().join("srv.key"));
    let listen = format!("[server]\nlisten = \"0.0.0.0:{port}\"\n");

    // One of the two files only.
    let s = TestServer::new(
        "0.1",
        &format!("{listen}tls_cert = \"{}\"\n", cert.display()),
    );
    let err = run_fails(&s);
    assert!(err.contains("server.tls_key"), "{err}");

    // A file that is not there.
    let missing = pki.path().join("missing.pem");
    let s = TestServer::new(
        "0.1",
        &format!(
            "{listen}tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            missing.display(),
            key.display()
        ),
    );
    let err = run_fails(&s);
    assert!(err.contains("`server.tls_cert`"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // A key of another certificate.
    let other = tempfile::tempdir().unwrap();
    self_signed(other.path());
    let s = TestServer::new(
        "0.1",
        &format!(
            "{listen}tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            other.path().join("srv.key").display()
        ),
    );
    let err = run_fails(&s);
    assert!(err.contains("`server.tls_key`"), "{err}");
    assert!(err.contains("does not fit the certificate"), "{err}");
    // Nothing of the key is printed.
    let pem = std::fs::read_to_string(other.path().join("srv.key")).unwrap();
    let body = pem.lines().nth(1).unwrap();
    assert!(!err.contains(body), "{err}");
}

#[test]
fn without_tls_only_loopback_may_listen() {
    // Non-loopback without TLS: a config error naming the key, the file and the line.
    let port = free_port();
    let mut s = TestServer::new("0.1", &format!("[server]\nlisten = \"0.0.0.0:{port}\"\n"));
    let config = std::fs::read_to_string(&s.config).unwrap();
    let line = config
        .lines()
        .position(|l| l.starts_with("listen ="))
        .unwrap()
        + 1;
    let err = run_fails(&s);
    assert!(
        err.contains(&format!(
            "{}:{line}: invalid value for `server.listen`",
            s.config.display()
        )),
        "{err}"
    );
    assert!(err.contains("server.tls_cert"), "{err}");
    assert!(!s.socket.exists());

    // Loopback without TLS works, with tokens all the same.
    std::fs::write(
        &s.config,
        config.replace(&format!("0.0.0.0:{port}"), &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    s.start();
    let token = create_token(&s, "dash", "viewers");
    let url = format!("http://127.0.0.1:{port}/v1/releases");
    let (code, body, _) = curl(&url, None, Some(&token), "GET", None);
    assert_eq!(code, 200, "{body}");
    let (code, body, _) = curl(&url, None, None, "GET", None);
    assert_eq!(code, 401, "{body}");
    // A viewer token reads and no more.
    let (code, body, _) = curl(
        &url,
        None,
        Some(&token),
        "POST",
        Some(r#"{"service_name":"api","release_tag":"v1"}"#),
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("token/dash may not create releases"),
        "{body}"
    );
    // Names are checked; a second live token of one name is refused.
    let out = s
        .client(&["token", "create", "dash", "--role", "ci"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = s
        .client(&["token", "create", "x", "--role", "root"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is not a role"));
}
