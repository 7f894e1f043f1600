//! A simulated Allure TestOps server on 127.0.0.1, speaking plain HTTP/1.1.
//!
//! It follows docs/testops-api.md and can misbehave on purpose (expired tokens, 5xx, 429 with
//! `Retry-After`, not-ready polls, HTML with status 200, a connection cut mid-body, slow
//! bodies). The tests, the export benchmark and `opsdeck demo` all use it, so the real client
//! code always talks real HTTP. It is deliberately hand-written over tokio's TCP so a fault can
//! be exactly "send half the body, then close".

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A scripted misbehaviour, used once, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Reply with this status and a short body.
    Status(u16),
    /// Reply with this status and `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// Reply 200 with an HTML login page.
    Html200,
    /// Send the headers and this many bytes of the body, then close the connection.
    CutAfter(usize),
    /// Reject the bearer token as expired (401).
    Expire,
}

/// The body a group's export returns.
#[derive(Debug, Clone)]
pub enum Body {
    Bytes(Bytes),
    /// Streamed from a file (benchmarks).
    File(PathBuf),
}

/// Knobs of the simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The API token the exchange accepts.
    pub api_token: String,
    /// `expires_in` reported with each access token.
    pub expires_in: u64,
    /// "Not ready" replies before each download succeeds (cycling 404, 409, 202, empty 200).
    pub not_ready_polls: u32,
    /// Pause between body chunks (a slow link); `None` streams at full speed.
    pub chunk_delay: Option<Duration>,
    /// Body chunk size.
    pub chunk_size: usize,
    /// Client id and secret the token exchange demands as `Authorization: Basic`.
    pub client_auth: Option<(String, String)>,
    /// Send `expires_in` as a JSON string, as some servers do.
    pub expires_in_as_string: bool,
    /// The statuses of "not ready" replies, cycled, instead of 404, 409, 202 and empty 200
    /// (e.g. 400 and 503, which some servers answer while preparing).
    pub preparing_statuses: Option<Vec<u16>>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            api_token: "sim-api-token".into(),
            expires_in: 3600,
            not_ready_polls: 0,
            chunk_delay: None,
            chunk_size: 256 * 1024,
            client_auth: None,
            expires_in_as_string: false,
            preparing_statuses: None,
        }
    }
}

/// Counters a test can assert on.
#[derive(Debug, Default)]
pub struct SimCounters {
    pub exchanges: AtomicU64,
    pub export_requests: AtomicU64,
    pub downloads: AtomicU64,
    pub unauthorized: AtomicU64,
    /// Exports deleted with `DELETE /api/export/<id>`.
    pub deletes: AtomicU64,
}

struct Export {
    group_id: u64,
    polls_left: u32,
}

struct State {
    opts: Mutex<SimOptions>,
    counters: SimCounters,
    valid_tokens: Mutex<Vec<String>>,
    next_id: AtomicU64,
    exports: Mutex<HashMap<u64, Export>>,
    bodies: Mutex<HashMap<u64, Body>>,
    export_faults: Mutex<VecDeque<Fault>>,
    download_faults: Mutex<VecDeque<Fault>>,
    /// (when, method + path) of every request.
    log: Mutex<Vec<(Instant, String)>>,
}

/// A running simulated TestOps. Dropping it stops the server.
pub struct SimTestOps {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimTestOps {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimTestOps {
    /// Starts the server on an ephemeral port of 127.0.0.1.
    pub async fn start(opts: SimOptions) -> std::io::Result<SimTestOps> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            opts: Mutex::new(opts),
            counters: SimCounters::default(),
            valid_tokens: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1000),
            exports: Mutex::new(HashMap::new()),
            bodies: Mutex::new(HashMap::new()),
            export_faults: Mutex::new(VecDeque::new()),
            download_faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        Ok(SimTestOps { addr, state, task })
    }

    /// The base URL to configure as `testops.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counters.
    pub fn counters(&self) -> &SimCounters {
        &self.state.counters
    }

    /// Every request so far, as "METHOD /path".
    pub fn requests(&self) -> Vec<(Instant, String)> {
        lock(&self.state.log).clone()
    }

    /// Sets the CSV a group exports.
    pub fn set_body(&self, group_id: u64, body: Body) {
        lock(&self.state.bodies).insert(group_id, body);
    }

