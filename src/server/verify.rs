//! The ledger's tamper check on request (`GET /v1/ledger/verify`, role viewers), kept apart
//! from `api.rs`. The check at start and on every change is the ledger watcher's
//! (`release::watcher::spawn_verifier`), which tells every dashboard.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::access::Action;
use super::api::ApiError;
use super::state::{ActionError, Caller, ServerState, blocking};
use crate::release::{Ledger, VerifyError};

/// The verify route, merged into the API router.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/ledger/verify", get(verify))
        .with_state(state)
}

async fn verify(
    State(s): State<Arc<ServerState>>,
    c: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.authorize(&c, Action::Read, None).await?;
    let at = s.ledger_at.clone();
    let res = blocking(move || {
        let ledger = Ledger::open_at(&at).map_err(|e| ActionError::Failed(e.to_string()))?;
        Ok(ledger.verify())
    })
    .await?;
    Ok(Json(match res {
        Ok(v) => json!({"ok": true, "message": v.to_string()}),
        Err(VerifyError::Tampered(t)) => {
            json!({"ok": false, "row": t.row.to_string(), "message": t.to_string()})
        }
        Err(e) => return Err(ActionError::Failed(e.to_string()).into()),
    }))
}
