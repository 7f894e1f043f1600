//! The API routes. Every handler takes the caller's identity from the connection (kernel
//! peer credentials on the Unix socket, a bearer token on the TCP listener), asks `Access`
//! first, and answers JSON; errors are `{"error": "...", "code": "..."}` with 400, 401, 403,
//! 404, 409 or 503.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::Peer;
use super::access::Action;
use super::hub::{SessionInfo, WireBody};
use super::state::{ActionError, Caller, ServerState, blocking};
use crate::export::Trigger;
use crate::release::{NewRelease, Status};

type S = State<Arc<ServerState>>;

/// An API error: status, machine code and a sentence for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    error: String,
}

impl ApiError {
    fn bad(msg: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            error: msg.into(),
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        let (status, code) = match &e {
            ActionError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            ActionError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ActionError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ActionError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ActionError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ActionError::Failed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "failed"),
        };
        ApiError {
            status,
            code,
            error: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.error, "code": self.code})),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

impl FromRequestParts<Arc<ServerState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        // The TCP listener: the token its middleware verified (there are no peer credentials).
        if let Some(super::tokens::Bearer(who)) = parts.extensions.get() {
            return Ok(Caller {
                who: who.clone(),
                ssh_unverified: None,
            });
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .and_then(|c| c.0.0.clone())
            .ok_or(ApiError {
                status: StatusCode::FORBIDDEN,
                code: "forbidden",
                error: "the server cannot tell who is calling (no peer credentials)".into(),
            })?;
        let ssh = parts
            .headers
            .get("x-opsdeck-ssh")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(100).collect());
        Ok(Caller {
            who: peer,
            ssh_unverified: ssh,
        })
    }
}

/// A JSON body whose parse errors are 400s in our error shape.
pub struct Body400<T>(pub T);

impl<T: serde::de::DeserializeOwned, St: Send + Sync> axum::extract::FromRequest<St>
    for Body400<T>
{
    type Rejection = ApiError;

    async fn from_request(
        req: axum::extract::Request,
        state: &St,
    ) -> Result<Self, Self::Rejection> {
        // Any content type: CI steps post with plain `curl -d`.
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad(format!("bad request body: {}", e.body_text())))?;
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(body)
            .map(Body400)
            .map_err(|e| ApiError::bad(format!("bad request body: {e}")))
    }
}

/// The routes of `/v1` and `/metrics`.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/whoami", get(whoami))
        .route("/v1/sessions", get(sessions))
        .route("/v1/releases", get(list_releases).post(create_release))
        .route("/v1/releases/{id}", get(show_release))
        .route("/v1/releases/{id}/status", post(ci_status))
        .route("/v1/releases/{id}/approve", post(approve))
        .route("/v1/releases/{id}/reject", post(reject))
        .route("/v1/releases/{id}/rollback", post(rollback))
        .route("/v1/releases/{id}/deploy", post(deploy))
        .route("/v1/releases/{id}/cancel", post(cancel))
        .route("/v1/releases/{id}/targets", get(targets))
        .route("/v1/services", get(services))
        .route("/v1/exports", get(exports).post(export_now))
        .route("/v1/schedules", get(schedules))
        .route("/v1/schedules/{job}", axum::routing::put(set_cron))
        .route("/v1/schedules/{job}/{verb}", post(schedule_action))
        .route("/v1/events", get(events))
        .route("/v1/logs", get(log_names))
        .route("/v1/logs/{source}", get(logs))
        .route("/metrics", get(metrics))
        .route(
            "/v1/tokens",
            get(super::token_api::list).post(super::token_api::create),
        )
        .route("/v1/tokens/{name}/revoke", post(super::token_api::revoke))
        .merge(super::notify_api::routes())
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                error: "no such endpoint; see docs: GET /v1/health, /v1/releases, /v1/events ..."
                    .into(),
            }
        })
        .with_state(state)
}