    /// Queues faults for the export request endpoint.
    pub fn fail_export_requests(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.export_faults).extend(faults);
    }

    /// Queues faults for the download endpoint.
    pub fn fail_downloads(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.download_faults).extend(faults);
    }

    /// Revokes every access token issued so far (the next call gets 401).
    pub fn revoke_tokens(&self) {
        lock(&self.state.valid_tokens).clear();
    }

    /// Changes the options of a running server.
    pub fn update(&self, f: impl FnOnce(&mut SimOptions)) {
        f(&mut lock(&self.state.opts));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A plausible CSV for a group: the default mapping's first columns, `rows` test cases.
pub fn sample_csv(group: &str, rows: usize, seed: u64) -> String {
    let mut out = String::from("allure_id;name;full_name;automated;status;tag;Owner;Epic\n");
    let statuses = ["Active", "Draft", "Outdated", "Review"];
    let owners = ["anna", "boris", "chen", "dmitry"];
    for i in 0..rows {
        let id = 10_000 + i as u64;
        let v = (id.wrapping_mul(2654435761) ^ seed) % 97;
        out.push_str(&format!(
            "{id};\"{group} case {i}: проверка {v}\";{group}.suite{}.case{i};{};{};\"smoke,{}\";{};\"Epic {}\"\n",
            i % 7,
            v.is_multiple_of(2),
            statuses[(v % 4) as usize],
            group.to_lowercase(),
            owners[(v % 4) as usize],
            i % 5,
        ));
    }
    out
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request(sock: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let b = match sock.read_u8().await {
            Ok(b) => b,
            Err(_) if head.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        };
        head.push(b);
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head.len() > 64 * 1024 {
            return Ok(None);
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    sock.read_exact(&mut body).await?;
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

async fn respond(
    sock: &mut BufReader<TcpStream>,
    status: u16,
    extra: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let s = sock.get_mut();
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn json(v: serde_json::Value) -> (Vec<(&'static str, String)>, Vec<u8>) {
    (
        vec![("Content-Type", "application/json".into())],
        v.to_string().into_bytes(),
    )
}

async fn serve(sock: TcpStream, st: Arc<State>) -> std::io::Result<()> {
    let mut sock = BufReader::new(sock);
    while let Some(req) = read_request(&mut sock).await? {
        lock(&st.log).push((Instant::now(), format!("{} {}", req.method, req.path)));
        let keep_going = handle(&mut sock, &st, req).await?;
        if !keep_going {
            return Ok(());
        }
    }
    Ok(())
}

/// Handles one request; `false` closes the connection.
async fn handle(
    sock: &mut BufReader<TcpStream>,
    st: &State,
    req: Request,
) -> std::io::Result<bool> {
    let opts = lock(&st.opts).clone();
    if req.method == "POST" && req.path == "/api/uaa/oauth/token" {
        st.counters.exchanges.fetch_add(1, Ordering::Relaxed);
        let form = parse_form(&req.body);
        let client_ok = opts.client_auth.as_ref().is_none_or(|(id, secret)| {
            use base64::Engine;
            let want = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            req.header("authorization") == Some(&format!("Basic {want}"))
        });
        let ok = client_ok
            && form.get("grant_type").map(String::as_str) == Some("apitoken")
            && form.get("token") == Some(&opts.api_token);
        if !ok {
            let (h, b) = json(serde_json::json!({"error": "invalid_token"}));
            respond(sock, 401, &h, &b).await?;
            return Ok(true);
        }
        let token = format!("sim-access-{}", st.next_id.fetch_add(1, Ordering::Relaxed));
        lock(&st.valid_tokens).push(token.clone());
        let expires_in = if opts.expires_in_as_string {
            serde_json::json!(opts.expires_in.to_string())
        } else {
            serde_json::json!(opts.expires_in)
        };
        let (h, b) = json(
            serde_json::json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in}),
        );
        respond(sock, 200, &h, &b).await?;
        return Ok(true);
    }

    let authorised = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| lock(&st.valid_tokens).iter().any(|v| v == t));
    if !authorised {
        st.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        respond(sock, 401, &[], b"unauthorized").await?;
        return Ok(true);
    }

    if req.method == "POST" && req.path == "/api/v2/test-case/bulk/export/csv" {
        st.counters.export_requests.fetch_add(1, Ordering::Relaxed);
        let fault = lock(&st.export_faults).pop_front();
        if let Some(f) = fault {
            return apply_fault(sock, st, f, b"").await;
        }
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let group_id = v["selection"]["groupsInclude"][0].as_u64();
        let Some(group_id) = group_id.filter(|_| v["mapping"].is_array()) else {
            respond(sock, 400, &[], b"bad export request").await?;
            return Ok(true);
        };
        let id = st.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&st.exports).insert(
            id,
            Export {
                group_id,
                polls_left: opts.not_ready_polls,
            },
        );
        let (h, b) = json(serde_json::json!({"id": id, "name": "report.csv"}));
        respond(sock, 200, &h, &b).await?;
        return Ok(true);
    }

    if let (true, Some(id)) = (
        req.method == "GET",
        req.path
            .strip_prefix("/api/export/download/")
            .and_then(|s| s.parse::<u64>().ok()),
    ) {
        let (group_id, not_ready) = {
            let mut exports = lock(&st.exports);
            match exports.get_mut(&id) {
                None => (None, 0),
                Some(e) if e.polls_left > 0 => {
                    e.polls_left -= 1;
                    (Some(e.group_id), e.polls_left + 1)
                }
                Some(e) => (Some(e.group_id), 0),
            }
        };
        let Some(group_id) = group_id else {
            respond(sock, 404, &[], b"no such export").await?;
            return Ok(true);
        };
        if not_ready > 0 {
            let cycle = opts
                .preparing_statuses
                .clone()
                .unwrap_or_else(|| vec![404, 409, 202, 200]);
            let status = cycle[(not_ready as usize) % cycle.len().max(1)];
            respond(sock, status, &[], b"").await?;
            return Ok(true);
        }
        st.counters.downloads.fetch_add(1, Ordering::Relaxed);
        let body = lock(&st.bodies).get(&group_id).cloned().unwrap_or_else(|| {
            Body::Bytes(Bytes::from(sample_csv(
                &format!("G{group_id}"),
                5,
                group_id,
            )))
        });
        let fault = lock(&st.download_faults).pop_front();
        let bytes = match body {
            Body::Bytes(b) => b,
            Body::File(p) => {
                if fault.is_none() {
                    return stream_file(sock, &p, &opts).await;
                }
                Bytes::from(tokio::fs::read(&p).await?)
            }
        };
        if let Some(f) = fault {
            return apply_fault(sock, st, f, &bytes).await;
        }
        send_body(sock, &bytes, &opts).await?;
        return Ok(true);
    }

    if let (true, Some(id)) = (
        req.method == "DELETE",
        req.path
            .strip_prefix("/api/export/")
            .and_then(|s| s.parse::<u64>().ok()),
    ) {
        let found = lock(&st.exports).remove(&id).is_some();
        if found {
            st.counters.deletes.fetch_add(1, Ordering::Relaxed);
            respond(sock, 200, &[], b"").await?;
        } else {
            respond(sock, 404, &[], b"no such export").await?;
        }
        return Ok(true);
    }

    respond(sock, 404, &[], b"not found").await?;
    Ok(true)
}

async fn apply_fault(
    sock: &mut BufReader<TcpStream>,
    st: &State,
    f: Fault,
    body: &[u8],
) -> std::io::Result<bool> {
    match f {
        Fault::Status(s) => respond(sock, s, &[], b"simulated failure").await?,
        Fault::RetryAfter(s, secs) => {
            respond(sock, s, &[("Retry-After", secs.to_string())], b"slow down").await?
        }
        Fault::Html200 => {
            let page = b"<!DOCTYPE html><html><head><title>Login</title></head><body>Sign in</body></html>";
            respond(
                sock,
                200,
                &[("Content-Type", "text/html; charset=utf-8".into())],
                page,
            )
            .await?;
        }
        Fault::Expire => {
            lock(&st.valid_tokens).clear();
            st.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            respond(sock, 401, &[], b"token expired").await?;
        }
        Fault::CutAfter(n) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let s = sock.get_mut();
            s.write_all(head.as_bytes()).await?;
            s.write_all(&body[..n.min(body.len())]).await?;
            s.flush().await?;
            let _ = s.shutdown().await;
            return Ok(false);
        }
    }
    Ok(true)
}

async fn send_body(
    sock: &mut BufReader<TcpStream>,
    body: &[u8],
    opts: &SimOptions,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = sock.get_mut();
    s.write_all(head.as_bytes()).await?;
    for chunk in body.chunks(opts.chunk_size.max(1)) {
        s.write_all(chunk).await?;
        if let Some(d) = opts.chunk_delay {
            s.flush().await?;
            tokio::time::sleep(d).await;
        }
    }
    s.flush().await
}

async fn stream_file(
    sock: &mut BufReader<TcpStream>,
    path: &PathBuf,
    opts: &SimOptions,
) -> std::io::Result<bool> {
    let mut f = tokio::fs::File::open(path).await?;
    let len = f.metadata().await?.len();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Length: {len}\r\n\r\n"
    );
    let s = sock.get_mut();
    s.write_all(head.as_bytes()).await?;
    let mut buf = vec![0; opts.chunk_size.max(4096)];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await?;
    }
    s.flush().await?;
    Ok(true)
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(())
                {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
