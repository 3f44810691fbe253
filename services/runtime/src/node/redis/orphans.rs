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

/// Takes the cleanup of a notebook whose owner's lease expired; 1 for exactly one caller.
/// KEYS: lease, sessions hash; ARGV: notebook, the owner the caller saw.
const ORPHAN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
";

impl Link {
    /// Finds notebooks whose owner's lease expired and marks their kernels dead.
    pub(super) async fn scan_orphans(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let sessions: HashMap<String, String> =
            conn.hgetall(keys::sessions_key(&self.prefix)).await?;
        for (notebook, owner) in sessions {
            if owner == self.id {
                continue;
            }
            let taken: i64 = redis::Script::new(ORPHAN)
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
        let options = ConnectOptions {
            token: Some(self.node.config.service_token.clone()),
            doc: None,
        };
        let conn = DocConnection::connect_with(&self.node.ws_base, notebook_id, options)
            .await
            .context("joining the notebook")?;
        conn.synced().await.context("syncing the notebook")?;
        let notebook = Notebook::from_doc(conn.doc().clone());
        let reason = format!(
            "the runtime node running this kernel ({owner}) stopped responding; \
             run a cell to start a new kernel"
        );
        if crate::session::mark_orphaned(&notebook, &reason) {
            crate::metrics::orphan_marked();
        }
        conn.close().await;
        Ok(())
    }
}