async fn health(State(s): S) -> Json<serde_json::Value> {
    let (leader, holder) = s.leader_status();
    Json(json!({
        "status": "ok",
        // Only the leader runs the scheduler, retention and reconciliation (on PostgreSQL:
        // whoever holds the election lock); `leader_holder` names it.
        "leader": leader,
        "leader_holder": holder,
        "storage": if s.leadership.is_some() { "postgres" } else { "sqlite" },
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_seconds": s.started.elapsed().as_secs(),
        "started_at": s.started_at,
        "scheduler": *s.leader.lock().unwrap_or_else(|p| p.into_inner()),
        "sessions": s.hub.sessions().len(),
        "access": if s.access.is_open() { "open: no [access] table, every local user has every role" } else { "configured" },
    }))
}

async fn whoami(State(s): S, c: Caller) -> Json<serde_json::Value> {
    let roles = s.access.roles(&c.who);
    Json(json!({
        "uid": c.who.uid,
        "gid": c.who.gid,
        "user": c.who.user,
        "groups": c.who.groups,
        "roles": roles,
        // Each action this caller may not do, with the sentence a refusal would give.
        "refusals": s.access.refusals(&c.who),
        "ssh_unverified": c.ssh_unverified,
        "access_configured": !s.access.is_open(),
    }))
}

async fn sessions(State(s): S, c: Caller) -> ApiResult<Json<Vec<SessionInfo>>> {
    s.authorize(&c, Action::Read, None).await?;
    Ok(Json(s.hub.sessions()))
}

