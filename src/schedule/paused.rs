//! Paused jobs, kept in the state dir beside the scheduler's state so every process using it
//! (and a restart) sees them. Any of them may toggle a job; the leader reads the file before
//! firing.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// Name of the pause file inside the state dir.
pub const PAUSED_FILE: &str = "paused.json";

/// The set of paused job names.
pub fn load_paused(dir: &Path) -> BTreeSet<String> {
    super::state::read_private(&dir.join(PAUSED_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Pauses or resumes `job`; returns the new set. Written atomically.
pub fn set_paused(dir: &Path, job: &str, paused: bool) -> std::io::Result<BTreeSet<String>> {
    let mut set = load_paused(dir);
    if paused {
        set.insert(job.to_string());
    } else {
        set.remove(job);
    }
    crate::private::create_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".opsdeck-paused-")
        .tempfile_in(dir)?;
    tmp.write_all(&serde_json::to_vec(&set).map_err(std::io::Error::other)?)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(PAUSED_FILE)).map_err(|e| e.error)?;
    crate::export::sync_dir(dir)?;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_paused(dir.path()).is_empty());
        set_paused(dir.path(), "export", true).unwrap();
        assert!(load_paused(dir.path()).contains("export"));
        set_paused(dir.path(), "export", false).unwrap();
        assert!(load_paused(dir.path()).is_empty());
    }
}
