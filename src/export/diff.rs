//! What changed between two exports of a group, keyed by `allure_id`: test cases added,
//! removed, and changed with the columns that changed from what to what.

use std::collections::HashMap;
use std::path::Path;

/// One changed column of a test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnChange {
    pub column: String,
    pub old: String,
    pub new: String,
}

/// A test case present in both files with different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedCase {
    pub key: String,
    pub name: String,
    pub changes: Vec<ColumnChange>,
}

/// A test case present in one file only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRef {
    pub key: String,
    pub name: String,
}

/// The difference between an older and a newer export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvDiff {
    pub key_column: String,
    pub old_rows: usize,
    pub new_rows: usize,
    pub added: Vec<CaseRef>,
    pub removed: Vec<CaseRef>,
    pub changed: Vec<ChangedCase>,
}

struct Table {
    header: Vec<String>,
    key: usize,
    name: Option<usize>,
}

fn open(path: &Path) -> Result<(csv::Reader<std::fs::File>, Table), String> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let key = header.iter().position(|h| h == "allure_id").unwrap_or(0);
    let name = header.iter().position(|h| h == "name");
    Ok((rdr, Table { header, key, name }))
}

/// Compares two export files. Blocking; reads the older file into memory, streams the newer.
pub fn diff_files(old: &Path, new: &Path) -> Result<CsvDiff, String> {
    let (mut old_rdr, old_t) = open(old)?;
    let (mut new_rdr, new_t) = open(new)?;
    let mut before: HashMap<String, csv::StringRecord> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for rec in old_rdr.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", old.display()))?;
        let key = rec.get(old_t.key).unwrap_or("").to_string();
        order.push(key.clone());
        before.insert(key, rec);
    }
    // Columns compared by name, so a reordered or extended mapping still diffs sensibly.
    let old_index: HashMap<&str, usize> = old_t
        .header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut diff = CsvDiff {
        key_column: new_t.header.get(new_t.key).cloned().unwrap_or_default(),
        old_rows: order.len(),
        ..Default::default()
    };
    for rec in new_rdr.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", new.display()))?;
        diff.new_rows += 1;
        let key = rec.get(new_t.key).unwrap_or("");
        let name = new_t
            .name
            .and_then(|i| rec.get(i))
            .unwrap_or("")
            .to_string();
        match before.remove(key) {
            None => diff.added.push(CaseRef {
                key: key.to_string(),
                name,
            }),
            Some(prev) => {
                let changes: Vec<ColumnChange> = new_t
                    .header
                    .iter()
                    .enumerate()
                    .filter_map(|(i, col)| {
                        let now = rec.get(i).unwrap_or("");
                        let was = old_index
                            .get(col.as_str())
                            .and_then(|&j| prev.get(j))
                            .unwrap_or("");
                        (now != was).then(|| ColumnChange {
                            column: col.clone(),
                            old: was.to_string(),
                            new: now.to_string(),
                        })
                    })
                    .collect();
                if !changes.is_empty() {
                    diff.changed.push(ChangedCase {
                        key: key.to_string(),
                        name,
                        changes,
                    });
                }
            }
        }
    }
    for key in order {
        if let Some(rec) = before.remove(&key) {
            let name = old_t
                .name
                .and_then(|i| rec.get(i))
                .unwrap_or("")
                .to_string();
            diff.removed.push(CaseRef { key, name });
        }
    }
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_added_removed_and_changed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.csv");
        let new = dir.path().join("new.csv");
        std::fs::write(
            &old,
            "allure_id;name;status\n1;Login;Active\n2;Logout;Draft\n3;Search;Active\n",
        )
        .unwrap();
        std::fs::write(
            &new,
            "allure_id;name;status\n1;Login;Active\n3;Search v2;Outdated\n4;Pay;Draft\n",
        )
        .unwrap();
        let d = diff_files(&old, &new).unwrap();
        assert_eq!((d.old_rows, d.new_rows), (3, 3));
        assert_eq!(
            d.added,
            [CaseRef {
                key: "4".into(),
                name: "Pay".into()
            }]
        );
        assert_eq!(
            d.removed,
            [CaseRef {
                key: "2".into(),
                name: "Logout".into()
            }]
        );
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].key, "3");
        assert_eq!(
            d.changed[0].changes,
            [
                ColumnChange {
                    column: "name".into(),
                    old: "Search".into(),
                    new: "Search v2".into()
                },
                ColumnChange {
                    column: "status".into(),
                    old: "Active".into(),
                    new: "Outdated".into()
                },
            ]
        );
    }
}
