//! Hostile HTTP servers on 127.0.0.1, written per test: each connection's request is parsed
//! and handed, with the socket, to the test's handler, which may answer anything (echo the
//! request, redirect elsewhere, stream forever, drip one byte at a time).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// The request line and headers, as sent.
    pub head: String,
    pub body: Vec<u8>,
}

impl Req {
    /// The whole request as text (head and body), e.g. to echo it back.
    pub fn text(&self) -> String {
        format!("{}{}", self.head, String::from_utf8_lossy(&self.body))
    }
}

/// A running hostile server; dropping it stops it.
pub struct Hostile {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    /// Starts a server calling `handler` for each request (one request per connection).
    pub async fn start<F, Fut>(handler: F) -> Hostile
    where
        F: Fn(Req, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (reqs, handler) = (requests.clone(), Arc::new(handler));
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (reqs, handler) = (reqs.clone(), handler.clone());
                tokio::spawn(async move {
                    if let Some(req) = read_request(&mut sock).await {
                        reqs.lock().unwrap().push(req.clone());
                        handler(req, sock).await;
                    }
                });
            }
        });
        Hostile {
            addr,
            requests,
            task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn read_request(sock: &mut TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).await.ok()? == 0 || buf.len() > 64 << 10 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut first = head.lines().next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    sock.read_exact(&mut body).await.ok()?;
    Some(Req {
        method,
        path,
        head,
        body,
    })
}

/// Writes a whole reply and closes.
pub async fn reply(mut sock: TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body).await;
    let _ = sock.shutdown().await;
}

/// Answers the token exchange and the export request like TestOps; `None` when `req` is
/// neither (the test's own part: usually the download), giving the socket back.
pub async fn testops_basics(req: &Req, sock: TcpStream) -> Option<TcpStream> {
    let json = [("Content-Type", "application/json")];
    if req.path == "/api/uaa/oauth/token" {
        let body = br#"{"access_token":"hostile-access-token-1","expires_in":3600}"#;
        reply(sock, 200, &json, body).await;
        None
    } else if req.path == "/api/v2/test-case/bulk/export/csv" {
        reply(sock, 200, &json, br#"{"id":7}"#).await;
        None
    } else {
        Some(sock)
    }
}
