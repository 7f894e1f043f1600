//! Configuration: TOML file + environment + command line, validated before anything starts.
//!
//! Precedence is flag > environment > file > default (docs/contracts.md). Every error names the key and,
//! when the value came from the file, the file and line it sits on.

pub mod edit;
mod file;
pub mod limits;
mod mapping;
mod notify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

pub use file::{AccessFile, ClientAuthFile, ColumnMapping, CommandFile, GroupFile, ServiceFile};
pub use limits::MinRate;
pub use mapping::default_mapping;

use crate::schedule::CronSchedule;

/// Where a configuration value came from, so errors can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Line `line` of the config file.
    File { path: PathBuf, line: usize },
    /// An environment variable.
    Env(&'static str),
    /// The built-in default.
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Default => write!(f, "built-in default"),
        }
    }
}

/// A configuration problem, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}{context}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        context: String,
    },
    #[error("{origin}: invalid value for `{key}`: {message}")]
    Invalid {
        key: &'static str,
        origin: Origin,
        message: String,
    },
    #[error("`{key}` is not set: {hint}")]
    Missing { key: &'static str, hint: String },
}

/// One TestOps test-case tree group to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub id: u64,
    pub project_id: u64,
    pub tree_id: u64,
}

/// TestOps connection settings.
#[derive(Debug, Clone)]
pub struct TestOpsConfig {
    pub base_url: Option<String>,
    /// The API token, when configured; never printed.
    pub token: Option<SecretString>,
    /// Where the token came from (for messages; never the token itself).
    pub token_origin: Origin,
    pub groups: Vec<Group>,
    pub mapping: Vec<ColumnMapping>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
    pub allow_http: bool,
    pub ca_file: Option<PathBuf>,
    pub client_auth: Option<ClientAuthFile>,
    pub delete_after_download: bool,
}

/// Export job settings.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    pub dir: PathBuf,
    pub schedule: CronSchedule,
    pub cleanup_schedule: CronSchedule,
    pub retention_days: u32,
    pub max_attempts: u32,
    pub retry_delays: Vec<Duration>,
    pub catch_up: Duration,
    /// Largest export accepted; a longer body fails the attempt.
    pub max_bytes: u64,
    /// Deadline of one attempt, from the request to the saved file.
    pub attempt_timeout: Duration,
    pub min_rate: MinRate,
    pub allow_sub_minute: bool,
    /// The group exports are given to (mode 0640), so the team can read them.
    pub group: Option<crate::export::ExportGroup>,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub keep_days: usize,
    pub level: String,
}

/// Which deployer acts on approve and rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployerKind {
    Swarm,
    Command,
}

/// A service releases are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseService {
    /// The name CI uses in `release create --service`.
    pub name: String,
    /// The Swarm service to update (default: `name`).
    pub swarm_service: String,
    /// The image repository, e.g. `registry.example.com/team/api`.
    pub repository: Option<String>,
    /// Further repositories a release of this service may name with `--image`.
    pub allowed_repositories: Vec<String>,
    /// What a failed update leaves: the service rolled back (default) or paused.
    pub on_failure: OnFailure,
    /// The optional HTTP health gate of a deploy.
    pub health_url: Option<String>,
    /// Consecutive 2xx answers `health_url` must give.
    pub health_retries: u32,
    /// How long the health gate (URL and the containers' HEALTHCHECK) may take.
    pub health_timeout: Duration,
}

/// `on_failure` of a release service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Put the service back on what ran before.
    #[default]
    Rollback,
    /// Leave it as the engine left it (paused), for a person to look at.
    Pause,
}

/// Release settings.
#[derive(Debug, Clone)]
pub struct ReleasesConfig {
    /// `None`: `<data dir>/releases.db`.
    pub ledger: Option<PathBuf>,
    pub deployer: DeployerKind,
    pub approvers: Vec<String>,
    pub services: Vec<ReleaseService>,
    pub command: CommandFile,
    pub deploy_timeout: Duration,
}

