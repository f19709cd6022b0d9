//! Group commit of replicated versions: the versions of one bucket shard
//! fetched while an index commit is in flight go into the next one together
//! (`Zone::apply_versions`: one op for the intents of their pool data, one
//! for their index entries and inline data), so neither a full sync nor a
//! busy shard's incremental sync is bound by one index round trip per
//! object.

use crate::SyncError;
use meridian_zone::data::Body;
use meridian_zone::replica::Applied;
use meridian_zone::{BucketInfo, IndexEntry, Zone};
use std::collections::HashSet;
use tokio::sync::{mpsc, oneshot};

/// Most versions committed in one index op.
const BATCH_MAX: usize = 64;

type Reply = oneshot::Sender<Result<Applied, SyncError>>;
type Waiting = (IndexEntry, Option<Body>, Vec<String>, Reply);

/// Applies versions of one bucket shard in batches; dropped, its task ends
/// once the last batch is done.
pub struct ApplyBatcher {
    tx: mpsc::UnboundedSender<Waiting>,
}

impl ApplyBatcher {
    /// Starts the batching task for `shard` of `bucket` in `local`.
    pub fn start(local: Zone, bucket: BucketInfo, shard: u32) -> ApplyBatcher {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiting>();
        tokio::spawn(async move {
            let mut held: Option<Waiting> = None;
            loop {
                let first = match held.take() {
                    Some(w) => w,
                    None => match rx.recv().await {
                        Some(w) => w,
                        None => return,
                    },
                };
                let mut keys = HashSet::from([first.0.key.clone()]);
                let mut batch = vec![first];
                // Everything waiting now, up to a repeated key (a batch
                // decides every key against one snapshot).
                while batch.len() < BATCH_MAX {
                    match rx.try_recv() {
                        Ok(w) if keys.insert(w.0.key.clone()) => batch.push(w),
                        Ok(w) => {
                            held = Some(w);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|(e, b, t, r)| ((e, b, t), r)).unzip();
                metrics::counter!("meridian_sync_apply_batches_total").increment(1);
                metrics::counter!("meridian_sync_apply_batched_versions_total")
                    .increment(items.len() as u64);
                match local.apply_versions(&bucket, shard, items).await {
                    Ok(results) => {
                        for (r, reply) in results.into_iter().zip(replies) {
                            let _ = reply.send(r.map_err(SyncError::from));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(SyncError::Local(msg.clone())));
                        }
                    }
                }
            }
        });
        ApplyBatcher { tx }
    }

    /// Applies `entry` (with its bytes) in the next batch.
    pub async fn apply(
        &self,
        entry: IndexEntry,
        body: Option<Body>,
        trace: Vec<String>,
    ) -> Result<Applied, SyncError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((entry, body, trace, reply))
            .map_err(|_| SyncError::Stopped)?;
        answer.await.map_err(|_| SyncError::Stopped)?
    }
}
