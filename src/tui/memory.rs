//! What the dashboard remembers between runs, per Unix user: the last tab and the selection
//! on each (`$XDG_STATE_HOME/opsdeck/ui.json`, else `~/.local/state/opsdeck/ui.json`).
//! Losing it costs nothing, so a missing or unreadable file is ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::app::App;
use super::tab::Tab;

/// The remembered places.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default)]
    pub tab: Option<Tab>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub job: Option<String>,
    /// A release id; selected once the list arrives.
    #[serde(default)]
    pub release: Option<i64>,
    /// A log source's name; selected once it is announced.
    #[serde(default)]
    pub log_source: Option<String>,
}

/// This user's file.
pub fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))?;
    Some(base.join("opsdeck").join("ui.json"))
}

/// Reads `path`; anything unreadable is an empty memory.
pub fn load(path: &Path) -> Memory {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes `m` to `path` through a temporary file and a rename, readable by its user only.
pub fn save(path: &Path, m: &Memory) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".ui.json.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

/// Where the dashboard is now.
pub fn of(app: &App) -> Memory {
    Memory {
        tab: Some(app.tab),
        group: app
            .exports
            .groups
            .get(app.exports.group_sel)
            .map(|g| g.name.clone()),
        job: app
            .visible_jobs()
            .get(app.schedules.sel)
            .and_then(|&i| app.schedules.jobs.get(i))
            .map(|j| j.name.clone()),
        release: app.releases.selected().map(|r| r.id),
        log_source: app.logs.sources.get(app.logs.sel).map(|s| s.name.clone()),
    }
}

/// Goes back to `m`: the tab, group and job now; the release and log source when they
/// arrive (`App::recall`).
pub fn restore(app: &mut App, m: Memory) {
    if let Some(t) = m.tab {
        app.tab = t;
    }
    if let Some(i) = m
        .group
        .and_then(|g| app.exports.groups.iter().position(|x| x.name == g))
    {
        app.exports.group_sel = i;
    }
    if let Some(i) = m.job.and_then(|j| {
        app.visible_jobs()
            .iter()
            .position(|&i| app.schedules.jobs.get(i).is_some_and(|x| x.name == j))
    }) {
        app.schedules.sel = i;
    }
    app.recall = Memory {
        release: m.release,
        log_source: m.log_source,
        ..Default::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixture;

    #[test]
    fn saved_and_loaded_back_and_junk_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/opsdeck/ui.json");
        let m = Memory {
            tab: Some(Tab::Releases),
            group: Some("UI".into()),
            job: None,
            release: Some(6),
            log_source: Some("worker".into()),
        };
        save(&p, &m).unwrap();
        assert_eq!(load(&p), m);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::write(&p, b"{not json").unwrap();
        assert_eq!(load(&p), Memory::default());
        assert_eq!(load(&dir.path().join("missing")), Memory::default());
    }

    #[test]
    fn restore_selects_the_tab_and_group_now_and_the_release_when_the_list_arrives() {
        let mut app = fixture::app((80, 24));
        restore(
            &mut app,
            Memory {
                tab: Some(Tab::Releases),
                group: Some("UI".into()),
                release: Some(6),
                ..Default::default()
            },
        );
        assert_eq!(app.tab, Tab::Releases);
        assert_eq!(app.exports.groups[app.exports.group_sel].name, "UI");
        crate::tui::app::update(
            &mut app,
            crate::tui::msg::Msg::Service(crate::events::Event::Releases(fixture::releases())),
        );
        assert_eq!(app.releases.selected().map(|r| r.id), Some(6));
        assert_eq!(of(&app).release, Some(6));
        assert_eq!(of(&app).tab, Some(Tab::Releases));
    }
}
