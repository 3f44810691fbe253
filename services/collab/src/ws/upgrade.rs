//! The WebSocket handshake (RFC 6455, 4.2), done here rather than by axum's
//! `WebSocketUpgrade` so the connection's raw stream is ours: the framing is
//! [`super::socket`]'s, and when a client sends a
//! message over `--max-message-bytes`, the socket stops reading in the middle of it, and
//! closing the socket then, with the rest of the message unread, makes the kernel answer
//! with a TCP reset that destroys our close frame before the client reads it (it would see
//! 1006 instead of 1009). [`drain`] reads and drops what the client still sends, so the
//! close frame arrives.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::error::ApiError;

/// The connection under a WebSocket.
pub type Io = TokioIo<hyper::upgrade::Upgraded>;

/// A WebSocket on an upgraded HTTP connection.
pub type Socket = super::socket::Socket<Io>;

/// A request to switch to the WebSocket protocol, checked.
pub struct Upgrade {
    on_upgrade: OnUpgrade,
    accept: HeaderValue,
    client: std::net::IpAddr,
}

impl FromRequestParts<crate::App> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::App,
    ) -> Result<Self, Self::Rejection> {
        let not_websocket =
            || ApiError::bad_request("not_websocket", "this route speaks WebSocket only");
        if parts.method != Method::GET
            || !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(not_websocket());
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13"))
        {
            return Err(ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                "websocket_version",
                "only WebSocket version 13 is spoken",
            ));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or_else(not_websocket)?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| not_websocket())?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(not_websocket)?;
        Ok(Self {
            on_upgrade,
            accept,
            // Behind trusted proxies, the address they forwarded (issue 13, point 6).
            client: state.limits.client(parts),
        })
    }
}

impl Upgrade {
    /// The client's address, as the rate limits see it.
    pub fn client(&self) -> std::net::IpAddr {
        self.client
    }

    /// Answers 101 and, once the client switched, runs `serve` on the WebSocket, tracked by
    /// `tracker` (shutdown waits for it). Messages and frames over `max_message` bytes end
    /// the stream with a capacity error.
    pub fn on_upgrade<F, Fut>(
        self,
        tracker: &tokio_util::task::TaskTracker,
        max_message: usize,
        serve: F,
    ) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        let connections = tracker.clone();
        tracker.spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket = Socket::new(TokioIo::new(upgraded), max_message);
                    // A task of its own, so an open connection holds only its own state, not
                    // this handshake's too (issue 14: memory per idle connection).
                    connections.spawn(serve(socket));
                }
                Err(err) => tracing::debug!(error = %err, "the client did not switch protocols"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, self.accept),
            ],
        )
            .into_response()
    }
}

/// Whether a comma-separated header holds `token` (case-insensitively).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

/// Reads and drops what the client still sends, until it stops for `quiet`, closes, or
/// `grace` has passed, so the close frame already sent reaches it before the socket closes.
pub async fn drain(io: &mut Io, quiet: Duration, grace: Duration) {
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let read = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + quiet),
            io.read(&mut buffer),
        );
        match read.await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens_are_read_from_lists() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(has_token(&headers, header::CONNECTION, "upgrade"));
        assert!(!has_token(&headers, header::CONNECTION, "close"));
    }
}
