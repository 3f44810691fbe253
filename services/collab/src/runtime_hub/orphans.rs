//! The collab side of the watch for notebooks whose runtime went away.
//!
//! Runtime nodes mark the kernels of a vanished node dead (runtime `node/redis/orphans.rs`),
//! but when every runtime node is gone nobody would: collaborators would keep seeing an idle
//! kernel holding variables that no longer exist. So each collab node also scans the
//! runtime sessions hash, and for a notebook it has open whose owner's lease expired it takes
//! the cleanup with the same script ([`keys::TAKE_ORPHAN`]: exactly one taker, runtime or
//! collab) and writes the death into the room's document through
//! [`tandem_crdt::kernel::mark_kernel_dead`], as an edit every client receives. Notebooks no
//! collab node has open are left for a runtime node (or for the node that opens them).

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tandem_protocol::redis_link as keys;
use tokio_util::sync::CancellationToken;

use crate::room::Rooms;

/// How often the sessions hash is scanned: a dead kernel shows within the lease's lifetime
/// plus this.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);

/// Scans until `stop`.
pub(super) async fn watch(
    mut conn: ConnectionManager,
    prefix: String,
    rooms: Rooms,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(SCAN_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(error) = scan(&mut conn, &prefix, &rooms).await {
            tracing::warn!(%error, "cannot scan for notebooks of vanished runtimes");
        }
    }
}

async fn scan(conn: &mut ConnectionManager, prefix: &str, rooms: &Rooms) -> redis::RedisResult<()> {
    let sessions: HashMap<String, String> = conn.hgetall(keys::sessions_key(prefix)).await?;
    for (notebook, owner) in sessions {
        let Some(room) = rooms.loaded(&notebook) else {
            continue;
        };
        let taken: i64 = redis::Script::new(keys::TAKE_ORPHAN)
            .key(keys::lease_key(prefix, &notebook))
            .key(keys::sessions_key(prefix))
            .arg(&notebook)
            .arg(&owner)
            .invoke_async(conn)
            .await?;
        if taken != 1 {
            continue;
        }
        tracing::info!(doc_id = %notebook, runtime_node = %owner, "runtime gone; marking its kernel dead");
        let reason = keys::orphan_reason(&owner);
        let marked = room
            .edit(move |txn| {
                tandem_crdt::kernel::mark_kernel_dead(txn, &reason);
            })
            .await;
        if let Err(error) = marked {
            tracing::warn!(%error, doc_id = %notebook, "cannot mark the kernel dead; retrying");
            // Back for the next scan, unless a runtime owns the notebook by now.
            let _: redis::RedisResult<bool> = conn
                .hset_nx(keys::sessions_key(prefix), &notebook, &owner)
                .await;
        }
    }
    Ok(())
}
