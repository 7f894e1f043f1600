//! Who is calling: the uid, gid and pid the kernel reports for a Unix socket peer
//! (`SO_PEERCRED`), mapped to the user name and every group the user belongs to. Nothing a
//! client says about itself counts.

use serde::{Deserialize, Serialize};

use super::access::Role;

/// `token/NAME`, not `token:NAME`: the sanitizer masks `token:<value>` as a secret, which
/// would hide who acted in the log, the CLI and the dashboard.
const TOKEN_USER_PREFIX: &str = "token/";
const TOKEN_ROLE_PREFIX: &str = "token-role:";

/// A caller as the kernel vouches for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// The user name (`uid N` when the uid has no passwd entry).
    pub user: String,
    /// Names of the primary and every supplementary group.
    pub groups: Vec<String>,
}

impl Identity {
    /// The identity of `uid`, with its groups looked up in the system's databases.
    pub fn of(uid: u32, gid: u32, pid: Option<i32>) -> Identity {
        use nix::unistd::{Gid, Group, Uid, User};
        let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
        let name = user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_else(|| format!("uid {uid}"));
        let mut gids = vec![Gid::from_raw(gid)];
        if let Some(u) = &user
            && let Ok(cname) = std::ffi::CString::new(u.name.clone())
            && let Ok(list) = nix::unistd::getgrouplist(&cname, u.gid)
        {
            gids.extend(list);
        }
        let mut groups: Vec<String> = gids
            .into_iter()
            .filter_map(|g| Group::from_gid(g).ok().flatten().map(|g| g.name))
            .collect();
        groups.sort();
        groups.dedup();
        Identity {
            uid,
            gid,
            pid,
            user: name,
            groups,
        }
    }

    /// The identity of API token `name` (TCP listener): user `token/NAME` (what the audit
    /// trail records), no uid (`u32::MAX`, which the kernel never gives a process, so no peer
    /// on the socket can pass for a token), and its role in the reserved group
    /// `token-role:ROLE`.
    pub fn token(name: &str, role: Role) -> Identity {
        Identity {
            uid: u32::MAX,
            gid: u32::MAX,
            pid: None,
            user: format!("{TOKEN_USER_PREFIX}{name}"),
            groups: vec![format!("{TOKEN_ROLE_PREFIX}{}", role.key())],
        }
    }

    /// The role of a token identity; `None` for a Unix peer.
    pub fn token_role(&self) -> Option<Role> {
        if self.uid != u32::MAX || !self.user.starts_with(TOKEN_USER_PREFIX) {
            return None;
        }
        let key = self.groups.first()?.strip_prefix(TOKEN_ROLE_PREFIX)?;
        Role::ALL.into_iter().find(|r| r.key() == key)
    }

    /// Whether an access entry (`name` or `@group`) names this caller.
    pub fn matches(&self, entry: &str) -> bool {
        match entry.strip_prefix('@') {
            Some(group) => self.groups.iter().any(|g| g == group),
            None => entry == self.user,
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (uid {})", self.user, self.uid)
    }
}
