//! The column mapping of the exporter opsdeck replaces (docs/testops-api.md), used when the
//! config has no `[[testops.mapping]]`.

use super::ColumnMapping;

/// The default export columns, in order.
pub fn default_mapping() -> Vec<ColumnMapping> {
    let plain = |f: &str| col(f, f, None, None, None, None);
    let listed = |f: &str| col(f, f, Some(","), None, None, None);
    let integration =
        |name: &str, id| col("issue_integration", name, Some(","), None, None, Some(id));
    let role = |name: &str, id| col("role", name, Some(","), Some(id), None, None);
    let custom = |name: &str, id| col("custom_field", name, Some(","), None, Some(id), None);
    vec![
        plain("allure_id"),
        plain("name"),
        plain("full_name"),
        plain("automated"),
        plain("description"),
        plain("precondition"),
        plain("expected_result"),
        plain("status"),
        plain("scenario"),
        listed("tag"),
        plain("link"),
        plain("example"),
        listed("parameter"),
        integration("Gitlab", 2),
        // The old exporter's column name, verbatim: people diff new files against old ones.
        integration("Интеграция с WB Youtrack", 1),
        role("Lead", -2),
        role("Owner", -1),
        role("AutoQA", 2),
        role("Author", 3),
        custom("Suite", -5),
        custom("Component", -4),
        custom("Story", -3),
        custom("Feature", -2),
        custom("Epic", -1),
        custom("Sub-Element", 8),
        custom("Sub-Suite", 9),
    ]
}

fn col(
    field: &str,
    name: &str,
    sep: Option<&str>,
    role_id: Option<i64>,
    custom_field_id: Option<i64>,
    integration_id: Option<i64>,
) -> ColumnMapping {
    ColumnMapping {
        field: field.into(),
        name: name.into(),
        items_separator: sep.map(Into::into),
        role_id,
        custom_field_id,
        integration_id,
    }
}
