//! Who may do what: the one place that decides, from the server's own `[access]` table and
//! the caller's kernel-verified identity. A client's config never changes the answer.

use serde::Serialize;

use super::identity::Identity;
use crate::config::AccessFile;

/// A role of `[access]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewers,
    Ci,
    Approvers,
    Deployers,
}

impl Role {
    /// Every role, in the order `whoami` prints them.
    pub const ALL: [Role; 4] = [Role::Viewers, Role::Ci, Role::Approvers, Role::Deployers];

    /// The key in `[access]`.
    pub fn key(self) -> &'static str {
        match self {
            Role::Viewers => "viewers",
            Role::Ci => "ci",
            Role::Approvers => "approvers",
            Role::Deployers => "deployers",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.key() == s)
            .ok_or_else(|| format!("`{s}` is not a role: use ci, approvers, deployers or viewers"))
    }
}

/// Something a caller asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    Create,
    CiStatus,
    Approve,
    Reject,
    Rollback,
    Deploy,
    Cancel,
    Export,
    Schedule,
    /// Create, list and revoke API tokens.
    Tokens,
    /// Send a test notification (`opsdeck notify test SINK`).
    NotifyTest,
}

impl Action {
    /// Every action, for `whoami`'s refusals.
    pub const ALL: [Action; 12] = [
        Action::Read,
        Action::Create,
        Action::CiStatus,
        Action::Approve,
        Action::Reject,
        Action::Rollback,
        Action::Deploy,
        Action::Cancel,
        Action::Export,
        Action::Schedule,
        Action::Tokens,
        Action::NotifyTest,
    ];

    /// The role an action needs.
    pub fn role(self) -> Role {
        match self {
            Action::Read => Role::Viewers,
            Action::Create | Action::CiStatus => Role::Ci,
            Action::Approve | Action::Reject => Role::Approvers,
            Action::Rollback
            | Action::Deploy
            | Action::Cancel
            | Action::Export
            | Action::Schedule
            | Action::Tokens
            | Action::NotifyTest => Role::Deployers,
        }
    }

    /// The verb for refusals: "bob may not <verb>".
    pub fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create releases",
            Action::CiStatus => "set CI statuses",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Rollback => "roll back",
            Action::Deploy => "deploy",
            Action::Cancel => "cancel deploys",
            Action::Export => "export",
            Action::Schedule => "change schedules",
            Action::Tokens => "manage API tokens",
            Action::NotifyTest => "send test notifications",
        }
    }
}

/// A refusal: the sentence names the person, the action and the role needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The server's access table.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `None`: no `[access]` table, so every local user has every role.
    table: Option<AccessFile>,
}

impl Access {
    /// From the server's config.
    pub fn new(table: Option<AccessFile>) -> Access {
        Access { table }
    }

    /// Whether there is an `[access]` table at all (without one, a warning at start).
    pub fn is_open(&self) -> bool {
        self.table.is_none()
    }

    fn entries(&self, role: Role) -> &[String] {
        let Some(t) = &self.table else { return &[] };
        match role {
            Role::Viewers => &t.viewers,
            Role::Ci => &t.ci,
            Role::Approvers => &t.approvers,
            Role::Deployers => &t.deployers,
        }
    }

    /// Whether `who` has `role`. root is treated like anyone else: it has only the roles it is
    /// given. An API token has exactly its own role (and reading), whatever the table says,
    /// even without one.
    pub fn has(&self, who: &Identity, role: Role) -> bool {
        if let Some(own) = who.token_role() {
            return role == own || role == Role::Viewers;
        }
        let Some(_) = &self.table else { return true };
        let entries = self.entries(role);
        if role == Role::Viewers && entries.is_empty() {
            return true;
        }
        // Any role implies reading.
        if role == Role::Viewers
            && [Role::Ci, Role::Approvers, Role::Deployers]
                .iter()
                .any(|r| self.entries(*r).iter().any(|e| who.matches(e)))
        {
            return true;
        }
        entries.iter().any(|e| who.matches(e))
    }

