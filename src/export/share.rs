//! Exports are for the team: each is given mode 0640 and the group `export.group` while it is
//! still a temporary file, so it appears under its final name already readable by the group
//! and by nobody else.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;

/// `export.group`, resolved when the config is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportGroup {
    pub name: String,
    pub gid: u32,
}

impl ExportGroup {
    /// Looks the group up in the system's group database.
    pub fn resolve(name: &str) -> Result<ExportGroup, String> {
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(ExportGroup {
                name: name.to_string(),
                gid: g.gid.as_raw(),
            }),
            Ok(None) => Err(format!("there is no group `{name}` on this machine")),
            Err(e) => Err(format!("cannot look up the group `{name}`: {e}")),
        }
    }
}

/// Gives an export file to `group` (when set) and makes it 0640. Fails when this user may not
/// give files to that group (it must be one of the user's groups).
pub fn share(file: &File, group: Option<&ExportGroup>) -> io::Result<()> {
    if let Some(g) = group {
        std::os::unix::fs::fchown(file, None, Some(g.gid)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot give the file to export.group `{}`: {e} (the user running opsdeck must be a member of it)",
                    g.name
                ),
            )
        })?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o640))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_file_becomes_0640_with_the_group_and_an_unknown_group_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = tempfile::tempfile_in(dir.path()).unwrap();
        // Our own primary group: always allowed.
        let gid = nix::unistd::getegid().as_raw();
        let name = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .unwrap()
            .map(|g| g.name)
            .unwrap_or_default();
        let g = ExportGroup::resolve(&name).unwrap();
        assert_eq!(g.gid, gid);
        share(&f, Some(&g)).unwrap();
        let meta = f.metadata().unwrap();
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o640, gid));
        let e = ExportGroup::resolve("odk_no_such_group").unwrap_err();
        assert!(e.contains("no group `odk_no_such_group`"), "{e}");
    }
}
