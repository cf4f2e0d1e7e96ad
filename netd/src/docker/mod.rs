//! Docker's plugin protocol (HTTP POST + JSON on a unix socket): netd as Docker's remote
//! network driver and IPAM driver, over the same service as the API. Docker finds the
//! plugin by the socket's name under /run/docker/plugins: `netd.sock` is driver `netd`.
mod ipam_driver;
mod names;
mod network_driver;
mod protocol;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::service::{Error, Service};

/// What every handler needs.
#[derive(Clone)]
pub struct Plugin {
    service: Arc<Service>,
    /// Docker's API socket, asked for the names of the networks Docker creates.
    docker_socket: PathBuf,
}

/// Which API a call belongs to: each names its error field differently.
#[derive(Clone, Copy, Debug)]
enum Api {
    NetworkDriver,
    Ipam,
}

/// A failed call: the protocol's error object, with 400 for a body that cannot be decoded
/// and 404 for an unknown method (Docker then treats it as not implemented); a request
/// that was understood but failed is answered 200 with the error, as the protocol says.
struct PluginError {
    api: Api,
    status: StatusCode,
    message: String,
}

impl IntoResponse for PluginError {
    fn into_response(self) -> Response {
        let field = match self.api {
            Api::NetworkDriver => "Err",
            Api::Ipam => "Error",
        };
        (self.status, Json(json!({ field: self.message }))).into_response()
    }
}

type Reply = Result<Json<Value>, PluginError>;

impl Api {
    fn failed(self, err: Error) -> PluginError {
        if let Error::Internal(_) = err {
            tracing::error!(api = ?self, "plugin call failed: {err}");
        }
        PluginError {
            api: self,
            status: StatusCode::OK,
            message: err.to_string(),
        }
    }

    fn invalid(self, message: impl Into<String>) -> PluginError {
        self.failed(Error::Invalid(message.into()))
    }

    /// An IPv4 address as Docker writes it: `10.1.0.1/24`, or bare.
    fn address(self, text: &str, what: &str) -> Result<std::net::Ipv4Addr, PluginError> {
        let bare = text.split_once('/').map_or(text, |(ip, _)| ip);
        bare.parse()
            .map_err(|_| self.invalid(format!("invalid {what} {text:?}: expected an IPv4 address")))
    }

    /// Decodes a request body; Docker sends `application/vnd.docker.plugins.v1.x+json`,
    /// so the content type is not checked.
    fn decode<T: DeserializeOwned>(self, body: &Bytes) -> Result<T, PluginError> {
        serde_json::from_slice(body).map_err(|e| PluginError {
            api: self,
            status: StatusCode::BAD_REQUEST,
            message: format!("malformed request: {e}"),
        })
    }

    /// A state-changing operation, run to completion whatever the caller does.
    async fn complete<T: Send + 'static>(
        self,
        op: impl Future<Output = crate::service::Result<T>> + Send + 'static,
    ) -> Result<T, PluginError> {
        crate::service::to_completion(op)
            .await
            .map_err(|e| self.failed(e))
    }
}

fn ok(value: impl serde::Serialize) -> Reply {
    Ok(Json(
        serde_json::to_value(value).expect("replies serialize"),
    ))
}

fn empty() -> Reply {
    Ok(Json(json!({})))
}

pub use names::adopt_missing_names;

pub fn router(service: Arc<Service>, docker_socket: PathBuf) -> Router {
    let plugin = Plugin {
        service,
        docker_socket,
    };
    Router::new()
        .route(
            "/Plugin.Activate",
            post(|| async {
                ok(protocol::Manifest {
                    implements: vec!["NetworkDriver", "IpamDriver"],
                })
            }),
        )
        .merge(network_driver::routes())
        .merge(ipam_driver::routes())
        .fallback(|uri: axum::http::Uri| async move {
            let api = match uri.path().starts_with("/IpamDriver.") {
                true => Api::Ipam,
                false => Api::NetworkDriver,
            };
            PluginError {
                api,
                status: StatusCode::NOT_FOUND,
                message: format!("no such plugin method {}", uri.path()),
            }
        })
        .with_state(plugin)
}