#[derive(Deserialize)]
struct ListQuery {
    service: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

async fn list_releases(
    State(s): S,
    c: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<crate::release::Release>>> {
    s.authorize(&c, Action::Read, None).await?;
    let status = match q.status.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => Some(v.parse::<Status>().map_err(ApiError::bad)?),
        None => None,
    };
    let me = s.clone();
    let mut list = blocking(move || me.read(|l| l.list(q.service.as_deref(), status))).await?;
    if let Some(n) = q.limit {
        list.truncate(n);
    }
    Ok(Json(list))
}

async fn show_release(
    State(s): S,
    c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    s.authorize(&c, Action::Read, None).await?;
    let me = s.clone();
    let (r, audit) = blocking(move || {
        me.read(|l| {
            let r = l.get(id)?;
            let a = l.audit(id)?;
            Ok((r, a))
        })
    })
    .await?;
    let r = r.ok_or_else(|| ActionError::NotFound(format!("no release with id {id}")))?;
    let log = s.deploy_log(&r, 200);
    Ok(Json(json!({"release": r, "audit": audit, "log": log})))
}

async fn create_release(
    State(s): S,
    c: Caller,
    Body400(new): Body400<NewRelease>,
) -> ApiResult<Response> {
    s.authorize(&c, Action::Create, None).await?;
    let mut desk = s.desk(&c, None)?;
    let r = blocking(move || Ok(desk.create(new)?)).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
    note: Option<String>,
}

async fn ci_status(
    State(s): S,
    c: Caller,
    Path(id): Path<i64>,
    Body400(b): Body400<StatusBody>,
) -> ApiResult<Json<crate::release::Release>> {
    let to: Status = b.status.parse().map_err(ApiError::bad)?;
    s.authorize(&c, Action::CiStatus, Some(id)).await?;
    let mut desk = s.desk(&c, Some(id))?;
    let r = blocking(move || Ok(desk.ci_status(id, to, b.note.as_deref())?)).await?;
    Ok(Json(r))
}

#[derive(Deserialize, Default)]
struct WaitQuery {
    #[serde(default)]
    wait: Option<String>,
}

impl WaitQuery {
    fn wait(&self) -> bool {
        matches!(self.wait.as_deref(), Some("1" | "true" | "yes"))
    }
}

async fn approve(
    State(s): S,
    c: Caller,
    Path(id): Path<i64>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    s.authorize(&c, Action::Approve, Some(id)).await?;
    s.check_self_approval(&c, id, "approve").await?;
    let mut desk = s.desk(&c, Some(id))?;
    let (desk, r) = blocking(move || {
        let r = desk.approve_verdict(id)?;
        Ok((desk, r))
    })
    .await?;
    let done = s.spawn_work(desk, r.clone(), false);
    Ok(work_response(&s, r, done, q.wait()))
}

#[derive(Deserialize)]
struct RejectBody {
    reason: String,
}

async fn reject(
    State(s): S,
    c: Caller,
    Path(id): Path<i64>,
    Body400(b): Body400<RejectBody>,
) -> ApiResult<Json<crate::release::Release>> {
    if b.reason.trim().is_empty() {
        return Err(ApiError::bad("a rejection needs a reason"));
    }
    s.authorize(&c, Action::Reject, Some(id)).await?;
    let mut desk = s.desk(&c, Some(id))?;
    let r = blocking(move || Ok(desk.reject(id, &b.reason)?)).await?;
    Ok(Json(r))
}

#[derive(Deserialize, Default)]
struct RollbackBody {
    to: Option<String>,
    #[serde(default)]
    force: bool,
}

async fn rollback(
    State(s): S,
    c: Caller,
    Path(id): Path<i64>,
    Query(q): Query<WaitQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let RollbackBody { to, force } = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackBody::default()
    } else {
        serde_json::from_slice::<RollbackBody>(&body)
            .map_err(|e| ApiError::bad(format!("bad request body: {e}")))?
    };
    if let Some(t) = &to
        && !crate::release::valid_tag(t)
    {
        return Err(ApiError::bad(format!("`{t}` is not a valid tag")));
    }
    s.authorize(&c, Action::Rollback, Some(id)).await?;
    if s.work
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&id)
    {
        return Err(ActionError::Conflict(format!("release {id} is being worked on now")).into());
    }
    let mut desk = s.desk(&c, Some(id))?;
    let engine = if to.is_some() && !force {
        let me = s.clone();
        match blocking(move || me.read(|l| l.get(id))).await? {
            Some(r) => crate::release::targets::engine_tags(&s.cfg.releases, &r).await,
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let (desk, r) = blocking(move || {
        let r = desk.begin_rollback(id, to.as_deref(), force, &engine)?;
        Ok((desk, r))
    })
    .await?;
    let done = s.spawn_work(desk, r.clone(), true);
    Ok(work_response(&s, r, done, q.wait()))
}

async fn deploy(
    State(s): S,
    c: Caller,
    Path(id): Path<i64>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    s.authorize(&c, Action::Deploy, Some(id)).await?;
    let me = s.clone();
    let r = blocking(move || me.read(|l| l.get(id)))
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("no release with id {id}")))?;
    ServerState::expect(&r, &[Status::ManualTestPassed], "deploy")?;
    if s.work
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&id)
    {
        return Err(
            ActionError::Conflict(format!("release {id} is already queued or deploying")).into(),
        );
    }
    let desk = s.desk(&c, Some(id))?;
    let done = s.spawn_work(desk, r.clone(), false);
    Ok(work_response(&s, r, done, q.wait()))
}

async fn cancel(State(s): S, c: Caller, Path(id): Path<i64>) -> ApiResult<Json<serde_json::Value>> {
    s.authorize(&c, Action::Cancel, Some(id)).await?;
    let work = s
        .work
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .cloned();
    match work {
        Some(w) if w.queued => {
            w.cancel.cancel();
            s.hub.publish(
                Some(c.who.user.clone()),
                WireBody::DeployProgress {
                    id,
                    line: format!("release {id}: queued deploy cancelled by {}", c.who.user),
                },
            );
            Ok(Json(json!({"cancelled": id})))
        }
        Some(w) => {
            // A running deploy stops and the service goes back to what ran before.
            w.cancel.cancel();
            s.hub.publish(
                Some(c.who.user.clone()),
                WireBody::DeployProgress {
                    id,
                    line: format!(
                        "release {id}: deploy cancelled by {}; rolling the service back",
                        c.who.user
                    ),
                },
            );
            Ok(Json(json!({"cancelled": id, "rolling_back": true})))
        }
        None => Err(ActionError::Conflict(format!("release {id} has no queued deploy")).into()),
    }
}