    /// The roles `who` holds.
    pub fn roles(&self, who: &Identity) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|r| self.has(who, *r))
            .collect()
    }

    /// Whether a release's creator may approve it.
    pub fn self_approval(&self) -> bool {
        self.table.as_ref().is_none_or(|t| t.self_approval)
    }

    /// Why `who` may not do each action it may not do: what a dashboard greys out.
    pub fn refusals(&self, who: &Identity) -> std::collections::BTreeMap<Action, String> {
        Action::ALL
            .into_iter()
            .filter_map(|a| self.check(who, a).err().map(|r| (a, r.0)))
            .collect()
    }

    /// Allows `action` or says why not: "bob may not approve: needs approvers (@qa)".
    pub fn check(&self, who: &Identity, action: Action) -> Result<(), Refusal> {
        let role = action.role();
        if self.has(who, role) {
            return Ok(());
        }
        if let Some(own) = who.token_role() {
            return Err(Refusal(format!(
                "{} may not {}: needs {} (the token's role is {})",
                who.user,
                action.verb(),
                role.key(),
                own.key()
            )));
        }
        let entries = self.entries(role);
        Err(Refusal(format!(
            "{} may not {}: needs {} ({})",
            who.user,
            action.verb(),
            role.key(),
            if entries.is_empty() {
                "nobody is listed".to_string()
            } else {
                entries.join(", ")
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str, groups: &[&str]) -> Identity {
        Identity {
            uid: 1000,
            gid: 1000,
            pid: None,
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn table() -> Access {
        Access::new(Some(AccessFile {
            viewers: vec!["@ops".into(), "@qa".into(), "cibot".into()],
            ci: vec!["cibot".into()],
            approvers: vec!["@qa".into()],
            deployers: vec!["@ops".into()],
            self_approval: false,
        }))
    }

    #[test]
    fn roles_come_from_names_and_groups() {
        let a = table();
        assert_eq!(
            a.roles(&who("alice", &["qa"])),
            vec![Role::Viewers, Role::Approvers]
        );
        assert_eq!(a.roles(&who("cibot", &[])), vec![Role::Viewers, Role::Ci]);
        assert_eq!(a.roles(&who("mallory", &["users"])), vec![]);
    }

    #[test]
    fn root_has_only_what_it_is_given() {
        let a = table();
        assert!(a.roles(&who("root", &["root"])).is_empty());
        let err = a
            .check(&who("root", &["root"]), Action::Approve)
            .unwrap_err();
        assert_eq!(err.0, "root may not approve: needs approvers (@qa)");
    }

    #[test]
    fn refusal_names_person_action_and_role() {
        let err = table()
            .check(&who("bob", &["ops"]), Action::Approve)
            .unwrap_err();
        assert_eq!(err.0, "bob may not approve: needs approvers (@qa)");
        assert!(
            table()
                .check(&who("bob", &["ops"]), Action::Rollback)
                .is_ok()
        );
    }

    #[test]
    fn a_token_has_exactly_its_role_with_or_without_a_table() {
        for a in [table(), Access::new(None)] {
            let ci = Identity::token("gha", Role::Ci);
            assert_eq!(ci.token_role(), Some(Role::Ci));
            assert_eq!(a.roles(&ci), vec![Role::Viewers, Role::Ci]);
            let err = a.check(&ci, Action::Approve).unwrap_err();
            assert_eq!(
                err.0,
                "token/gha may not approve: needs approvers (the token's role is ci)"
            );
            assert!(a.check(&ci, Action::Tokens).is_err());
            // The actor survives the sanitizer (the log, `release show`, the dashboard).
            assert_eq!(crate::sanitize::clean(&err.0), err.0);
        }
        // A Unix user or group with the reserved look is not a token.
        assert_eq!(
            who("token/gha", &["token-role:deployers"]).token_role(),
            None
        );
    }

    #[test]
    fn without_a_table_everyone_may_do_everything() {
        let a = Access::new(None);
        assert!(a.is_open());
        assert_eq!(a.roles(&who("x", &[])).len(), 4);
        assert!(a.self_approval());
    }

    #[test]
    fn empty_viewers_means_every_local_user_reads() {
        let a = Access::new(Some(AccessFile::default()));
        assert!(a.check(&who("x", &[]), Action::Read).is_ok());
        let err = a.check(&who("x", &[]), Action::Create).unwrap_err();
        assert_eq!(
            err.0,
            "x may not create releases: needs ci (nobody is listed)"
        );
    }
}
