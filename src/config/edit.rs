//! Writes a changed value back into the config file with toml_edit, so comments and layout
//! survive, and only after the whole edited file still validates.

use std::io::Write;
use std::path::Path;

/// Sets `[table] key = "value"` in the file at `path`, atomically.
pub fn set_string(path: &Path, table: &str, key: &str, value: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if doc.get(table).is_none() {
        doc[table] = toml_edit::table();
    }
    doc[table][key] = toml_edit::value(value);
    let new_text = doc.to_string();
    // Refuse to write a file that would no longer load (environment left out on purpose).
    super::Config::from_parts(Some(path), &new_text, &|_| None).map_err(|e| e.to_string())?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".opsdeck-config-")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.write_all(new_text.as_bytes())
        .map_err(|e| e.to_string())?;
    tmp.as_file().sync_all().map_err(|e| e.to_string())?;
    tmp.persist(path)
        .map_err(|e| format!("cannot replace {}: {}", path.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_layout_survive_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let text = "# my exports\n[export]\n# daily, before stand-up\nschedule = \"0 7 * * *\"  # UTC\nretention_days = 30\n";
        std::fs::write(&p, text).unwrap();
        set_string(&p, "export", "schedule", "30 6 * * 1-5").unwrap();
        let after = std::fs::read_to_string(&p).unwrap();
        assert!(after.contains("# daily, before stand-up"), "{after}");
        assert!(after.contains("schedule = \"30 6 * * 1-5\""), "{after}");
        assert!(after.contains("retention_days = 30"));
        let e = set_string(&p, "export", "schedule", "61 * * * *").unwrap_err();
        assert!(e.contains("export.schedule"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), after);
        set_string(&p, "export", "cleanup_schedule", "0 4 * * *").unwrap();
        assert!(
            std::fs::read_to_string(&p)
                .unwrap()
                .contains("cleanup_schedule = \"0 4 * * *\"")
        );
    }
}
