//! The environment of commands opsdeck starts (deploy, rollback, notify): the parent's,
//! minus what is secret to opsdeck. A script that prints its environment into a deploy log
//! must not print the TestOps token.

/// Whether a variable of opsdeck's environment stays out of child processes.
pub fn is_secret(name: &str, value: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let ours = upper.starts_with("TESTOPS_") || upper.starts_with("OPSDECK_");
    let secret_name = ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"]
        .iter()
        .any(|w| upper.contains(w));
    (ours && secret_name) || upper.starts_with("TESTOPS_") || crate::sanitize::holds_secret(value)
}

/// Removes opsdeck's secrets from the environment `cmd` will get.
pub fn scrub(cmd: &mut tokio::process::Command) {
    for (name, value) in std::env::vars_os() {
        let (n, v) = (name.to_string_lossy(), value.to_string_lossy());
        if is_secret(&n, &v) {
            cmd.env_remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testops_and_secret_names_are_kept_out() {
        assert!(is_secret("TESTOPS_TOKEN", "x"));
        assert!(is_secret("TESTOPS_TOKEN_FILE", "/run/secrets/t"));
        assert!(is_secret("TESTOPS_BASE_URL", "https://u:p@h"));
        assert!(is_secret("OPSDECK_BOT_TOKEN", "123"));
        assert!(!is_secret("OPSDECK_TAG", "v2"));
        assert!(!is_secret("PATH", "/usr/bin"));
        crate::sanitize::register_secret("child-env-secret-value");
        assert!(is_secret("SOME_OTHER", "prefix child-env-secret-value"));
    }
}
