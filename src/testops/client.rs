//! `TestOpsClient`: token exchange and refresh, export request, download polling.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::Mutex;

use super::error::{TestOpsError, parse_retry_after, snippet};
use crate::config::{ColumnMapping, Config, ConfigError};

/// What the client needs from the configuration.
#[derive(Clone)]
pub struct TestOpsSettings {
    pub base_url: String,
    pub token: SecretString,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
    /// Extra CA certificates (PEM) to trust, besides the built-in roots and `SSL_CERT_FILE`.
    pub ca_file: Option<std::path::PathBuf>,
    /// Basic client credentials for the token exchange.
    pub client_auth: Option<(String, SecretString)>,
    /// Delete the export on the server once it is saved.
    pub delete_after_download: bool,
}

impl TestOpsSettings {
    /// Takes the settings from a validated config; errors when URL or token are missing.
    pub fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: cfg.require_base_url()?.to_string(),
            token: cfg.require_token()?.clone(),
            connect_timeout: cfg.testops.connect_timeout,
            read_timeout: cfg.testops.read_timeout,
            poll_interval: cfg.testops.poll_interval,
            poll_timeout: cfg.testops.poll_timeout,
            ca_file: cfg.testops.ca_file.clone(),
            client_auth: cfg
                .testops
                .client_auth
                .as_ref()
                .map(|c| (c.id.clone(), SecretString::from(c.secret.clone()))),
            delete_after_download: cfg.testops.delete_after_download,
        })
    }
}

struct AccessToken {
    value: SecretString,
    refresh_at: Instant,
}

/// A TestOps API client. Cheap to share behind an `Arc`; the access token is cached inside.
pub struct TestOpsClient {
    http: reqwest::Client,
    settings: TestOpsSettings,
    access: Mutex<Option<AccessToken>>,
}

/// Which test cases one export covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSelection {
    pub project_id: u64,
    pub tree_id: u64,
    pub group_id: u64,
}

/// A download whose first bytes have arrived; the rest streams from `rest`.
pub struct Download {
    pub first: Bytes,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub polls: u32,
    response: Response,
}

