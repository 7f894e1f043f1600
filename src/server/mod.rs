//! `opsdeck run` as the server: the one process on a manager that owns the ledger, the run
//! history, the scheduler, the Docker connection and the TestOps token, and decides who may do
//! what from the kernel-verified identity of each caller. The dashboard and the CLI are its
//! clients over a Unix socket (HTTP/1.1, JSON; streams are newline-delimited JSON).

pub mod access;
mod api;
pub mod hub;
pub mod identity;
mod logs;
mod metrics;
mod notify_api;
pub mod relay;
pub mod socket;
mod state;
pub mod tcp;
mod token_api;
pub mod token_table;
pub mod tokens;
mod verify;

pub use api::router;
pub use notify_api::log_json as notify_log_json;
pub use state::{Caller, ServerState};

use std::path::Path;
use std::sync::Arc;

use axum::extract::connect_info;
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

use identity::Identity;

/// The identity of a connection's peer, looked up once per connection.
#[derive(Debug, Clone)]
pub struct Peer(pub Option<Arc<Identity>>);

impl connect_info::Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        Peer(
            stream
                .io()
                .peer_cred()
                .ok()
                .map(|c| Arc::new(Identity::of(c.uid(), c.gid(), c.pid()))),
        )
    }
}

/// The parts of a server state, from running services.
pub fn state_parts(
    cfg: crate::config::Config,
    services: &crate::services::Services,
    data_dir: std::path::PathBuf,
    hub: Arc<hub::Hub>,
    metrics: Arc<metrics::Metrics>,
    notifier: Option<Arc<crate::notify::Notifier>>,
) -> state::Parts {
    state::Parts {
        cfg,
        runner: services.runner.clone(),
        scheduler: services.scheduler.clone(),
        store: services.store.clone(),
        history: services.history.clone(),
        data_dir,
        hub,
        metrics,
        notifier,
        leadership: None,
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    state: Arc<ServerState>,
    tokens: Arc<tokens::TokenStore>,
    listener: UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone())
        .merge(verify::router(state))
        .layer(axum::Extension(tokens));
    axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Whether a server answers `/v1/health` on `socket`.
pub async fn answers(socket: &Path) -> bool {
    crate::client::http::UnixHttp::new(socket.to_path_buf())
        .get_json::<serde_json::Value>("/v1/health")
        .await
        .is_ok()
}