async fn targets(
    State(s): S,
    c: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<crate::release::targets::RollbackTarget>>> {
    s.authorize(&c, Action::Read, None).await?;
    let me = s.clone();
    let r = blocking(move || me.read(|l| l.get(id)))
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("no release with id {id}")))?;
    let engine = crate::release::targets::engine_tags(&s.cfg.releases, &r).await;
    let me = s.clone();
    let tags =
        blocking(move || me.read(|l| crate::release::targets::rollback_targets(l, &r, &engine)))
            .await?;
    Ok(Json(tags))
}

/// Answers at once with the release (202), or with `?wait=1` streams the deploy's progress
/// lines and ends with the release or the error: `{"progress": ...}`, then `{"release": ...}`
/// or `{"error": ..., "code": ...}`. The work goes on in the server if the client leaves.
fn work_response(
    s: &Arc<ServerState>,
    r: crate::release::Release,
    done: tokio::sync::oneshot::Receiver<Result<crate::release::Release, ActionError>>,
    wait: bool,
) -> Response {
    if !wait {
        return (StatusCode::ACCEPTED, Json(r)).into_response();
    }
    let id = r.id;
    let mut events = s.hub.subscribe();
    let stream = async_stream_lines(move |tx| async move {
        let first = json!({"release": r, "progress": format!("release {id}: {}", r.status)});
        if tx.send(first.to_string()).await.is_err() {
            return;
        }
        let mut done = done;
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if let WireBody::DeployProgress { id: eid, line } = &ev.body
                            && *eid == id
                            && tx.send(json!({"progress": line}).to_string()).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => {}
                },
                end = &mut done => {
                    let line = match end {
                        Ok(Ok(r)) => json!({"release": r, "done": true}),
                        Ok(Err(e)) => {
                            let ApiError { code, error, .. } = ApiError::from(e);
                            json!({"error": error, "code": code, "done": true})
                        }
                        Err(_) => json!({"error": "the server stopped", "code": "failed", "done": true}),
                    };
                    let _ = tx.send(line.to_string()).await;
                    return;
                }
            }
        }
    });
    ndjson(stream)
}

/// A stream of lines produced by a task writing into a channel.
fn async_stream_lines<F, Fut>(f: F) -> impl futures_util::Stream<Item = String> + Send + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<String>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<String>,
) -> impl futures_util::Stream<Item = String> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn ndjson(lines: impl futures_util::Stream<Item = String> + Send + 'static) -> Response {
    let body = Body::from_stream(lines.map(|mut l| {
        l.push('\n');
        Ok::<_, std::convert::Infallible>(l)
    }));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn services(State(s): S, c: Caller) -> ApiResult<Json<serde_json::Value>> {
    s.authorize(&c, Action::Read, None).await?;
    let cfg = &s.cfg.releases;
    if cfg.deployer != crate::config::DeployerKind::Swarm {
        return Ok(Json(json!({"deployer": "command", "services": []})));
    }
    let mut now = s.services.get().map(|w| w.current()).unwrap_or_default();
    if now.len() != cfg.services.len() {
        // Asked before the watch read the engine once: read it now.
        let me = s.clone();
        let open: crate::release::engine::watch::OpenLedger = Arc::new(move || me.ledger().ok());
        now = Arc::new(crate::release::engine::watch::read_once(cfg, &open).await);
    }
    Ok(Json(json!({"deployer": "swarm", "services": now.as_ref()})))
}

async fn exports(State(s): S, c: Caller) -> ApiResult<Json<serde_json::Value>> {
    s.authorize(&c, Action::Read, None).await?;
    let me = s.clone();
    let (listing, history) = blocking(move || {
        let listing = crate::export::DirListing::read(&me.store)
            .map_err(|e| ActionError::Failed(format!("cannot list the export dir: {e}")))?;
        let jobs: Vec<String> = crate::services::jobs(&me.cfg)
            .into_iter()
            .map(|j| j.name)
            .collect();
        let history = me
            .history
            .snapshot(&jobs, 10)
            .map_err(|e| ActionError::Failed(format!("the run history: {e}")))?;
        Ok((listing, history))
    })
    .await?;
    Ok(Json(
        json!({"dir": s.cfg.export.dir, "listing": listing, "history": history}),
    ))
}

#[derive(Deserialize, Default)]
struct ExportBody {
    #[serde(default)]
    groups: Vec<String>,
}

async fn export_now(
    State(s): S,
    c: Caller,
    Query(q): Query<WaitQuery>,
    Body400(b): Body400<ExportBody>,
) -> ApiResult<Response> {
    let groups = s.cfg.select_groups(&b.groups).map_err(ApiError::bad)?;
    if groups.is_empty() {
        return Err(ApiError::bad(
            "no groups configured: add [[testops.groups]] entries (name, id) to the server's config",
        ));
    }
    s.authorize(&c, Action::Export, None).await?;
    tracing::info!(user = %c.who.user, groups = ?b.groups, "export requested");
    if q.wait() {
        let outcome = s.runner.export(groups, Trigger::Manual).await;
        return Ok(Json(outcome).into_response());
    }
    if !s.runner.start(groups, Trigger::Manual) {
        return Err(ActionError::Unavailable("the export runner is busy; try again".into()).into());
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"started": true}))).into_response())
}

