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
    /// Builds the client (rustls, timeouts on connect and on each read, opsdeck's user agent).
    pub fn new(settings: TestOpsSettings) -> Result<Self, TestOpsError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
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
        let resp = self
            .http
            .post(self.url("/api/uaa/oauth/token"))
            .header(header::ACCEPT, "application/json")
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
        let body: serde_json::Value = resp.json().await.map_err(|e| TestOpsError::Malformed {
            what,
            message: format!("not JSON ({e})"),
        })?;
        let token = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or(TestOpsError::Malformed {
                what,
                message: "no access_token in the reply".into(),
            })?;
        let expires_in = body
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .map(Duration::from_secs);
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
        let v: serde_json::Value = resp.json().await.map_err(|e| TestOpsError::Malformed {
            what,
            message: format!("not JSON ({e})"),
        })?;
        v.get("id")
            .and_then(|id| id.as_u64())
            .ok_or(TestOpsError::Malformed {
                what,
                message: "no numeric `id` in the reply".into(),
            })
    }

    /// Polls the download until the file is ready, with growing pauses, for at most
    /// `poll_timeout`. 404, 409, 202 and an empty 200 mean "not ready yet".
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
                _ => {
                    check_status(what, resp).await?;
                    true
                }
            };
            debug_assert!(not_ready);
            let waited = started.elapsed();
            if waited >= self.settings.poll_timeout {
                return Err(TestOpsError::NotReady { polls, waited });
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
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
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
