//! HTTP/1.1 over the daemon's unix socket: one connection per request, JSON bodies,
//! error statuses turned into `ErrorReply` messages, and a deadline on every call.
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use super::error::CliError;
use crate::api::types::{ErrorReply, API_PREFIX};

/// How long one request may take, connecting included, before the CLI gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the daemon's API.
#[derive(Clone, Debug)]
pub struct Client {
    /// The daemon's unix socket.
    socket: PathBuf,
    /// Deadline of each request.
    timeout: Duration,
}

impl Client {
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// The same client with another request deadline.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// `GET path`, decoding the JSON reply.
    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, CliError> {
        decode(&self.call(Method::GET, path, None).await?)
    }

    /// `POST path` with a JSON body, decoding the JSON reply.
    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, CliError> {
        decode(&self.call(Method::POST, path, Some(encode(body)?)).await?)
    }

    /// `POST path` without a body, decoding the JSON reply.
    pub async fn post_empty<R: DeserializeOwned>(&self, path: &str) -> Result<R, CliError> {
        decode(&self.call(Method::POST, path, None).await?)
    }

    /// `POST path` with a JSON body, ignoring whatever a successful reply holds.
    pub async fn post_discard<B: Serialize>(&self, path: &str, body: &B) -> Result<(), CliError> {
        self.call(Method::POST, path, Some(encode(body)?)).await?;
        Ok(())
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), CliError> {
        self.call(Method::DELETE, path, None).await?;
        Ok(())
    }

    /// Sends one request and returns the body of a 2xx reply; any other status becomes
    /// [`CliError::Daemon`] with the reply's message.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, CliError> {
        let (status, reply) = tokio::time::timeout(self.timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| {
                CliError::Transport(format!(
                    "the netd daemon at {} did not answer within {} s",
                    self.socket.display(),
                    self.timeout.as_secs()
                ))
            })??;
        if status.is_success() {
            Ok(reply)
        } else {
            Err(CliError::Daemon {
                status: status.as_u16(),
                message: error_message(status, &reply),
            })
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), CliError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| CliError::unreachable(&self.socket, &e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CliError::transport("talking to the netd daemon", &e))?;
        // Drives the connection; it ends when `sender` is dropped or the daemon hangs up.
        let driver = tokio::spawn(connection);

        let body = body.unwrap_or_default();
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "netd")
            .header(CONTENT_LENGTH, body.len());
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CliError::Client(format!("cannot build a request for {path:?}: {e}")))?;

        let response = sender
            .send_request(request)
            .await
            .map_err(|e| CliError::transport("talking to the netd daemon", &e))?;
        let status = response.status();
        let reply = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::transport("reading the netd daemon's reply", &e))?
            .to_bytes();
        drop(sender);
        driver.abort();
        Ok((status, reply))
    }
}

fn encode<B: Serialize>(body: &B) -> Result<Vec<u8>, CliError> {
    serde_json::to_vec(body)
        .map_err(|e| CliError::Client(format!("cannot encode the request: {e}")))
}

fn decode<R: DeserializeOwned>(reply: &[u8]) -> Result<R, CliError> {
    serde_json::from_slice(reply)
        .map_err(|e| CliError::Client(format!("unexpected reply from the netd daemon: {e}")))
}

