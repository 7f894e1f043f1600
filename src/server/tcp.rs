//! The optional TCP listener (`server.listen`) for CI over the network: the same routes as
//! the Unix socket, behind TLS (rustls) unless the address is loopback, and every request
//! authenticated by a bearer token (`tokens::require_bearer`); peer credentials do not exist
//! here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::ServerState;
use super::tokens::{self, TokenStore};
use crate::config::{ListenConfig, Origin};

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TCP listener could not start; names the key and where it was set.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error("{origin}: `{key}`: {message}")]
    Tls {
        key: &'static str,
        origin: Origin,
        message: String,
    },
    #[error("{origin}: `server.listen`: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        origin: Origin,
        source: std::io::Error,
    },
}

/// A bound listener, ready to serve.
pub struct Bound {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    pub addr: SocketAddr,
}

/// Reads the TLS files and binds `server.listen`.
pub async fn bind(cfg: &ListenConfig) -> Result<Bound, TcpError> {
    let tls = match &cfg.tls {
        None => None,
        Some(files) => {
            let tls_err = |key, origin: &Origin, message: String| TcpError::Tls {
                key,
                origin: origin.clone(),
                message,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| {
                    tls_err(
                        "server.tls_cert",
                        &files.cert_origin,
                        format!("{}: {e}", files.cert.display()),
                    )
                })?;
            if certs.is_empty() {
                return Err(tls_err(
                    "server.tls_cert",
                    &files.cert_origin,
                    format!("{}: no PEM certificate in it", files.cert.display()),
                ));
            }
            let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
                tls_err(
                    "server.tls_key",
                    &files.key_origin,
                    format!("{}: {e}", files.key.display()),
                )
            })?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| tls_err("server.tls_cert", &files.cert_origin, e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| {
                    tls_err(
                        "server.tls_key",
                        &files.key_origin,
                        format!("{} does not fit the certificate: {e}", files.key.display()),
                    )
                })?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(TlsAcceptor::from(Arc::new(config)))
        }
    };
    let listener = TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| TcpError::Bind {
            addr: cfg.addr,
            origin: cfg.origin.clone(),
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(cfg.addr);
    Ok(Bound {
        listener,
        tls,
        addr,
    })
}

/// Serves the API on the bound listener until `shutdown` fires.
pub async fn serve(
    state: Arc<ServerState>,
    store: Arc<TokenStore>,
    bound: Bound,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let gate = Arc::new(tokens::Gate::new(store.clone(), state.metrics.clone()));
    let app = super::router(state)
        .layer(axum::Extension(store))
        .layer(axum::middleware::from_fn_with_state(
            gate,
            tokens::require_bearer,
        ))
        .into_make_service_with_connect_info::<TcpPeer>();
    let stop = shutdown.clone();
    let done = async move { stop.cancelled().await };
    match bound.tls {
        None => {
            axum::serve(bound.listener, app)
                .with_graceful_shutdown(done)
                .await
        }
        Some(acceptor) => {
            let listener = TlsListener::start(bound.listener, acceptor, bound.addr, shutdown);
            axum::serve(listener, app)
                .with_graceful_shutdown(done)
                .await
        }
    }
}

/// The remote address of a TCP listener connection (for the log of refused requests).
#[derive(Debug, Clone, Copy)]
pub struct TcpPeer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for TcpPeer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        TcpPeer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for TcpPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        TcpPeer(*stream.remote_addr())
    }
}

/// TCP connections after their TLS handshake. Handshakes run in their own tasks, so a slow
/// or silent client does not hold up the others; a failed one (plain HTTP) is dropped.
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    fn start(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> TlsListener {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (sock, peer) = tokio::select! {
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!("the TCP listener: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    () = shutdown.cancelled() => return,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { rx, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task ended (shutdown): wait for graceful shutdown to stop us.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