impl Download {
    /// The next chunk of the body, `None` at the end.
    pub async fn next_chunk(&mut self, received: u64) -> Result<Option<Bytes>, TestOpsError> {
        match self.response.chunk().await {
            Ok(c) => Ok(c),
            Err(e) => Err(TestOpsError::Interrupted {
                bytes: received,
                message: TestOpsError::network("the download", e).to_string(),
            }),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Selection {
    project_id: u64,
    tree_id: u64,
    groups_include: [u64; 1],
    groups_exclude: [u64; 0],
    test_cases_include: [u64; 0],
    test_cases_exclude: [u64; 0],
    inverted: bool,
    deleted: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest<'a> {
    selection: Selection,
    mapping: &'a [ColumnMapping],
    column_separator: &'static str,
    include_headers: bool,
    name: &'static str,
}

/// The user agent every request carries.
pub const USER_AGENT: &str = concat!("opsdeck/", env!("CARGO_PKG_VERSION"));

impl TestOpsClient {
    /// Builds the client (rustls, timeouts on connect and on each read, opsdeck's user agent,
    /// redirects only within the base URL's origin, extra CAs from `ca_file`/`SSL_CERT_FILE`).
    pub fn new(settings: TestOpsSettings) -> Result<Self, TestOpsError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .redirect(super::limits::same_origin_redirects());
        let env_ca = std::env::var_os("SSL_CERT_FILE")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from);
        for path in settings.ca_file.iter().chain(env_ca.iter()) {
            for cert in super::limits::load_ca(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| TestOpsError::network("building the HTTP client", e))?;
        Ok(Self {
            http,
            settings,
            access: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url)
    }

    /// Exchanges the API token for an access token now (what `opsdeck check` tests).
    /// Returns the access token's lifetime as the server stated it.
    pub async fn exchange(&self) -> Result<Option<Duration>, TestOpsError> {
        let what = "the token exchange";
        let mut req = self
            .http
            .post(self.url("/api/uaa/oauth/token"))
            .header(header::ACCEPT, "application/json");
        if let Some((id, secret)) = &self.settings.client_auth {
            req = req.basic_auth(id, Some(secret.expose_secret()));
        }
        let resp = req
            .form(&[
                ("grant_type", "apitoken"),
                ("scope", "openid"),
                ("token", self.settings.token.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| TestOpsError::network(what, e))?;
        let status = resp.status();
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
            return Err(TestOpsError::BadToken {
                status: status.as_u16(),
            });
        }
        let resp = check_status(what, resp).await?;
        let body = super::limits::json_reply(what, resp).await?;
        let token = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or(TestOpsError::Malformed {
                what,
                message: "no access_token in the reply".into(),
            })?;
        // Some servers send the lifetime as a string ("3600").
        let expires_in = body
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
            .map(Duration::from_secs);
        crate::sanitize::register_secret(token);
        // Refresh a minute early (or at 90% of short lifetimes) so a call never races expiry.
        let lifetime = expires_in.unwrap_or(Duration::from_secs(3600));
        let margin = Duration::from_secs(60).min(lifetime / 10);
        *self.access.lock().await = Some(AccessToken {
            value: SecretString::from(token.to_string()),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(expires_in)
    }

    async fn bearer(&self) -> Result<SecretString, TestOpsError> {
        {
            let guard = self.access.lock().await;
            if let Some(t) = guard.as_ref().filter(|t| Instant::now() < t.refresh_at) {
                return Ok(t.value.clone());
            }
        }
        self.exchange().await?;
        let guard = self.access.lock().await;
        Ok(guard.as_ref().map(|t| t.value.clone()).unwrap_or_default())
    }

    /// Sends an authorised request; on 401 exchanges the token again once and repeats once.
    async fn send_authed(
        &self,
        what: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, TestOpsError> {
        for fresh in [false, true] {
            if fresh {
                *self.access.lock().await = None;
            }
            let bearer = self.bearer().await?;
            let resp = build()
                .bearer_auth(bearer.expose_secret())
                .send()
                .await
                .map_err(|e| TestOpsError::network(what, e))?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !fresh => {
                    tracing::info!("TestOps answered 401 to {what}; exchanging the token again");
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(TestOpsError::Forbidden {
                        what,
                        status: resp.status().as_u16(),
                    });
                }
                _ => return Ok(resp),
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Asks TestOps to prepare a CSV export of one group; returns the export id.
    pub async fn request_export(
        &self,
        sel: ExportSelection,
        mapping: &[ColumnMapping],
    ) -> Result<u64, TestOpsError> {
        let what = "the export request";
        let body = ExportRequest {
            selection: Selection {
                project_id: sel.project_id,
                tree_id: sel.tree_id,
                groups_include: [sel.group_id],
                groups_exclude: [],
                test_cases_include: [],
                test_cases_exclude: [],
                inverted: false,
                deleted: false,
            },
            mapping,
            column_separator: ";",
            include_headers: true,
            name: "report.csv",
        };
        let url = self.url("/api/v2/test-case/bulk/export/csv");
        let resp = self
            .send_authed(what, || self.http.post(&url).json(&body))
            .await?;
        let resp = check_status(what, resp).await?;
        let v = super::limits::json_reply(what, resp).await?;
        v.get("id")
            .and_then(|id| id.as_u64())
            .ok_or(TestOpsError::Malformed {
                what,
                message: "no numeric `id` in the reply".into(),
            })
    }

    /// Polls the download until the file is ready, with growing pauses, for at most
    /// `poll_timeout`. 404, 409, 202 and an empty 200 mean "not ready yet"; so do 400, 429
    /// and 5xx, which some servers answer while preparing: when the time is up, the last of
    /// those is the error.
    /// `on_poll` is told each poll number so callers can show progress.
    pub async fn start_download(
        &self,
        export_id: u64,
        mut on_poll: impl FnMut(u32),
    ) -> Result<Download, TestOpsError> {
        let what = "the download";
        let url = self.url(&format!("/api/export/download/{export_id}"));
        let started = Instant::now();
        let mut pause = self.settings.poll_interval.min(Duration::from_millis(500));
        let mut polls = 0u32;
        let mut last_error: Option<TestOpsError> = None;
        loop {
            polls += 1;
            on_poll(polls);
            let mut resp = self.send_authed(what, || self.http.get(&url)).await?;
            let status = resp.status();
            let not_ready = match status {
                StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::ACCEPTED => true,
                StatusCode::OK => {
                    let content_type = header_str(&resp, header::CONTENT_TYPE);
                    let content_length = resp.content_length();
                    match resp.chunk().await {
                        Ok(Some(first)) if !first.is_empty() => {
                            return Ok(Download {
                                first,
                                content_type,
                                content_length,
                                polls,
                                response: resp,
                            });
                        }
                        Ok(_) => true,
                        Err(e) => return Err(TestOpsError::network(what, e)),
                    }
                }
                s if s == StatusCode::BAD_REQUEST
                    || s == StatusCode::TOO_MANY_REQUESTS
                    || s.is_server_error() =>
                {
                    last_error = check_status(what, resp).await.err();
                    true
                }
                _ => {
                    check_status(what, resp).await?;
                    true
                }
            };
            debug_assert!(not_ready);
            let waited = started.elapsed();
            if waited >= self.settings.poll_timeout {
                return Err(last_error.unwrap_or(TestOpsError::NotReady { polls, waited }));
            }
            tracing::debug!(
                export_id,
                polls,
                status = status.as_u16(),
                "export not ready yet"
            );
            let remaining = self.settings.poll_timeout - waited;
            tokio::time::sleep(pause.min(remaining)).await;
            pause = (pause * 3 / 2).min(self.settings.poll_interval.max(pause));
        }
    }
}

impl TestOpsClient {
    /// Whether `delete` should follow a saved download (`testops.delete_after_download`).
    pub fn deletes_after_download(&self) -> bool {
        self.settings.delete_after_download
    }

    /// Deletes an export on the server (`DELETE /api/export/<id>`), as TestOps's own support
    /// scripts do, so runs do not pile up exports there.
    pub async fn delete_export(&self, export_id: u64) -> Result<(), TestOpsError> {
        let what = "deleting the export on the server";
        let url = self.url(&format!("/api/export/{export_id}"));
        let resp = self.send_authed(what, || self.http.delete(&url)).await?;
        check_status(what, resp).await.map(drop)
    }
}

fn header_str(resp: &Response, name: header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Turns a non-success reply into `TestOpsError::Status` with a snippet of its body.
async fn check_status(what: &'static str, resp: Response) -> Result<Response, TestOpsError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status.is_redirection() {
        // Followed only within the origin; anything else stopped here, unsent.
        let to = header_str(&resp, header::LOCATION).unwrap_or_default();
        return Err(TestOpsError::Redirect {
            what,
            status: status.as_u16(),
            to: super::limits::origin_for_display(&to),
        });
    }
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    // A bounded read: an endless error body costs 512 bytes, not memory.
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk[..chunk.len().min(512)]);
        if body.len() >= 512 {
            break;
        }
    }
    Err(TestOpsError::Status {
        what,
        status: status.as_u16(),
        retry_after,
        snippet: snippet(&body),
    })
}
