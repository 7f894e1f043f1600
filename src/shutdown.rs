//! The signals that end a front end cleanly: SIGTERM, SIGHUP (the SSH link dropped), SIGINT.

/// Resolves on SIGTERM, SIGINT or SIGHUP (the SSH link dropped).
pub fn signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered now, not when first polled: a signal that arrives while the caller is still
    // starting up must not get the default action (death without cleanup).
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    async fn wait(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    async move {
        tokio::select! {
            () = wait(&mut term) => tracing::info!("SIGTERM received"),
            () = wait(&mut hup) => tracing::info!("SIGHUP received"),
            () = wait(&mut int) => tracing::info!("SIGINT received"),
        }
    }
}