impl ReleasesConfig {
    /// A configured service by name.
    pub fn service(&self, name: &str) -> Option<&ReleaseService> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// `server.listen`: the optional TCP listener (bearer tokens only), with TLS unless loopback.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub addr: std::net::SocketAddr,
    pub origin: Origin,
    pub tls: Option<TlsFiles>,
}

/// `server.tls_cert` and `server.tls_key`: read by the server at start, not at load (clients
/// share the config file and cannot read the key).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub cert_origin: Origin,
    pub key: PathBuf,
    pub key_origin: Origin,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    pub testops: TestOpsConfig,
    pub export: ExportConfig,
    pub logging: LoggingConfig,
    pub releases: ReleasesConfig,
    /// Sections owned by later services, parsed and kept for them.
    pub logs: file::LogsFile,
    /// `server.socket` (env `OPSDECK_SOCKET`), when set; see `paths::socket_path`.
    pub server_socket: Option<PathBuf>,
    /// `[access]`, when the file has one (the server's roles).
    pub access: Option<file::AccessFile>,
    /// `server.listen`, when set.
    pub listen: Option<ListenConfig>,
    /// `[[notify]]` sinks.
    pub notify: Vec<crate::notify::SinkConfig>,
    /// `[ui]`.
    pub ui: UiConfig,
    /// `storage.url`: the ledger in PostgreSQL (`None`: SQLite files in the data dir).
    pub storage: Option<std::sync::Arc<crate::storage::PgConfig>>,
    /// Warnings found while loading (e.g. a token in a world-readable file).
    pub warnings: Vec<String>,
}

/// `[ui]` settings of the dashboard.
#[derive(Debug, Clone, Default)]
pub struct UiConfig {
    /// A bell and a desktop notification when a release starts waiting on you.
    pub notify: bool,
    /// Every action hidden: a dashboard to watch with (a wall screen, a guest).
    pub readonly: bool,
    /// A theme of `assets/themes/`: `default`, `light` or `high-contrast`.
    pub theme: String,
}

/// The environment, read once so tests can pass their own.
pub type Env = dyn Fn(&str) -> Option<String>;

/// Reads the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The default config path (`~/.config/opsdeck/config.toml` on Linux).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "opsdeck").map(|d| d.config_dir().join("config.toml"))
}

impl Config {
    /// Loads the configuration.
    ///
    /// `explicit` is the `--config` flag or `OPSDECK_CONFIG`; it must exist. Without it the
    /// default path is used when present, else defaults and environment alone (how users of the
    /// old exporter run with just their `.env`).
    pub fn load(explicit: Option<&Path>, env: &Env) -> Result<Config, ConfigError> {
        let (path, text) = match explicit {
            Some(p) => (Some(p.to_path_buf()), Some(read(p)?)),
            None => match default_path().filter(|p| p.exists()) {
                Some(p) => {
                    let text = read(&p)?;
                    (Some(p), Some(text))
                }
                None => (None, None),
            },
        };
        Self::from_parts(path.as_deref(), text.as_deref().unwrap_or(""), env)
    }

    /// Builds a configuration from file text (empty when there is no file) and the environment.
    pub fn from_parts(path: Option<&Path>, text: &str, env: &Env) -> Result<Config, ConfigError> {
        let display_path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("<no config file>"));
        let raw = file::parse(&display_path, text)?;
        let at = |span: std::ops::Range<usize>| Origin::File {
            path: display_path.clone(),
            line: line_of(text, span.start),
        };
        let mut warnings = Vec::new();

