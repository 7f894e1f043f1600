//! `GET /v1/notify/log` (viewers) and `POST /v1/notify/test/{sink}` (deployers): the outbox's
//! deliveries and failures, and a test message through one sink.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::access::Action;
use super::api::ApiError;
use super::state::{ActionError, Caller, ServerState};

type S = State<Arc<ServerState>>;

/// The notification routes, merged into the API.
pub fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/v1/notify/log", get(log))
        .route("/v1/notify/test/{sink}", post(test))
}

fn notifier(s: &ServerState) -> Result<Arc<crate::notify::Notifier>, ActionError> {
    s.notifier.clone().ok_or_else(|| {
        ActionError::Unavailable(
            "the server's notification outbox could not be opened; see its log".into(),
        )
    })
}

#[derive(Deserialize)]
struct LogQuery {
    limit: Option<usize>,
}

/// `{"sinks": [{"name","kind"}], "failing": [...], "deliveries": [...]}`, newest first.
pub fn log_json(n: &crate::notify::Notifier, limit: usize) -> Result<serde_json::Value, String> {
    let deliveries = n.log(limit)?;
    Ok(json!({
        "sinks": n.sinks().iter().map(|s| json!({"name": s.name, "kind": s.target.kind()})).collect::<Vec<_>>(),
        "failing": n.failing(),
        "deliveries": deliveries,
    }))
}

async fn log(
    State(s): S,
    c: Caller,
    Query(q): Query<LogQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.authorize(&c, Action::Read, None).await?;
    let n = notifier(&s)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let v = tokio::task::spawn_blocking(move || log_json(&n, limit))
        .await
        .map_err(|e| ActionError::Failed(format!("internal error: {e}")))?
        .map_err(ActionError::Failed)?;
    Ok(Json(v))
}

async fn test(
    State(s): S,
    c: Caller,
    Path(sink): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.authorize(&c, Action::NotifyTest, None).await?;
    let n = notifier(&s)?;
    if !n.sinks().iter().any(|k| k.name == sink) {
        return Err(ActionError::NotFound(format!(
            "no sink `{}`; configured: {}",
            crate::sanitize::clean_max(&sink, 80),
            n.sinks()
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    match n.test(&sink, &c.who.user).await {
        Ok(id) => Ok(Json(json!({"sink": sink, "id": id, "state": "sent"}))),
        Err(e) => Err(ActionError::Unavailable(format!("sink {sink}: {e}")).into()),
    }
}