async fn schedules(State(s): S, c: Caller) -> ApiResult<Json<serde_json::Value>> {
    s.authorize(&c, Action::Read, None).await?;
    let now = chrono::Utc::now();
    let paused = s.paused.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let jobs: Vec<_> = crate::services::jobs(&s.cfg)
        .into_iter()
        .map(|j| {
            json!({
                "name": j.name,
                "kind": j.kind,
                "cron": j.schedule.expr(),
                "describe": j.schedule.describe(),
                "next": j.schedule.upcoming(now, 5),
                "paused": paused.contains(&j.name),
            })
        })
        .collect();
    Ok(Json(json!({
        "jobs": jobs,
        "scheduler": *s.leader.lock().unwrap_or_else(|p| p.into_inner()),
    })))
}

fn known_job(s: &ServerState, job: &str) -> Result<(), ApiError> {
    let names: Vec<String> = crate::services::jobs(&s.cfg)
        .into_iter()
        .map(|j| j.name)
        .collect();
    if names.iter().any(|n| n == job) {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            error: format!("no job `{job}`; jobs: {}", names.join(", ")),
        })
    }
}

async fn schedule_action(
    State(s): S,
    c: Caller,
    Path((job, verb)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    known_job(&s, &job)?;
    if !matches!(verb.as_str(), "run" | "pause" | "resume") {
        return Err(ApiError::bad(format!(
            "`{verb}` is not run, pause or resume"
        )));
    }
    s.authorize(&c, Action::Schedule, None).await?;
    let actor = Some(c.who.user.clone());
    match verb.as_str() {
        "run" => {
            if job == "export" {
                let groups = s.cfg.testops.groups.clone();
                if !s.runner.start(groups, Trigger::Manual) {
                    return Err(ActionError::Unavailable("the export runner is busy".into()).into());
                }
            } else {
                tokio::spawn(crate::schedule::run_cleanup(
                    s.store.clone(),
                    s.history.clone(),
                    hub_events(&s),
                    s.cfg.export.retention_days,
                    job.clone(),
                    Trigger::Manual,
                ));
            }
            Ok(Json(json!({"started": job})))
        }
        v => {
            let paused = v == "pause";
            let dir = s.data_dir.clone();
            let j = job.clone();
            let set = blocking(move || {
                crate::schedule::set_paused(&dir, &j, paused)
                    .map_err(|e| ActionError::Failed(format!("cannot save the pause: {e}")))
            })
            .await?;
            *s.paused.lock().unwrap_or_else(|p| p.into_inner()) = set.clone();
            s.hub.publish(
                actor,
                WireBody::Paused {
                    jobs: set.iter().cloned().collect(),
                },
            );
            Ok(Json(json!({"paused": set})))
        }
    }
}

/// The cleanup job reports through an event channel; the server forwards it to the hub.
fn hub_events(s: &Arc<ServerState>) -> crate::events::EventTx {
    let (tx, mut rx) = crate::events::channel();
    let hub = s.hub.clone();
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if let Some(body) = WireBody::from_event(&e) {
                hub.publish(None, body);
            }
        }
    });
    tx
}

