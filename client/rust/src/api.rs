//! The REST half of the client: a thin, typed wrapper over Tandem's JSON HTTP API.
//!
//! Every request carries `Authorization: Bearer <token>`. A non-2xx answer becomes
//! [`ApiError::Status`] with the HTTP status and the server's `{"error":{"code","message"}}` body,
//! so tests can assert on both.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tandem_protocol::{CreateNotebook, ErrorBody, Me, NotebookInfo};
use url::Url;

/// What can go wrong talking to the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The base URL (or a URL built from it) is not a valid absolute URL.
    #[error("invalid url: {0}")]
    Url(#[from] url::ParseError),
    /// The request never got an answer: connection refused, reset, or a body that is not the
    /// expected JSON.
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The server answered with a non-2xx status.
    #[error("http {status}: {code}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The error body's `code`, or `"unknown"` when the body was not the documented shape.
        code: String,
        /// The error body's `message`, or the raw body text when it was not the documented shape.
        message: String,
    },
}

impl ApiError {
    /// The HTTP status when the server answered with one, `None` when the request failed before.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error body's `code` when the server answered with an error status.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A signed-in client for one Tandem server's HTTP API.
///
/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Client {
    /// A client for the server at `base_url` (such as `http://127.0.0.1:8080`), authenticating
    /// every request with the personal access token `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Client, ApiError> {
        let mut base = Url::parse(base_url)?;
        // `Url::join` replaces the last path segment unless the path ends in a slash, which would
        // silently drop a prefix such as `/tandem` when the server sits behind a proxy.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Client {
            http: reqwest::Client::new(),
            base,
            token: token.to_owned(),
        })
    }

    /// The server's base URL, always ending in `/`.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The token this client sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The WebSocket base for [`DocConnection::connect`](crate::DocConnection::connect):
    /// `ws://host:port/ws` (or `wss://` for an `https` server).
    pub fn ws_base(&self) -> Result<String, ApiError> {
        let mut url = self.base.join("ws")?;
        let scheme = if self.base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        // Switching between the special schemes http(s) and ws(s) is always allowed.
        let _ = url.set_scheme(scheme);
        Ok(url.to_string())
    }

    /// `GET /healthz`: whether the server is up.
    pub async fn healthz(&self) -> Result<Value, ApiError> {
        self.send(Method::GET, "healthz", None).await
    }

    /// `GET /api/me`: the user the token belongs to.
    pub async fn me(&self) -> Result<Me, ApiError> {
        self.send(Method::GET, "api/me", None).await
    }

    /// `POST /api/notebooks`: a new notebook, empty or imported from an nbformat v4 document.
    pub async fn create_notebook(
        &self,
        title: &str,
        ipynb: Option<Value>,
    ) -> Result<NotebookInfo, ApiError> {
        let body = CreateNotebook {
            title: title.to_owned(),
            ipynb,
        };
        let body = serde_json::to_value(&body).unwrap_or(Value::Null);
        self.send(Method::POST, "api/notebooks", Some(body)).await
    }

    /// `GET /api/notebooks`: the notebooks the caller can see.
    pub async fn list_notebooks(&self) -> Result<Vec<NotebookInfo>, ApiError> {
        self.send(Method::GET, "api/notebooks", None).await
    }

    /// `GET /api/notebooks/{id}`: one notebook's description.
    pub async fn notebook(&self, id: &str) -> Result<NotebookInfo, ApiError> {
        self.send(Method::GET, &format!("api/notebooks/{id}"), None)
            .await
    }

    /// `GET /api/notebooks/{id}/ipynb`: the notebook exported as nbformat 4.5 JSON.
    pub async fn export_ipynb(&self, id: &str) -> Result<Value, ApiError> {
        self.send(Method::GET, &format!("api/notebooks/{id}/ipynb"), None)
            .await
    }

    /// `PATCH /api/notebooks/{id}`: renames a notebook (editors and the owner).
    pub async fn rename_notebook(&self, id: &str, title: &str) -> Result<NotebookInfo, ApiError> {
        let body = serde_json::json!({ "title": title });
        self.send(Method::PATCH, &format!("api/notebooks/{id}"), Some(body))
            .await
    }

    /// `POST /api/notebooks/{id}/copy`: a copy owned by the caller, cells and outputs
    /// included, titled "Copy of …" (anyone signed in who can open the notebook).
    pub async fn copy_notebook(&self, id: &str) -> Result<NotebookInfo, ApiError> {
        self.send(Method::POST, &format!("api/notebooks/{id}/copy"), None)
            .await
    }

    /// `DELETE /api/notebooks/{id}`.
    pub async fn delete_notebook(&self, id: &str) -> Result<(), ApiError> {
        self.send_raw(Method::DELETE, &format!("api/notebooks/{id}"), None)
            .await?;
        Ok(())
    }

    /// Any JSON request, for endpoints without a typed method (execute, sharing, ...).
    ///
    /// `path` is relative to the base URL, such as `api/notebooks/{id}/sharing`. An empty
    /// answer body (204) comes back as `Value::Null`.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        let bytes = self.send_raw(method, path, body).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Status {
            status: 200,
            code: "invalid_json".into(),
            message: format!("answer is not JSON: {e}"),
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ApiError> {
        let url = self.base.join(path.trim_start_matches('/'))?;
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(
                status,
                &response.bytes().await.unwrap_or_default(),
            ));
        }
        Ok(response.json().await?)
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<u8>, ApiError> {
        let url = self.base.join(path.trim_start_matches('/'))?;
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(status_error(status, &bytes));
        }
        Ok(bytes.to_vec())
    }
}

