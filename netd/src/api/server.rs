//! Routes of the HTTP+JSON API: thin handlers that decode, call the service, encode.
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::types::*;
use crate::service::{Error, Service};

type Svc = State<Arc<Service>>;

/// An error reply: status plus a one-line `{"Message": ...}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorReply { message: self.1 })).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let status = match &err {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("request failed: {err}");
        }
        ApiError(status, err.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // Keep serde's explanation but on one line.
        let text = rejection.body_text().replace('\n', " ");
        // Docker answers every undecodable body with 400; keep 415 for a wrong content type.
        let status = match rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, format!("malformed request: {text}"))
    }
}

type Reply<T> = Result<T, ApiError>;

/// A state-changing operation, run to completion whatever the client does.
async fn run_to_completion<T: Send + 'static>(
    op: impl std::future::Future<Output = crate::service::Result<T>> + Send + 'static,
) -> Reply<T> {
    Ok(crate::service::to_completion(op).await?)
}

/// Decodes a JSON body, turning a bad one into a one-line 4xx instead of axum's text reply.
fn body<T>(json: Result<Json<T>, JsonRejection>) -> Reply<T> {
    Ok(json?.0)
}

pub fn router(service: Arc<Service>) -> Router {
    let api = Router::new()
        .route("/networks", get(list_networks).post(create_network))
        .route("/networks/prune", post(prune_networks))
        .route(
            "/networks/{name}",
            get(inspect_network).delete(remove_network),
        )
        .route("/networks/{name}/connect", post(connect))
        .route("/networks/{name}/disconnect", post(disconnect))
        .route("/networks/{name}/gc", post(gc))
        .route("/networks/{name}/check", post(check))
        .route("/sandboxes", get(list_sandboxes).post(create_sandbox))
        .route("/sandboxes/{name}", axum::routing::delete(remove_sandbox))
        .route("/stats", get(stats))
        .route("/ports", get(ports))
        .route("/conntrack", get(conntrack));
    Router::new()
        .nest(API_PREFIX, api)
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such API route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route".into(),
            )
        })
        .with_state(service)
}

async fn list_networks(State(svc): Svc) -> Json<Vec<NetworkInspect>> {
    Json(svc.list_networks().await)
}

async fn create_network(
    State(svc): Svc,
    req: Result<Json<NetworkCreate>, JsonRejection>,
) -> Reply<(StatusCode, Json<NetworkCreated>)> {
    let req = body(req)?;
    let network = run_to_completion(async move { svc.create_network(req).await }).await?;
    Ok((StatusCode::CREATED, Json(NetworkCreated { id: network.id })))
}

async fn inspect_network(State(svc): Svc, Path(name): Path<String>) -> Reply<Json<NetworkInspect>> {
    Ok(Json(svc.inspect_network(&name).await?))
}

async fn remove_network(State(svc): Svc, Path(name): Path<String>) -> Reply<StatusCode> {
    run_to_completion(async move { svc.remove_network(&name).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune_networks(State(svc): Svc) -> Reply<Json<PruneReport>> {
    Ok(Json(
        run_to_completion(async move { svc.prune_networks().await }).await?,
    ))
}

async fn connect(
    State(svc): Svc,
    Path(name): Path<String>,
    req: Result<Json<ConnectRequest>, JsonRejection>,
) -> Reply<Json<Connected>> {
    let req = body(req)?;
    Ok(Json(
        run_to_completion(async move { svc.connect(&name, req).await }).await?,
    ))
}

async fn disconnect(
    State(svc): Svc,
    Path(name): Path<String>,
    req: Result<Json<DisconnectRequest>, JsonRejection>,
) -> Reply<StatusCode> {
    let req = body(req)?;
    run_to_completion(async move { svc.disconnect(&name, req).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn gc(
    State(svc): Svc,
    Path(name): Path<String>,
    req: Result<Json<GcRequest>, JsonRejection>,
) -> Reply<Json<GcReport>> {
    let req = body(req)?;
    Ok(Json(
        run_to_completion(async move { svc.gc(&name, &req.valid_attachments).await }).await?,
    ))
}

async fn check(
    State(svc): Svc,
    Path(name): Path<String>,
    req: Result<Json<Attachment>, JsonRejection>,
) -> Reply<StatusCode> {
    let req = body(req)?;
    svc.check(&name, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_sandboxes(State(svc): Svc) -> Json<Vec<SandboxInfo>> {
    Json(svc.list_sandboxes().await)
}

async fn create_sandbox(
    State(svc): Svc,
    req: Result<Json<SandboxCreate>, JsonRejection>,
) -> Reply<(StatusCode, Json<SandboxInfo>)> {
    let req = body(req)?;
    let info =
        run_to_completion(
            async move { svc.create_sandbox(&req.name, req.network.as_deref()).await },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

async fn remove_sandbox(State(svc): Svc, Path(name): Path<String>) -> Reply<StatusCode> {
    run_to_completion(async move { svc.remove_sandbox(&name).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stats(State(svc): Svc) -> Reply<Json<Vec<StatEntry>>> {
    Ok(Json(svc.stats().await?))
}

async fn ports(
    State(svc): Svc,
    query: Result<Query<PortsQuery>, QueryRejection>,
) -> Reply<Json<Vec<PortInfo>>> {
    let query = query
        .map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("malformed request: {}", e.body_text().replace('\n', " ")),
            )
        })?
        .0;
    Ok(Json(svc.list_ports(query.netns.as_deref()).await?))
}

async fn conntrack(State(svc): Svc) -> Reply<Json<Vec<ConntrackEntry>>> {
    Ok(Json(svc.conntrack().await?))
}