        let t = raw.testops.unwrap_or_default();
        let (base_url, url_origin) = match (env("TESTOPS_BASE_URL"), t.base_url) {
            (Some(u), _) => (Some(u), Origin::Env("TESTOPS_BASE_URL")),
            (None, Some(u)) => {
                let o = at(u.span());
                (Some(u.into_inner()), o)
            }
            (None, None) => (None, Origin::Default),
        };
        if let Some(url) = &base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "testops.base_url",
                origin: url_origin,
                message: format!("`{url}` must start with http:// or https://"),
            });
        }
        if let Some(url) = &base_url {
            limits::plain_http(url, t.allow_http.unwrap_or(false), &url_origin)?;
            register_url_password(url);
        }
        let base_url = base_url.map(|u| u.trim_end_matches('/').to_string());

        // Token: TESTOPS_TOKEN > TESTOPS_TOKEN_FILE > testops.token > testops.token_file.
        let (token, token_origin) = if let Some(tok) = env("TESTOPS_TOKEN") {
            (Some(tok), Origin::Env("TESTOPS_TOKEN"))
        } else if let Some(f) = env("TESTOPS_TOKEN_FILE") {
            warnings.extend(permission_warning(
                Path::new(&f),
                "the API token (TESTOPS_TOKEN_FILE)",
            ));
            (
                Some(read_token_file(Path::new(&f), "testops.token_file")?),
                Origin::Env("TESTOPS_TOKEN_FILE"),
            )
        } else if let Some(tok) = t.token {
            let origin = at(tok.span());
            if let Some(p) = path
                && let Some(w) = permission_warning(p, "testops.token")
            {
                warnings.push(w);
            }
            (Some(tok.into_inner()), origin)
        } else if let Some(f) = t.token_file {
            let origin = at(f.span());
            warnings.extend(permission_warning(
                Path::new(f.get_ref()),
                "the API token (testops.token_file)",
            ));
            (
                Some(read_token_file(
                    Path::new(f.get_ref()),
                    "testops.token_file",
                )?),
                origin,
            )
        } else {
            (None, Origin::Default)
        };

        let mut groups = Vec::new();
        for g in t.groups.unwrap_or_default() {
            let origin = at(g.name.span());
            let name = g.name.into_inner();
            limits::group_name(&name, &origin)?;
            if name.is_empty() || name.contains(['/', '\\']) || name.contains('_') {
                return Err(ConfigError::Invalid {
                    key: "testops.groups.name",
                    origin,
                    message: format!(
                        "group name `{name}` must be non-empty and contain no `/`, `\\` or `_` \
                         (it becomes part of the file name)"
                    ),
                });
            }
            let project_id = g.project_id.or(t.project_id).ok_or(ConfigError::Invalid {
                key: "testops.project_id",
                origin: origin.clone(),
                message: format!(
                    "group `{name}` has no project_id and testops.project_id is not set"
                ),
            })?;
            let tree_id = g.tree_id.or(t.tree_id).ok_or(ConfigError::Invalid {
                key: "testops.tree_id",
                origin: origin.clone(),
                message: format!("group `{name}` has no tree_id and testops.tree_id is not set"),
            })?;
            if groups.iter().any(|x: &Group| x.name == name) {
                return Err(ConfigError::Invalid {
                    key: "testops.groups.name",
                    origin,
                    message: format!("group `{name}` is configured twice"),
                });
            }
            groups.push(Group {
                name,
                id: g.id,
                project_id,
                tree_id,
            });
        }

        // Every duration key is a timeout or deadline: zero is refused.
        let dur = |key: &'static str, v: Option<toml::Spanned<String>>, default: Duration| match v {
            None => Ok(default),
            Some(s) => {
                let origin = at(s.span());
                let d = parse_duration(s.get_ref()).map_err(|message| ConfigError::Invalid {
                    key,
                    origin: origin.clone(),
                    message,
                })?;
                if key == "testops.poll_interval" {
                    limits::poll_interval(d, &origin)?;
                } else if key != "export.catch_up" {
                    limits::positive(key, d, &origin)?;
                }
                Ok(d)
            }
        };
        if let Some(tok) = &token {
            crate::sanitize::register_secret(tok);
        }
        if let Some(c) = &t.client_auth {
            crate::sanitize::register_secret(&c.secret);
        }
        let ca_file = match t.ca_file {
            None => None,
            Some(f) => {
                let p = PathBuf::from(f.get_ref());
                if !p.is_file() {
                    return Err(ConfigError::Invalid {
                        key: "testops.ca_file",
                        origin: at(f.span()),
                        message: format!("{} is not a readable file", p.display()),
                    });
                }
                Some(p)
            }
        };
        let testops = TestOpsConfig {
            base_url,
            token: token.map(SecretString::from),
            token_origin,
            groups,
            mapping: t.mapping.unwrap_or_else(default_mapping),
            connect_timeout: dur("testops.connect_timeout", t.connect_timeout, secs(10))?,
            read_timeout: dur("testops.read_timeout", t.read_timeout, secs(60))?,
            poll_interval: dur("testops.poll_interval", t.poll_interval, secs(2))?,
            poll_timeout: dur("testops.poll_timeout", t.poll_timeout, secs(600))?,
            allow_http: t.allow_http.unwrap_or(false),
            ca_file,
            client_auth: t.client_auth,
            delete_after_download: t.delete_after_download.unwrap_or(false),
        };

        let e = raw.export.unwrap_or_default();
        let timezone =
            match &e.timezone {
                None => None,
                Some(tz) => Some(tz.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
                    ConfigError::Invalid {
                        key: "export.timezone",
                        origin: at(tz.span()),
                        message: format!(
                            "`{}` is not an IANA time zone name (e.g. Europe/Berlin)",
                            tz.get_ref()
                        ),
                    }
                })?),
            };
        let allow_sub_minute = e.allow_sub_minute.unwrap_or(false);
        let cron = |key: &'static str,
                    env_var: Option<&'static str>,
                    v: Option<toml::Spanned<String>>,
                    default: &str| {
            let (expr, origin) = match (env_var.and_then(env), v) {
                (Some(x), _) => (x, Origin::Env(env_var.unwrap_or_default())),
                (None, Some(s)) => {
                    let o = at(s.span());
                    (s.into_inner(), o)
                }
                (None, None) => (default.to_string(), Origin::Default),
            };
            let s =
                CronSchedule::parse(&expr, timezone).map_err(|message| ConfigError::Invalid {
                    key,
                    origin: origin.clone(),
                    message,
                })?;
            limits::schedule(key, &s, allow_sub_minute, &origin)?;
            Ok(s)
        };
        let dir = env("EXPORT_PATH")
            .map(PathBuf::from)
            .or(e.dir.map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./exports"));
        let max_attempts = e.max_attempts.unwrap_or(3);
        if max_attempts == 0 {
            return Err(ConfigError::Invalid {
                key: "export.max_attempts",
                origin: Origin::Default,
                message: "must be at least 1".into(),
            });
        }
        let retry_delays = match e.retry_delays {
            None => vec![secs(300), secs(600), secs(900)],
            Some(list) => {
                let mut out = Vec::new();
                for s in list {
                    out.push(parse_duration(s.get_ref()).map_err(|message| {
                        ConfigError::Invalid {
                            key: "export.retry_delays",
                            origin: at(s.span()),
                            message,
                        }
                    })?);
                }
                if out.is_empty() {
                    out.push(Duration::ZERO);
                }
                out
            }
        };
        let export = ExportConfig {
            dir,
            schedule: cron(
                "export.schedule",
                Some("CRON_SCHEDULE"),
                e.schedule,
                "0 7 * * *",
            )?,
            cleanup_schedule: cron(
                "export.cleanup_schedule",
                None,
                e.cleanup_schedule,
                "30 3 * * *",
            )?,
            retention_days: match &e.retention_days {
                None => 30,
                Some(v) => limits::retention_days(*v.get_ref(), &at(v.span()))?,
            },
            max_attempts,
            retry_delays,
            catch_up: dur("export.catch_up", e.catch_up, secs(6 * 3600))?,
            max_bytes: match &e.max_bytes {
                None => limits::DEFAULT_MAX_BYTES,
                Some(v) => limits::byte_size(v.get_ref(), &at(v.span()))?,
            },
            attempt_timeout: dur("export.attempt_timeout", e.attempt_timeout, secs(1800))?,
            min_rate: match &e.min_rate {
                None => MinRate::default(),
                Some(v) => limits::min_rate(v.get_ref(), &at(v.span()))?,
            },
            allow_sub_minute,
            group: match &e.group {
                None => None,
                Some(g) => Some(crate::export::ExportGroup::resolve(g.get_ref()).map_err(
                    |message| ConfigError::Invalid {
                        key: "export.group",
                        origin: at(g.span()),
                        message,
                    },
                )?),
            },
        };

        let l = raw.logging.unwrap_or_default();
        let logging = LoggingConfig {
            keep_days: l.keep_days.unwrap_or(14).max(1),
            level: l.level.unwrap_or_else(|| "info".into()),
        };

        let r = raw.releases.unwrap_or_default();
        let deployer = match &r.deployer {
            None => DeployerKind::Swarm,
            Some(d) => match d.get_ref().as_str() {
                "swarm" => DeployerKind::Swarm,
                "command" => DeployerKind::Command,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "releases.deployer",
                        origin: at(d.span()),
                        message: format!(
                            "`{other}` is not a deployer; use \"swarm\" or \"command\""
                        ),
                    });
                }
            },
        };
        let command = r.command.unwrap_or_default();
        if deployer == DeployerKind::Command && command.deploy.as_ref().is_none_or(|d| d.is_empty())
        {
            return Err(ConfigError::Missing {
                key: "releases.command.deploy",
                hint: "releases.deployer is \"command\": set [releases.command] deploy = [\"./deploy.sh\", \"{image}\"]".into(),
            });
        }
        let releases = ReleasesConfig {
            ledger: r.ledger.map(PathBuf::from),
            deployer,
            approvers: r.approvers.unwrap_or_default(),
            services: {
                let mut out = Vec::new();
                for s in r.services.unwrap_or_default() {
                    let on_failure = match &s.on_failure {
                        None => OnFailure::Rollback,
                        Some(v) => match v.get_ref().as_str() {
                            "rollback" => OnFailure::Rollback,
                            "pause" => OnFailure::Pause,
                            other => {
                                return Err(ConfigError::Invalid {
                                    key: "releases.services.on_failure",
                                    origin: at(v.span()),
                                    message: format!(
                                        "`{other}` is not a failure policy; use \"rollback\" or \"pause\""
                                    ),
                                });
                            }
                        },
                    };
                    if let Some(u) = &s.health_url
                        && reqwest::Url::parse(u.get_ref())
                            .ok()
                            .is_none_or(|p| !matches!(p.scheme(), "http" | "https"))
                    {
                        return Err(ConfigError::Invalid {
                            key: "releases.services.health_url",
                            origin: at(u.span()),
                            message: format!("`{}` is not an http(s) URL", u.get_ref()),
                        });
                    }
                    let health_retries = match &s.health_retries {
                        None => 3,
                        Some(n) if (1..=100).contains(n.get_ref()) => *n.get_ref(),
                        Some(n) => {
                            return Err(ConfigError::Invalid {
                                key: "releases.services.health_retries",
                                origin: at(n.span()),
                                message: format!("{} is not between 1 and 100", n.get_ref()),
                            });
                        }
                    };
                    out.push(ReleaseService {
                        swarm_service: s.service.unwrap_or_else(|| s.name.clone()),
                        name: s.name,
                        repository: s.repository,
                        allowed_repositories: s.allowed_repositories.unwrap_or_default(),
                        on_failure,
                        health_url: s.health_url.map(|u| u.into_inner()),
                        health_retries,
                        health_timeout: dur(
                            "releases.services.health_timeout",
                            s.health_timeout,
                            secs(60),
                        )?,
                    });
                }
                out
            },
            command,
            deploy_timeout: dur("releases.deploy_timeout", r.deploy_timeout, secs(600))?,
        };

        let server = raw.server.unwrap_or_default();
        let listen = listen_config(&server, &at, &mut warnings)?;
        let notify = notify::sinks(raw.notify.unwrap_or_default(), &at, &mut warnings)?;
        let ui = raw.ui.unwrap_or_default();
        let theme = match &ui.theme {
            None => "default".to_string(),
            Some(v) if crate::tui::theme::names().contains(&v.get_ref().as_str()) => {
                v.get_ref().clone()
            }
            Some(v) => {
                return Err(ConfigError::Invalid {
                    key: "ui.theme",
                    origin: at(v.span()),
                    message: format!(
                        "no theme `{}`; use {}",
                        v.get_ref(),
                        crate::tui::theme::names().join(", ")
                    ),
                });
            }
        };
        let ui = UiConfig {
            notify: ui.notify.unwrap_or(false),
            readonly: ui.readonly.unwrap_or(false),
            theme,
        };
        let storage = storage_config(raw.storage.unwrap_or_default(), &at, &mut warnings)?;

        Ok(Config {
            path: path.map(Path::to_path_buf),
            notify,
            ui,
            testops,
            export,
            logging,
            releases,
            logs: raw.logs.unwrap_or_default(),
            server_socket: env("OPSDECK_SOCKET")
                .map(PathBuf::from)
                .or_else(|| server.socket.map(PathBuf::from)),
            access: raw.access,
            listen,
            storage,
            warnings,
        })
    }

    /// The TestOps base URL, or an error saying how to set it.
    pub fn require_base_url(&self) -> Result<&str, ConfigError> {
        self.testops
            .base_url
            .as_deref()
            .ok_or_else(|| ConfigError::Missing {
                key: "testops.base_url",
                hint: self.where_to_set("base_url", "TESTOPS_BASE_URL"),
            })
    }

    /// The API token, or an error saying how to set it.
    pub fn require_token(&self) -> Result<&SecretString, ConfigError> {
        self.testops
            .token
            .as_ref()
            .ok_or_else(|| ConfigError::Missing {
                key: "testops.token",
                hint: format!(
                    "{} (or testops.token_file / TESTOPS_TOKEN_FILE for a Docker secret)",
                    self.where_to_set("token", "TESTOPS_TOKEN")
                ),
            })
    }

    fn where_to_set(&self, key: &str, env: &str) -> String {
        match &self.path {
            Some(p) => format!(
                "set {key} under [testops] in {} or the {env} environment variable",
                p.display()
            ),
            None => format!(
                "no config file was found; pass --config FILE or set the {env} environment variable"
            ),
        }
    }

    /// Finds configured groups by name; an unknown name is an error listing the known ones.
    pub fn select_groups(&self, names: &[String]) -> Result<Vec<Group>, String> {
        if names.is_empty() {
            return Ok(self.testops.groups.clone());
        }
        names
            .iter()
            .map(|n| {
                self.testops
                    .groups
                    .iter()
                    .find(|g| g.name.eq_ignore_ascii_case(n))
                    .cloned()
                    .ok_or_else(|| {
                        let known: Vec<_> = self
                            .testops
                            .groups
                            .iter()
                            .map(|g| g.name.as_str())
                            .collect();
                        format!(
                            "unknown group `{n}`; configured groups: {}",
                            known.join(", ")
                        )
                    })
            })
            .collect()
    }
}