#[derive(Deserialize)]
struct CronBody {
    cron: String,
}

async fn set_cron(
    State(s): S,
    c: Caller,
    Path(job): Path<String>,
    Body400(b): Body400<CronBody>,
) -> ApiResult<Json<serde_json::Value>> {
    known_job(&s, &job)?;
    let tz = s.cfg.export.schedule.timezone();
    let schedule = crate::schedule::CronSchedule::parse(&b.cron, Some(tz))
        .map_err(|e| ApiError::bad(format!("`{}`: {e}", b.cron)))?;
    s.authorize(&c, Action::Schedule, None).await?;
    let Some(path) = s.cfg.path.clone() else {
        return Err(ActionError::Conflict(
            "the server has no config file to save to: start it with --config FILE".into(),
        )
        .into());
    };
    let key = if job == "export" {
        "schedule"
    } else {
        "cleanup_schedule"
    };
    let expr = b.cron.clone();
    blocking(move || {
        crate::config::edit::set_string(&path, "export", key, &expr).map_err(ActionError::Failed)
    })
    .await?;
    if let Some(tx) = &s.scheduler {
        let _ = tx
            .send(crate::schedule::SchedulerCommand::SetSchedule {
                job: job.clone(),
                schedule: schedule.clone(),
            })
            .await;
    }
    s.hub.publish(
        Some(c.who.user.clone()),
        WireBody::Cron {
            job: job.clone(),
            expr: b.cron.clone(),
        },
    );
    Ok(Json(
        json!({"job": job, "cron": b.cron, "describe": schedule.describe()}),
    ))
}

async fn events(State(s): S, c: Caller) -> ApiResult<Response> {
    s.authorize(&c, Action::Read, None).await?;
    let mut rx = s.hub.subscribe();
    let guard = s.hub.join(SessionInfo {
        id: 0,
        user: c.who.user.clone(),
        uid: c.who.uid,
        pid: c.who.pid,
        since: chrono::Utc::now(),
        ssh_unverified: c.ssh_unverified.clone(),
    });
    let hello = super::hub::WireEvent {
        seq: 0,
        at: chrono::Utc::now(),
        actor: None,
        body: WireBody::Hello {
            sessions: s.hub.sessions(),
        },
    };
    let stop = s.shutdown.clone();
    let sticky = s.hub.sticky();
    let stream = async_stream_lines(move |tx| async move {
        let _guard = guard;
        if let Ok(line) = serde_json::to_string(&hello)
            && tx.send(line).await.is_err()
        {
            return;
        }
        for ev in sticky {
            if let Ok(line) = serde_json::to_string(&*ev)
                && tx.send(line).await.is_err()
            {
                return;
            }
        }
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        let Ok(line) = serde_json::to_string(&*ev) else { continue };
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("an event stream lagged by {n} events");
                    }
                    Err(_) => return,
                },
                () = tx.closed() => return,
                () = stop.cancelled() => return,
            }
        }
    });
    Ok(ndjson(stream))
}

async fn log_names(State(s): S, c: Caller) -> ApiResult<Json<Vec<String>>> {
    s.authorize(&c, Action::Read, None).await?;
    Ok(Json(super::logs::names(&s)))
}

#[derive(Deserialize)]
struct LogsQuery {
    tail: Option<usize>,
    follow: Option<String>,
}

async fn logs(
    State(s): S,
    c: Caller,
    Path(source): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    s.authorize(&c, Action::Read, None).await?;
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    let tail = q.tail.unwrap_or(200).min(100_000);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    if super::logs::stream(&s, &source, tail, follow, tx).is_none() {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            error: format!(
                "no log source `{source}`; the server's sources: {}",
                super::logs::names(&s).join(", ")
            ),
        });
    }
    Ok(ndjson(tokio_stream_from(rx)))
}

async fn metrics(State(s): S) -> Response {
    let text = s
        .metrics
        .render(s.hub.sessions().len(), s.started.elapsed());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
