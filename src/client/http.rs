//! HTTP/1.1 over the server's Unix socket, the way the Docker CLI talks to its engine: one
//! connection per request (a local connect costs microseconds), JSON bodies, NDJSON streams.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a call to the server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error("no server answers on {socket}: {reason}")]
    Unreachable { socket: String, reason: String },
    /// The server answered with an error.
    #[error("{error}")]
    Api {
        status: u16,
        code: String,
        error: String,
    },
    /// The reply was not what the API promises.
    #[error("the server's reply: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The CLI's exit code for this error: 2 bad input or lost race, 4 not allowed, 1 else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Api { status: 403, .. } => 4,
            ClientError::Api {
                status: 400 | 404 | 409,
                ..
            } => 2,
            _ => 1,
        }
    }
}

/// A client of one socket.
#[derive(Debug, Clone)]
pub struct UnixHttp {
    pub socket: PathBuf,
    /// Sent as `X-Opsdeck-Ssh`: the client's SSH origin, recorded by the server as unverified.
    ssh: Option<String>,
}

impl UnixHttp {
    /// A client of `socket`; it tells the server its `SSH_CONNECTION` client address.
    pub fn new(socket: PathBuf) -> UnixHttp {
        let ssh = std::env::var("SSH_CONNECTION")
            .ok()
            .and_then(|c| c.split_whitespace().next().map(str::to_string));
        UnixHttp { socket, ssh }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            socket: self.socket.display().to_string(),
            reason,
        };
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "opsdeck")
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(s) = &self.ssh {
            req = req.header("x-opsdeck-ssh", s);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `GET path` as JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, None).await
    }

    /// `GET path` as text (the metrics).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let resp = self.send(Method::GET, path, None).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `POST path` with a JSON body, answered with JSON.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let b = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.json(Method::POST, path, Some(b)).await
    }

    /// `PUT path` with a JSON body, answered with JSON.
    pub async fn put_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let b = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.json(Method::PUT, path, Some(b)).await
    }

    /// A request answered with newline-delimited JSON: each line as it arrives.
    pub async fn lines(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<impl Stream<Item = Result<String, ClientError>> + Send + use<>, ClientError> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .to_bytes();
            return Err(api_error(status, &bytes));
        }
        let body = resp.into_body();
        Ok(futures_util::stream::unfold(
            (body, Vec::<u8>::new(), false),
            |(mut body, mut buf, ended)| async move {
                loop {
                    if let Some(i) = memchr::memchr(b'\n', &buf) {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        let text = String::from_utf8_lossy(&line[..i]).into_owned();
                        return Some((Ok(text), (body, buf, ended)));
                    }
                    if ended {
                        return None;
                    }
                    match body.frame().await {
                        Some(Ok(f)) => {
                            if let Ok(d) = f.into_data() {
                                buf.extend_from_slice(&d);
                            }
                        }
                        Some(Err(e)) => {
                            return Some((
                                Err(ClientError::Protocol(e.to_string())),
                                (body, buf, true),
                            ));
                        }
                        None => {
                            if buf.is_empty() {
                                return None;
                            }
                            buf.push(b'\n');
                            return Some((
                                Ok(String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned()),
                                (body, Vec::new(), true),
                            ));
                        }
                    }
                }
            },
        ))
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct E {
        error: String,
        code: String,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: e.code,
            error: e.error,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "http".into(),
            error: format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        },
    }
}