/// Turns an error answer into [`ApiError::Status`], keeping the raw body when it is not the
/// documented error shape so that a misbehaving server is still diagnosable.
fn status_error(status: StatusCode, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => ApiError::Status {
            status: status.as_u16(),
            code: parsed.error.code,
            message: parsed.error.message,
        },
        Err(_) => ApiError::Status {
            status: status.as_u16(),
            code: "unknown".into(),
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_base_follows_http_base() {
        let client = Client::new("http://127.0.0.1:8080", "t").unwrap();
        assert_eq!(client.ws_base().unwrap(), "ws://127.0.0.1:8080/ws");
        let client = Client::new("https://example.com/tandem", "t").unwrap();
        assert_eq!(client.ws_base().unwrap(), "wss://example.com/tandem/ws");
    }

    #[test]
    fn error_bodies_become_typed_errors() {
        let body = br#"{"error":{"code":"not_found","message":"no such notebook"}}"#;
        let err = status_error(StatusCode::NOT_FOUND, body);
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.code(), Some("not_found"));
        assert_eq!(err.to_string(), "http 404: not_found: no such notebook");

        let err = status_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(err.code(), Some("unknown"));
        assert!(err.to_string().contains("upstream down"));
    }

    fn http_answer(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// Reads one HTTP/1.1 request: the head, then as many body bytes as `content-length` says.
    async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = socket.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= head_end + 4 + length || n == 0 {
                    return text;
                }
            }
            if n == 0 {
                return text;
            }
        }
    }

    /// Drives the client against a one-shot HTTP server on `127.0.0.1:0`, to check the request
    /// it sends (path, bearer token, JSON body) and how it reads an error answer.
    #[tokio::test]
    async fn sends_bearer_token_and_reads_errors() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut requests = Vec::new();
            let answers = [
                http_answer("201 Created", r#"{"id":"abc","title":"hi","role":"owner"}"#),
                http_answer(
                    "403 Forbidden",
                    r#"{"error":{"code":"forbidden","message":"not yours"}}"#,
                ),
            ];
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                requests.push(read_request(&mut socket).await);
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
            requests
        });
        let client = Client::new(&format!("http://{addr}"), "secret-token").unwrap();
        let info = client.create_notebook("hi", None).await.unwrap();
        assert_eq!(info.id, "abc");
        let err = client.delete_notebook("abc").await.unwrap_err();
        assert_eq!(err.status(), Some(403));
        assert_eq!(err.code(), Some("forbidden"));

        let requests = server.await.unwrap();
        assert!(requests[0].starts_with("POST /api/notebooks HTTP/1.1"));
        assert!(
            requests[0]
                .to_lowercase()
                .contains("authorization: bearer secret-token")
        );
        assert!(requests[0].contains(r#"{"title":"hi"}"#));
        assert!(requests[1].starts_with("DELETE /api/notebooks/abc HTTP/1.1"));
    }
}