/// The one-line message of an error reply: its `ErrorReply` message, else the first
/// line of its body, else the status itself.
pub fn error_message(status: StatusCode, reply: &[u8]) -> String {
    if let Ok(ErrorReply { message }) = serde_json::from_slice::<ErrorReply>(reply) {
        return one_line(&message);
    }
    let text = String::from_utf8_lossy(reply);
    match text.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => line.to_owned(),
        None => status.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Percent-encodes a user-given name for use as one path segment.
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Routes of the API (CONTRACT.md).
pub mod route {
    use super::{segment, API_PREFIX};

    pub fn networks() -> String {
        format!("{API_PREFIX}/networks")
    }

    pub fn network(name: &str) -> String {
        format!("{API_PREFIX}/networks/{}", segment(name))
    }

    pub fn network_prune() -> String {
        format!("{API_PREFIX}/networks/prune")
    }

    pub fn network_connect(name: &str) -> String {
        format!("{}/connect", network(name))
    }

    pub fn network_disconnect(name: &str) -> String {
        format!("{}/disconnect", network(name))
    }

    pub fn network_gc(name: &str) -> String {
        format!("{}/gc", network(name))
    }

    pub fn network_check(name: &str) -> String {
        format!("{}/check", network(name))
    }

    pub fn sandboxes() -> String {
        format!("{API_PREFIX}/sandboxes")
    }

    pub fn sandbox(name: &str) -> String {
        format!("{API_PREFIX}/sandboxes/{}", segment(name))
    }

    pub fn stats() -> String {
        format!("{API_PREFIX}/stats")
    }

    pub fn ports(netns: Option<&str>) -> String {
        match netns {
            Some(netns) => format!("{API_PREFIX}/ports?netns={}", segment(netns)),
            None => format!("{API_PREFIX}/ports"),
        }
    }

    pub fn conntrack() -> String {
        format!("{API_PREFIX}/conntrack")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_one_segment() {
        assert_eq!(route::network("web-1_a.b"), "/v1/networks/web-1_a.b");
        assert_eq!(route::network("a/b c"), "/v1/networks/a%2Fb%20c");
        assert_eq!(route::network_connect("n"), "/v1/networks/n/connect");
        assert_eq!(route::sandbox("é"), "/v1/sandboxes/%C3%A9");
    }

    #[test]
    fn error_message_prefers_the_error_reply() {
        let status = StatusCode::CONFLICT;
        assert_eq!(
            error_message(status, br#"{"Message":"network web exists"}"#),
            "network web exists"
        );
        assert_eq!(
            error_message(status, b"\n plain text\nmore\n"),
            "plain text"
        );
        assert_eq!(error_message(StatusCode::NOT_FOUND, b""), "404 Not Found");
    }

    /// Serves one canned HTTP reply on a fresh socket and returns the request it read.
    async fn serve_once(
        reply: &'static str,
    ) -> (tempfile::TempDir, PathBuf, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("netd.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "client hung up early");
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(reply.as_bytes()).await.expect("write");
            String::from_utf8(request).expect("utf-8")
        });
        (dir, socket, server)
    }

    #[tokio::test]
    async fn success_replies_are_decoded() {
        let (_dir, socket, server) = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n[\"a\",\"b\"]",
        )
        .await;
        let got: Vec<String> = Client::new(socket)
            .get(&route::network("web"))
            .await
            .expect("ok");
        assert_eq!(got, ["a", "b"]);
        let request = server.await.expect("server");
        assert!(
            request.starts_with("GET /v1/networks/web HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn error_replies_become_daemon_errors() {
        let (_dir, socket, _server) = serve_once(
            "HTTP/1.1 409 Conflict\r\nContent-Length: 32\r\n\r\n{\"Message\":\"network web exists\"}",
        )
        .await;
        let err = Client::new(socket)
            .delete(&route::network("web"))
            .await
            .expect_err("conflict");
        assert!(!err.is_fatal());
        assert_eq!(
            err.to_string(),
            "Error response from daemon: network web exists"
        );
    }

    #[tokio::test]
    async fn a_silent_daemon_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("netd.sock");
        // Accepts connections (the kernel backlog does) but never answers.
        let _listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let err = Client::new(socket)
            .with_timeout(Duration::from_millis(200))
            .get::<Vec<String>>(&route::stats())
            .await
            .expect_err("timeout");
        assert!(err.is_fatal());
        assert!(err.to_string().contains("did not answer within"), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_is_reported_as_daemon_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("absent.sock");
        let err = Client::new(socket.clone())
            .get::<Vec<String>>(&route::networks())
            .await
            .expect_err("no daemon listens");
        assert!(err.is_fatal());
        let line = err.to_string();
        assert!(
            line.starts_with(&format!(
                "Error: cannot connect to the netd daemon at {}: ",
                socket.display()
            )),
            "{line}"
        );
        assert!(line.ends_with(". Is the daemon running?"), "{line}");
    }
}
