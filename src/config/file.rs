//! The config file as written: serde structs that refuse unknown keys.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{ConfigError, line_of};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub testops: Option<TestOpsFile>,
    pub export: Option<ExportFile>,
    pub releases: Option<ReleasesFile>,
    pub logs: Option<LogsFile>,
    pub logging: Option<LoggingFile>,
    pub server: Option<ServerFile>,
    pub access: Option<AccessFile>,
    pub notify: Option<Vec<super::notify::NotifyFile>>,
    pub ui: Option<super::notify::UiFile>,
    pub storage: Option<StorageFile>,
}

/// `[storage]`: PostgreSQL instead of the SQLite files (so far: the release ledger).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StorageFile {
    pub url: Option<Spanned<String>>,
    /// The URL from a file (a Docker secret), instead of `url`.
    pub url_file: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestOpsFile {
    pub base_url: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub project_id: Option<u64>,
    pub tree_id: Option<u64>,
    pub groups: Option<Vec<GroupFile>>,
    pub mapping: Option<Vec<ColumnMapping>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub read_timeout: Option<Spanned<String>>,
    pub poll_interval: Option<Spanned<String>>,
    pub poll_timeout: Option<Spanned<String>>,
    /// Plain http:// to a host other than loopback.
    pub allow_http: Option<bool>,
    /// A PEM file of CA certificates to trust besides the built-in roots.
    pub ca_file: Option<Spanned<String>>,
    /// Basic client credentials some servers want on the token exchange.
    pub client_auth: Option<ClientAuthFile>,
    /// Delete the export on the server once it is saved here.
    pub delete_after_download: Option<bool>,
}

/// `[testops.client_auth]`: `Authorization: Basic id:secret` on the token exchange.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthFile {
    pub id: String,
    #[serde(default)]
    pub secret: String,
}

/// A `[[testops.groups]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    pub name: Spanned<String>,
    pub id: u64,
    pub project_id: Option<u64>,
    pub tree_id: Option<u64>,
}

/// One CSV column of the export request (`[[testops.mapping]]`), sent to TestOps as is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    pub field: String,
    pub name: String,
    #[serde(
        rename = "itemsSeparator",
        alias = "items_separator",
        skip_serializing_if = "Option::is_none"
    )]
    pub items_separator: Option<String>,
    #[serde(
        rename = "roleId",
        alias = "role_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub role_id: Option<i64>,
    #[serde(
        rename = "customFieldId",
        alias = "custom_field_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub custom_field_id: Option<i64>,
    #[serde(
        rename = "integrationId",
        alias = "integration_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub integration_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportFile {
    pub dir: Option<String>,
    pub schedule: Option<Spanned<String>>,
    pub cleanup_schedule: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub retention_days: Option<Spanned<i64>>,
    pub max_attempts: Option<u32>,
    pub retry_delays: Option<Vec<Spanned<String>>>,
    pub catch_up: Option<Spanned<String>>,
    pub max_bytes: Option<Spanned<toml::Value>>,
    pub attempt_timeout: Option<Spanned<String>>,
    pub min_rate: Option<Spanned<String>>,
    pub allow_sub_minute: Option<bool>,
    pub group: Option<Spanned<String>>,
}

/// `[releases]`: read here so the whole file is validated at once; used by the release service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasesFile {
    pub ledger: Option<String>,
    pub deployer: Option<Spanned<String>>,
    pub approvers: Option<Vec<String>>,
    pub services: Option<Vec<ServiceFile>>,
    pub command: Option<CommandFile>,
    pub deploy_timeout: Option<Spanned<String>>,
}

/// A `[[releases.services]]` entry: a release service name, its Swarm service and image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub name: String,
    pub service: Option<String>,
    pub repository: Option<String>,
    /// Other repositories `release create --image` may name for this service.
    pub allowed_repositories: Option<Vec<String>>,
    /// `rollback` (default) or `pause`: what a failed update leaves.
    pub on_failure: Option<Spanned<String>>,
    /// HTTP GET that must answer 2xx `health_retries` times in a row after an update.
    pub health_url: Option<Spanned<String>>,
    pub health_retries: Option<Spanned<u32>>,
    pub health_timeout: Option<Spanned<String>>,
}

/// `[releases.command]`: the team's deploy and rollback commands, argv arrays (no shell).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    pub deploy: Option<Vec<String>>,
    pub rollback: Option<Vec<String>>,
}

/// `[logs]`: log sources for the Logs tab.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsFile {
    pub sources: Option<Vec<LogSourceFile>>,
    /// Lines kept per source in the Logs tab (default 100 000).
    pub max_lines: Option<usize>,
}

/// A `[[logs.sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSourceFile {
    pub name: String,
    pub path: Option<String>,
    pub service: Option<String>,
}

/// `[server]`: where `opsdeck run` listens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub socket: Option<String>,
    /// A TCP address for CI over the network, e.g. "0.0.0.0:8443".
    pub listen: Option<Spanned<String>>,
    /// PEM certificate chain and private key for `listen`.
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
}

/// `[access]`: who may do what, read only by the server (`opsdeck run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    /// May connect and read; empty: every local user.
    #[serde(default)]
    pub viewers: Vec<String>,
    /// Create releases, set CI statuses.
    #[serde(default)]
    pub ci: Vec<String>,
    /// Approve or reject.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Roll back, retry, cancel; export now; pause and edit schedules.
    #[serde(default)]
    pub deployers: Vec<String>,
    /// Whoever created a release may approve it.
    #[serde(default)]
    pub self_approval: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoggingFile {
    pub keep_days: Option<usize>,
    pub level: Option<String>,
}

/// Parses the file, turning serde's message into `file:line:col: message (in [table])`.
pub(super) fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let line = line_of(text, offset);
        let column = offset
            - text[..offset.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1)
            + 1;
        let message = e
            .message()
            .trim()
            .replace("unknown field", "unknown key")
            .replace("missing field", "missing key");
        let table = text
            .lines()
            .take(line)
            .filter(|l| l.trim_start().starts_with('['))
            .last()
            .map(|l| format!(" (in {})", l.trim()))
            .unwrap_or_default();
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message,
            context: table,
        }
    })
}
