//! The control WebSocket link: `GET /internal/runtime` on one collab service (the next
//! `--collab-url` after each drop), with commands in and replies out as JSON text frames,
//! and the other way the node's asks (running cells' secrets) out and their answers in.

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;

use tandem_protocol::runtime::{CONTROL_PATH, Command, Down, Reply, Up};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use super::{Node, ws_root};

impl Node {
    /// Connects to the control channel of collab URL number `which` (modulo their count) and
    /// serves it until it closes or `stop` fires.
    pub(super) async fn serve_once(
        self: &Arc<Self>,
        which: usize,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let urls = &self.config.collab_urls;
        let collab_url = &urls[which % urls.len()];
        let url = format!("{}{CONTROL_PATH}", ws_root(collab_url)?);
        let mut request = url.as_str().into_client_request()?;
        let bearer = format!("Bearer {}", self.config.service_token);
        request
            .headers_mut()
            .insert("authorization", bearer.parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        tracing::info!(%url, "runtime joined the collab service");
        self.config.ready.set(true);
        let (mut sink, mut stream) = socket.split();
        // Replies of queries (completions, inspection), answered in tasks of their own.
        let (replies, mut answered) = tokio::sync::mpsc::unbounded_channel::<Reply>();
        let mut asks = self.secrets.outbox().await;
        let served = loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                Some(reply) = answered.recv() => {
                    if let Err(err) = send(&mut sink, &Up::Reply(reply)).await {
                        break Err(err);
                    }
                    continue;
                }
                Some(ask) = asks.recv() => {
                    if let Err(err) = send(&mut sink, &Up::Ask(ask)).await {
                        break Err(err);
                    }
                    continue;
                }
                () = stop.cancelled() => break Ok(()),
            };
            match frame {
                Some(Ok(Ws::Text(text))) => {
                    let command: Command = match serde_json::from_str(&text) {
                        Ok(Down::Command(command)) => command,
                        Ok(Down::Answer(answer)) => {
                            self.secrets.answered(answer);
                            continue;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "malformed frame from the collab service");
                            continue;
                        }
                    };
                    if command.body.is_query() {
                        // A completion may wait seconds for a busy kernel: it must not hold
                        // up other notebooks' commands, which are handled in order.
                        let (node, replies) = (Arc::clone(self), replies.clone());
                        tokio::spawn(async move {
                            let _ = replies.send(node.handle(command).await);
                        });
                        continue;
                    }
                    let reply = self.handle(command).await;
                    if let Err(err) = send(&mut sink, &Up::Reply(reply)).await {
                        break Err(err);
                    }
                }
                Some(Ok(Ws::Close(_))) | None => break Ok(()),
                Some(Err(err)) => break Err(err.into()),
                Some(Ok(_)) => {}
            }
        };
        drop(asks);
        self.secrets.link_dropped();
        served
    }
}

/// Sends one frame up the link.
async fn send<S>(sink: &mut S, frame: &Up) -> anyhow::Result<()>
where
    S: futures_util::Sink<Ws, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    sink.send(Ws::Text(serde_json::to_string(frame)?.into()))
        .await?;
    Ok(())
}
