//! `/v1/tokens`: create, list and revoke API tokens. Deployers only, and only on the Unix
//! socket: a token cannot mint or revoke tokens over the network.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::access::{Action, Role};
use super::api::{ApiError, Body400};
use super::state::{ActionError, Caller, ServerState, blocking};
use super::tokens::{TokenError, TokenInfo, TokenStore};

type Store = Extension<Arc<TokenStore>>;

impl From<TokenError> for ActionError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(m) => ActionError::Invalid(m),
            TokenError::Exists(m) => ActionError::Conflict(m),
            TokenError::NotFound(m) => ActionError::NotFound(m),
            other => ActionError::Failed(other.to_string()),
        }
    }
}

/// Allows token management to a deployer on the Unix socket.
async fn admin(s: &Arc<ServerState>, c: &Caller) -> Result<(), ApiError> {
    if c.who.token_role().is_some() {
        return Err(ActionError::Forbidden(format!(
            "{} may not manage API tokens: use `opsdeck token` on the server's machine",
            c.who.user
        ))
        .into());
    }
    Ok(s.authorize(c, Action::Tokens, None).await?)
}

#[derive(Deserialize)]
pub(super) struct CreateBody {
    name: String,
    role: String,
}

/// `POST /v1/tokens {"name","role"}`: 201 with the token, the one time it is shown.
pub(super) async fn create(
    State(s): State<Arc<ServerState>>,
    Extension(store): Store,
    c: Caller,
    Body400(b): Body400<CreateBody>,
) -> Result<Response, ApiError> {
    let role: Role = b.role.parse().map_err(ActionError::Invalid)?;
    admin(&s, &c).await?;
    let by = c.who.user.clone();
    let (info, token) = blocking(move || Ok(store.create(&b.name, role, &by)?)).await?;
    tracing::info!(user = %c.who.user, name = %info.name, role = %info.role, "API token created");
    let mut body = serde_json::to_value(&info).unwrap_or_default();
    body["token"] = json!(token.expose_secret());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/tokens`: names, roles, dates; never a token.
pub(super) async fn list(
    State(s): State<Arc<ServerState>>,
    Extension(store): Store,
    c: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    admin(&s, &c).await?;
    Ok(Json(blocking(move || Ok(store.list()?)).await?))
}

/// `POST /v1/tokens/{name}/revoke`: the token stops working at once.
pub(super) async fn revoke(
    State(s): State<Arc<ServerState>>,
    Extension(store): Store,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin(&s, &c).await?;
    let n = name.clone();
    blocking(move || Ok(store.revoke(&n)?)).await?;
    tracing::info!(user = %c.who.user, %name, "API token revoked");
    Ok(Json(json!({"revoked": name})))
}