/// `server.listen` with its TLS files: an address, both files or neither, and without TLS a
/// loopback address only (a token must not cross a network in clear).
fn listen_config(
    s: &file::ServerFile,
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
    warnings: &mut Vec<String>,
) -> Result<Option<ListenConfig>, ConfigError> {
    let tls = match (&s.tls_cert, &s.tls_key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(TlsFiles {
            cert: PathBuf::from(c.get_ref()),
            cert_origin: at(c.span()),
            key: PathBuf::from(k.get_ref()),
            key_origin: at(k.span()),
        }),
        (Some(c), None) => {
            return Err(ConfigError::Invalid {
                key: "server.tls_key",
                origin: at(c.span()),
                message: "server.tls_cert is set but server.tls_key is not: set both".into(),
            });
        }
        (None, Some(k)) => {
            return Err(ConfigError::Invalid {
                key: "server.tls_cert",
                origin: at(k.span()),
                message: "server.tls_key is set but server.tls_cert is not: set both".into(),
            });
        }
    };
    let Some(l) = &s.listen else {
        if tls.is_some() {
            warnings.push(
                "server.tls_cert and server.tls_key are set but server.listen is not: no TCP listener"
                    .into(),
            );
        }
        return Ok(None);
    };
    let origin = at(l.span());
    let addr: std::net::SocketAddr = l.get_ref().trim().parse().map_err(|_| {
        ConfigError::Invalid {
            key: "server.listen",
            origin: origin.clone(),
            message: format!(
                "`{}` is not an IP address and port, e.g. \"0.0.0.0:8443\" or \"127.0.0.1:8443\"",
                l.get_ref()
            ),
        }
    })?;
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(ConfigError::Invalid {
            key: "server.listen",
            origin,
            message: format!(
                "`{addr}` is not a loopback address and TLS is not configured: bearer tokens \
                 would cross the network in clear; set server.tls_cert and server.tls_key, or \
                 listen on 127.0.0.1"
            ),
        });
    }
    Ok(Some(ListenConfig { addr, origin, tls }))
}

