//! `ExportStore`: the export directory. File naming, listing and retention.
//!
//! Names (docs/contracts.md): `testops_export_<projectId>_<GROUP>_<YYYY-MM-DD_HH-MM-SS>.csv`, UTC, and
//! the older `testops_export_<GROUP>_<YYYY-MM-DD_HH-MM-SS>.csv`. Nothing else is ever listed or
//! deleted, so the directory may hold other files safely.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::ExportGroup;
use std::os::unix::fs::PermissionsExt;

const PREFIX: &str = "testops_export_";
const STAMP: &str = "%Y-%m-%d_%H-%M-%S";
/// Prefix of temporary download files; hidden, never matching the export patterns.
pub const TEMP_PREFIX: &str = ".opsdeck-download-";

/// What a file name says about an export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportName {
    pub project_id: Option<u64>,
    pub group: String,
    pub taken_at: DateTime<Utc>,
}

impl ExportName {
    /// The file name for an export taken now.
    pub fn file_name(project_id: u64, group: &str, taken_at: DateTime<Utc>) -> String {
        format!(
            "{PREFIX}{project_id}_{group}_{}.csv",
            taken_at.format(STAMP)
        )
    }

    /// Parses either name pattern; `None` for any other file.
    pub fn parse(file_name: &str) -> Option<ExportName> {
        let rest = file_name.strip_prefix(PREFIX)?.strip_suffix(".csv")?;
        // The timestamp is the last 19 characters, preceded by `_`.
        if rest.len() < 21 || !rest.is_char_boundary(rest.len() - 19) {
            return None;
        }
        let (head, stamp) = rest.split_at(rest.len() - 19);
        let taken_at = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?.and_utc();
        let head = head.strip_suffix('_')?;
        let (project_id, group) = match head.split_once('_') {
            Some((p, g)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (p.parse().ok(), g)
            }
            _ => (None, head),
        };
        if group.is_empty() || group.contains('_') {
            return None;
        }
        Some(ExportName {
            project_id,
            group: group.to_string(),
            taken_at,
        })
    }
}

/// One export file in the directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportFile {
    pub path: PathBuf,
    pub name: ExportName,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// The export directory.
#[derive(Debug, Clone)]
pub struct ExportStore {
    dir: PathBuf,
    group: Option<ExportGroup>,
}

impl ExportStore {
    /// A store over `dir` (not created until needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            group: None,
        }
    }

    /// The store of a config: its dir, and `export.group` for the files.
    pub fn of(cfg: &crate::config::ExportConfig) -> Self {
        Self {
            dir: cfg.dir.clone(),
            group: cfg.group.clone(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `export.group`, when set.
    pub fn group(&self) -> Option<&ExportGroup> {
        self.group.as_ref()
    }

    /// Creates the directory if missing (0750 and `export.group` when set, so the team can
    /// list it whatever the umask) and checks that files can be written and shared there.
    pub fn ensure_writable(&self) -> std::io::Result<()> {
        if !self.dir.exists() {
            std::fs::create_dir_all(&self.dir)?;
            if let Some(g) = &self.group {
                std::os::unix::fs::chown(&self.dir, None, Some(g.gid))?;
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o750))?;
            }
        }
        let probe = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)?;
        super::share::share(probe.as_file(), self.group.as_ref())
    }

    /// Export files, newest first. Blocking: call from a blocking task.
    pub fn list(&self) -> std::io::Result<Vec<ExportFile>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().and_then(ExportName::parse) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            out.push(ExportFile {
                path: entry.path(),
                name,
                size: meta.len(),
                modified: meta.modified().ok(),
            });
        }
        out.sort_by(|a, b| {
            b.name
                .taken_at
                .cmp(&a.name.taken_at)
                .then_with(|| b.path.cmp(&a.path))
        });
        Ok(out)
    }

    /// Deletes export files taken more than `days` days before `now`; returns what it deleted.
    /// Only files matching the export name patterns are considered.
    pub fn apply_retention(&self, days: u32, now: DateTime<Utc>) -> std::io::Result<Vec<PathBuf>> {
        let cutoff = now - chrono::Duration::days(i64::from(days));
        let mut deleted = Vec::new();
        for f in self.list()? {
            if f.name.taken_at < cutoff {
                match std::fs::remove_file(&f.path) {
                    Ok(()) => {
                        tracing::info!(file = %f.path.display(), "retention: deleted export older than {days} days");
                        deleted.push(f.path);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %f.path.display(), "retention: cannot delete: {e}")
                    }
                }
            }
        }
        Ok(deleted)
    }
}

/// Makes a rename durable by syncing the directory that holds it.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_name_patterns_and_nothing_else() {
        let n = ExportName::parse("testops_export_17_API_2026-11-23_07-00-05.csv").unwrap();
        assert_eq!(n.project_id, Some(17));
        assert_eq!(n.group, "API");
        assert_eq!(n.taken_at.to_rfc3339(), "2026-11-23T07:00:05+00:00");
        let old = ExportName::parse("testops_export_UI_2026-01-02_03-04-05.csv").unwrap();
        assert_eq!((old.project_id, old.group.as_str()), (None, "UI"));
        for other in [
            "testops_export_UI_2026-01-02_03-04-05.csv.tmp",
            "testops_export__2026-01-02_03-04-05.csv",
            "testops_export_UI_2026-13-02_03-04-05.csv",
            "notes.csv",
            ".opsdeck-download-x",
            "testops_export_17_API_x_2026-11-23_07-00-05.csv",
        ] {
            assert_eq!(ExportName::parse(other), None, "{other}");
        }
        let t = "2026-11-23T07:00:05Z".parse().unwrap();
        let name = ExportName::file_name(17, "API", t);
        assert_eq!(name, "testops_export_17_API_2026-11-23_07-00-05.csv");
        assert_eq!(ExportName::parse(&name).unwrap().taken_at, t);
    }

    #[test]
    fn retention_deletes_only_old_matching_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ExportStore::new(dir.path());
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let files = [
            ("testops_export_17_API_2026-10-01_07-00-00.csv", false),
            ("testops_export_API_2026-10-20_07-00-00.csv", false),
            ("testops_export_17_UI_2026-11-22_07-00-00.csv", true),
            ("testops_export_17_UI_2026-10-24_12-00-01.csv", true),
            ("old-notes-2020.csv", true),
            ("testops_export_17_API_2020-01-01_07-00-00.csv.bak", true),
        ];
        for (f, _) in files {
            std::fs::write(dir.path().join(f), "a;b\n").unwrap();
        }
        let deleted = store.apply_retention(30, now).unwrap();
        assert_eq!(deleted.len(), 2);
        for (f, kept) in files {
            assert_eq!(dir.path().join(f).exists(), kept, "{f}");
        }
        let listed: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|f| f.name.group)
            .collect();
        assert_eq!(listed, ["UI", "UI"]);
    }
}
