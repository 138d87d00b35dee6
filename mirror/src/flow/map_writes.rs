//! New offset-map entries of every partition written together. Each partition producer hands
//! its entries over and waits until they are on the target, before the position they cover
//! counts as replicated; entries handed over while a write is in flight go out together in the
//! next one. Taking on a thousand partitions, each of which starts its map with its first
//! acknowledgement, then costs a few writes rather than a thousand on each side.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use tern_kafka::client::Client;

use crate::config::Flow;
use crate::error::Error;
use crate::names::Tp;
use crate::offset_map::store;
use crate::offset_map::Entry;

/// Entries of at most about this many go out in one write (a record of some 60 bytes each, so
/// well within a broker's default largest batch).
const MOST_ENTRIES_PER_WRITE: usize = 4096;

/// Partitions' entries waiting for the write in flight to finish, at most this many hand-overs.
const WAITING: usize = 4096;

/// One partition's new entries, and who waits for them to be on the target.
pub(super) struct MapWrite {
    tp: Tp,
    added: Vec<Entry>,
    done: oneshot::Sender<Result<(), Arc<Error>>>,
}

/// Where partition producers hand their new entries over.
pub(super) struct MapWrites {
    tx: mpsc::Sender<MapWrite>,
}

impl MapWrites {
    /// The hand-over point, and what [`writer`] reads.
    pub(super) fn new() -> (MapWrites, mpsc::Receiver<MapWrite>) {
        let (tx, rx) = mpsc::channel(WAITING);
        (MapWrites { tx }, rx)
    }

    /// Writes `added` for `tp`, with whatever other partitions hand over meanwhile; returns
    /// once they are on the target. Written directly when the writer is gone (the flow is
    /// stopping).
    pub(super) async fn persist(&self, (flow, source, target): (&Flow, &Client, &Client), tp: &Tp, added: Vec<Entry>) -> Result<(), Arc<Error>> {
        if added.is_empty() {
            return Ok(());
        }
        let (done, written) = oneshot::channel();
        let write = MapWrite { tp: tp.clone(), added, done };
        let added = match self.tx.send(write).await {
            Ok(()) => match written.await {
                Ok(result) => return result,
                Err(_) => return Err(Arc::new(Error::Crashed("the offset-map writer ended before answering".into()))),
            },
            Err(mpsc::error::SendError(write)) => write.added,
        };
        store::persist_entries(flow, source, target, tp, &added, &[]).await.map_err(Arc::new)
    }
}

/// Writes what partition producers hand over, all that waits at once, one write at a time:
/// the flow's offset maps on `target`, the offset syncs on `source`.
pub(super) async fn writer((flow, source, target): (&Flow, &Client, &Client), mut rx: mpsc::Receiver<MapWrite>) {
    while let Some(first) = rx.recv().await {
        let mut entries = first.added.len();
        let mut writes = vec![first];
        while entries < MOST_ENTRIES_PER_WRITE {
            match rx.try_recv() {
                Ok(write) => {
                    entries += write.added.len();
                    writes.push(write);
                }
                Err(_) => break,
            }
        }
        let changes: Vec<(&Tp, &[Entry], &[Entry])> = writes.iter().map(|w| (&w.tp, &w.added[..], &[][..])).collect();
        let result = store::persist_changes(flow, source, target, &changes).await.map_err(Arc::new);
        tracing::trace!(flow = %flow.name(), partitions = writes.len(), entries, "offset-map entries written");
        for write in writes {
            let _ = write.done.send(result.clone());
        }
    }
}