/// `[storage]`: a PostgreSQL URL without a password, and the password from a file.
fn storage_config(
    s: file::StorageFile,
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
    warnings: &mut Vec<String>,
) -> Result<Option<std::sync::Arc<crate::storage::PgConfig>>, ConfigError> {
    let password = match &s.password_file {
        None => None,
        Some(f) => {
            let origin = at(f.span());
            if s.url.is_none() && s.url_file.is_none() {
                return Err(ConfigError::Invalid {
                    key: "storage.password_file",
                    origin,
                    message: "is set but storage.url is not".into(),
                });
            }
            let p = Path::new(f.get_ref());
            warnings.extend(permission_warning(
                p,
                "the database password (storage.password_file)",
            ));
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Invalid {
                key: "storage.password_file",
                origin: origin.clone(),
                message: format!("cannot read {}: {e}", p.display()),
            })?;
            // One trailing newline (echo, Docker secrets) is not part of the password.
            let pw = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_string();
            if pw.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "storage.password_file",
                    origin,
                    message: format!("{} is empty", p.display()),
                });
            }
            crate::sanitize::register_secret(&pw);
            Some(pw)
        }
    };
    // The URL as written, or read from `url_file` (a Docker secret: one trailing newline is
    // not part of it); errors then name `storage.url_file`.
    let (url, key, origin) = match (s.url, s.url_file) {
        (Some(_), Some(f)) => {
            return Err(ConfigError::Invalid {
                key: "storage.url_file",
                origin: at(f.span()),
                message: "is set and so is storage.url: give one of them".into(),
            });
        }
        (Some(u), None) => {
            let origin = at(u.span());
            (u.into_inner(), "storage.url", origin)
        }
        (None, Some(f)) => {
            let origin = at(f.span());
            let p = Path::new(f.get_ref());
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Invalid {
                key: "storage.url_file",
                origin: origin.clone(),
                message: format!("cannot read {}: {e}", p.display()),
            })?;
            (text.trim().to_string(), "storage.url_file", origin)
        }
        (None, None) => return Ok(None),
    };
    let pg =
        crate::storage::PgConfig::new(&url, password).map_err(|message| ConfigError::Invalid {
            key,
            origin: origin.clone(),
            message,
        })?;
    for host in pg.remote_tcp_hosts() {
        warnings.push(format!(
            "{origin}: storage.url reaches {host} over TCP without TLS: the ledger crosses the \
             network unencrypted (use a Unix socket, a loopback address or a private link)"
        ));
    }
    Ok(Some(std::sync::Arc::new(pg)))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Parses `"5m"`, `"90s"`, `"1h 30m"`, `"250ms"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write it like \"90s\", \"5m\" or \"1h\"")
    })
}

fn read(p: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
        path: p.to_path_buf(),
        source,
    })
}

fn read_token_file(p: &Path, key: &'static str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Invalid {
        key,
        origin: Origin::Default,
        message: format!("cannot read token file {}: {e}", p.display()),
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            origin: Origin::Default,
            message: format!("token file {} is empty", p.display()),
        });
    }
    Ok(token)
}

/// A password in the base URL's user-info is a secret like the token.
fn register_url_password(url: &str) {
    let authority = url.split("://").nth(1).and_then(|r| r.split('/').next());
    if let Some((userinfo, _)) = authority.and_then(|a| a.rsplit_once('@'))
        && let Some((_, password)) = userinfo.split_once(':')
    {
        crate::sanitize::register_secret(password);
    }
}

fn permission_warning(p: &Path, what: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} holds {what} and is readable by group or others (mode {:o}); run: chmod 600 {}",
            p.display(),
            mode & 0o777,
            p.display()
        )
    })
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
