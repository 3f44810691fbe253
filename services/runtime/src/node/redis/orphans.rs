//! The watch for notebooks of vanished runtime nodes: a notebook whose owner's lease expired
//! while the sessions hash still names that owner is claimed for cleanup by exactly one live
//! node, which joins the document and marks the kernel dead.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use redis::AsyncCommands;
use tandem_client::{ConnectOptions, DocConnection};
use tandem_crdt::Notebook;
use tandem_protocol::redis_link as keys;

use super::Link;

/// How long marking a vanished node's notebook dead may take before it is retried.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(15);

impl Link {
    /// Finds notebooks whose owner's lease expired and marks their kernels dead.
    pub(super) async fn scan_orphans(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let sessions: HashMap<String, String> =
            conn.hgetall(keys::sessions_key(&self.prefix)).await?;
        for (notebook, owner) in sessions {
            // This node's own entries are orphans only once it let their lease go (a session
            // that lost its notebook, see `renew`).
            if owner == self.id && self.owned.lock().await.contains_key(&notebook) {
                continue;
            }
            let taken: i64 = redis::Script::new(keys::TAKE_ORPHAN)
                .key(keys::lease_key(&self.prefix, &notebook))
                .key(keys::sessions_key(&self.prefix))
                .arg(&notebook)
                .arg(&owner)
                .invoke_async(&mut conn)
                .await?;
            if taken == 1 {
                tracing::info!(
                    doc_id = %notebook,
                    runtime_node = %owner,
                    "runtime node vanished; marking its kernel dead"
                );
                let marked =
                    tokio::time::timeout(ORPHAN_TIMEOUT, self.mark_dead(&notebook, &owner)).await;
                let failed = match marked {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(format!("{err:#}")),
                    Err(_) => Some("timed out".to_owned()),
                };
                if let Some(error) = failed {
                    tracing::warn!(
                        %error,
                        doc_id = %notebook,
                        "cannot mark the kernel dead; retrying"
                    );
                    // Put it back for the next scan unless someone owns the notebook by now.
                    let _: redis::RedisResult<bool> = conn
                        .hset_nx(keys::sessions_key(&self.prefix), &notebook, &owner)
                        .await;
                }
            }
        }
        Ok(())
    }

    /// Joins the notebook and writes `state.kernel.status = "dead"` with the reason.
    async fn mark_dead(&self, notebook_id: &str, owner: &str) -> anyhow::Result<()> {
        let mut joined = Err(anyhow::anyhow!("no collab URL"));
        for base in &self.node.ws_bases {
            let options = ConnectOptions {
                token: Some(self.node.config.service_token.clone()),
                doc: None,
                ..ConnectOptions::default()
            };
            joined = async {
                let conn = DocConnection::connect_with(base, notebook_id, options).await?;
                conn.synced().await?;
                Ok::<_, tandem_client::ConnectionError>(conn)
            }
            .await
            .with_context(|| format!("joining the notebook through {base}"));
            if joined.is_ok() {
                break;
            }
        }
        let conn = joined?;
        let notebook = Notebook::from_doc(conn.doc().clone());
        let reason = keys::orphan_reason(owner);
        if crate::session::mark_orphaned(&notebook, &reason) {
            crate::metrics::orphan_marked();
        }
        conn.close().await;
        Ok(())
    }
}
