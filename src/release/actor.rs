//! Who acts: the OS user, `SUDO_USER` and the SSH client address, for the audit trail; and
//! whether they may approve, reject or roll back (`releases.approvers`).

use serde::Serialize;

/// The person behind a command, as far as the machine can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub user: String,
    pub sudo_user: Option<String>,
    pub ssh_client: Option<String>,
}

impl Actor {
    /// This process's actor: the effective user, `SUDO_USER`, and the client address of
    /// `SSH_CONNECTION`.
    pub fn current() -> Actor {
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| format!("uid {}", nix::unistd::geteuid()));
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Actor {
            user,
            sudo_user: env("SUDO_USER"),
            ssh_client: env("SSH_CONNECTION")
                .and_then(|c| c.split_whitespace().next().map(str::to_string)),
        }
    }

    /// The person to check against the approvers: the sudo caller when root acts for them.
    pub fn person(&self) -> &str {
        match &self.sudo_user {
            Some(s) if self.user == "root" => s,
            _ => &self.user,
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.user)?;
        if let Some(s) = &self.sudo_user {
            write!(f, " (sudo by {s})")?;
        }
        if let Some(c) = &self.ssh_client {
            write!(f, " from {c}")?;
        }
        Ok(())
    }
}

/// Whether `person` may approve, reject and roll back. An empty list allows anyone; entries
/// are user names or `@group` Unix groups (primary or supplementary membership).
pub fn may_act(approvers: &[String], person: &str) -> bool {
    if approvers.is_empty() {
        return true;
    }
    approvers.iter().any(|a| match a.strip_prefix('@') {
        None => a == person,
        Some(group) => in_group(person, group),
    })
}

fn in_group(user: &str, group: &str) -> bool {
    let Ok(Some(g)) = nix::unistd::Group::from_name(group) else {
        return false;
    };
    if g.mem.iter().any(|m| m == user) {
        return true;
    }
    matches!(nix::unistd::User::from_name(user), Ok(Some(u)) if u.gid == g.gid)
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_docker_grammar() {
        for ok in ["v1", "1.2.3", "_x", "release-2026.11.23", &"a".repeat(128)] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            "-v1",
            ".v1",
            "v 1",
            "v1:latest",
            "v1/x",
            &"a".repeat(129),
            "тег",
        ] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn approvers_by_name_and_group() {
        assert!(may_act(&[], "anyone"));
        assert!(may_act(&["alice".into()], "alice"));
        assert!(!may_act(&["alice".into()], "bob"));
        // root's primary group is root on every Linux.
        assert!(may_act(&["@root".into()], "root"));
        assert!(!may_act(&["@no-such-group-here".into()], "root"));
    }
}
