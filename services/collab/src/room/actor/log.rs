//! The room's update log, as the room sees it: changes applied but not yet durable (the
//! group commit's batch), where the durable log stands (its last sequence number, its length
//! since the last snapshot, the notebook's stored size) and the compaction in progress.

use std::time::Instant;

use tokio::task::JoinHandle;

/// The room's side of the notebook's update log.
#[derive(Debug, Default)]
pub(super) struct UpdateLog {
    /// Changes applied to the document but not yet durable (and so not yet broadcast).
    pending: Vec<Vec<u8>>,
    /// When the oldest pending change was applied (for the fan-out latency metric).
    pending_since: Option<Instant>,
    /// Sequence number of the last durable update.
    pub last_seq: u64,
    /// Updates in the log since the last snapshot.
    pub len: u64,
    /// The notebook's size as stored (snapshot and log), in bytes.
    pub stored_bytes: u64,
    compaction: Option<JoinHandle<()>>,
}

impl UpdateLog {
    /// The log as loaded: at `last_seq`, `len` updates after the snapshot, `stored_bytes` in
    /// all.
    pub(super) fn loaded(last_seq: u64, len: u64, stored_bytes: u64) -> Self {
        UpdateLog {
            last_seq,
            len,
            stored_bytes,
            ..UpdateLog::default()
        }
    }

    /// A change applied to the document, to make durable with the batch.
    pub(super) fn push(&mut self, change: Vec<u8>) {
        self.extend([change]);
    }

    /// Changes applied to the document, to make durable with the batch.
    pub(super) fn extend(&mut self, changes: impl IntoIterator<Item = Vec<u8>>) {
        let before = self.pending.len();
        self.pending.extend(changes);
        if self.pending.len() > before {
            self.pending_since.get_or_insert_with(Instant::now);
        }
    }

    /// Whether changes wait to be made durable.
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The size of the changes waiting, in bytes.
    pub(super) fn pending_bytes(&self) -> u64 {
        self.pending.iter().map(|change| change.len() as u64).sum()
    }

    /// The waiting changes as one update (`None` when there are none), no longer waiting;
    /// an error when they do not merge.
    pub(super) fn take_pending(&mut self) -> Result<Option<Vec<u8>>, yrs::encoding::read::Error> {
        let update = match self.pending.len() {
            0 => return Ok(None),
            1 => self.pending.pop().unwrap_or_default(),
            _ => {
                let parts: Vec<&[u8]> = self.pending.iter().map(Vec::as_slice).collect();
                yrs::merge_updates_v1(&parts)?
            }
        };
        self.pending.clear();
        Ok(Some(update))
    }

    /// When the oldest of the changes just made durable was applied.
    pub(super) fn take_pending_since(&mut self) -> Option<Instant> {
        self.pending_since.take()
    }

    /// This room appended an update at `seq`.
    pub(super) fn appended(&mut self, seq: u64) {
        self.last_seq = seq;
        self.len += 1;
    }

    /// Whether the log is long enough to fold into a snapshot.
    pub(super) fn due_for_compaction(&self, after: u64) -> bool {
        self.len >= after
    }

    /// Whether a compaction is still running.
    pub(super) fn compacting(&self) -> bool {
        self.compaction
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// Everything so far is being folded into a snapshot of `snapshot_bytes` by `task`.
    pub(super) fn compaction_started(&mut self, snapshot_bytes: u64, task: JoinHandle<()>) {
        self.len = 0;
        self.stored_bytes = snapshot_bytes;
        self.compaction = Some(task);
    }

    /// The compaction in progress, if any, to wait for.
    pub(super) fn take_compaction(&mut self) -> Option<JoinHandle<()>> {
        self.compaction.take()
    }
}

#[cfg(test)]
mod tests {
    use yrs::updates::decoder::Decode;
    use yrs::{GetString, Text, Transact};

    use super::*;

    fn edit(doc: &yrs::Doc, text: &str) -> Vec<u8> {
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        let len = t.len(&txn);
        t.insert(&mut txn, len, text);
        txn.encode_update_v1()
    }

    #[test]
    fn pending_changes_merge_into_one_update() {
        let mut log = UpdateLog::loaded(7, 2, 100);
        assert_eq!(log.take_pending().unwrap(), None);
        assert_eq!(log.take_pending_since(), None);
        let doc = yrs::Doc::new();
        log.push(edit(&doc, "ab"));
        log.extend([edit(&doc, "cd"), edit(&doc, "ef")]);
        assert!(log.has_pending());
        assert!(log.pending_bytes() > 0);
        let merged = log.take_pending().unwrap().unwrap();
        assert!(!log.has_pending());
        assert!(log.take_pending_since().is_some());
        let replica = yrs::Doc::new();
        replica
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(&merged).unwrap())
            .unwrap();
        let text = replica.get_or_insert_text("t");
        assert_eq!(text.get_string(&replica.transact()), "abcdef");
        // Nothing pushed: no latency to report.
        log.extend(Vec::new());
        assert_eq!(log.take_pending_since(), None);
    }

    #[tokio::test]
    async fn appends_and_compaction_move_the_counters() {
        let mut log = UpdateLog::loaded(7, 2, 100);
        log.appended(8);
        assert_eq!((log.last_seq, log.len), (8, 3));
        assert!(log.due_for_compaction(3) && !log.due_for_compaction(4));
        log.compaction_started(40, tokio::spawn(async {}));
        assert_eq!((log.len, log.stored_bytes), (0, 40));
        log.take_compaction().unwrap().await.unwrap();
        assert!(!log.compacting());
    }
}
