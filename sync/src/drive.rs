//! Runs a [`ShardMachine`]: carries out its effects against an [`Exec`]
//! (the source and destination of one kind of shard) and feeds back what
//! happened. Applies run concurrently; reads and status writes in order.
//! Status writes are coalesced (at most one per `PERSIST_EVERY`, and always
//! before the shard waits or stops): after a crash a few entries are applied
//! again, which every apply tolerates (it compares before it changes).

use crate::SyncError;
use crate::machine::{Effect, Event, Item, ShardMachine, ShardStatus};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Shortest interval between two status writes of one shard.
const PERSIST_EVERY: Duration = Duration::from_millis(200);

/// What a shard machine acts on.
pub trait Exec<I: Item>: Sync {
    /// The source's log position (init).
    fn read_head(&self) -> impl Future<Output = Result<String, SyncError>> + Send;
    /// A page of the full listing after `after`.
    fn list_full(
        &self,
        after: &str,
    ) -> impl Future<Output = Result<(Vec<I>, bool), SyncError>> + Send;
    /// A page of the log after `after`.
    fn list_log(
        &self,
        after: &str,
    ) -> impl Future<Output = Result<(Vec<I>, bool), SyncError>> + Send;
    /// Applies one item.
    fn apply(&self, item: I) -> impl Future<Output = Result<(), SyncError>> + Send;
    /// Stores the shard's status.
    fn persist(&self, s: &ShardStatus) -> impl Future<Output = Result<(), SyncError>> + Send;
    /// Records an item that keeps failing in the error log.
    fn record_error(
        &self,
        item: &I,
        error: &str,
    ) -> impl Future<Output = Result<(), SyncError>> + Send;
    /// Waits until the source's log may have moved (a long poll); false: stop.
    fn wait_for_log(&self) -> impl Future<Output = bool> + Send;
    /// The machine's count of listed, unapplied entries went from `before`
    /// to `now` (for the pending-entries metric).
    fn pending_changed(&self, _before: usize, _now: usize) {}
}

/// How long a shard is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until everything logged so far is applied (a bucket shard synced on demand).
    CaughtUp,
    /// Until `wait_for_log` says stop.
    Stopped,
}

type Pending<'a, I> = Pin<Box<dyn Future<Output = Event<I>> + Send + 'a>>;

/// Drives `m` with `x`.
pub async fn drive<I, X>(m: &mut ShardMachine<I>, x: &X, until: Until) -> Result<(), SyncError>
where
    I: Item + Send + Sync,
    X: Exec<I>,
{
    let mut pending: FuturesUnordered<Pending<'_, I>> = FuturesUnordered::new();
    let mut queue: VecDeque<Effect<I>> = m.step(Event::Start).into();
    let mut dirty: Option<ShardStatus> = None;
    let mut last_persist = Instant::now();
    let mut reported = 0usize;
    let result = 'run: loop {
        let now = m.pending();
        if now != reported {
            x.pending_changed(reported, now);
            reported = now;
        }
        while let Some(fx) = queue.pop_front() {
            match fx {
                Effect::ReadHead => {
                    let ev = match x.read_head().await {
                        Ok(h) => Event::Head(h),
                        Err(e) => Event::ListFailed(e.to_string()),
                    };
                    queue.extend(m.step(ev));
                }
                Effect::ListFull(after) => {
                    let ev = match x.list_full(&after).await {
                        Ok((items, more)) => Event::FullPage { items, more },
                        Err(e) => Event::ListFailed(e.to_string()),
                    };
                    queue.extend(m.step(ev));
                }
                Effect::ListLog { after, wait } => {
                    if wait {
                        if let Some(s) = dirty.take() {
                            if let Err(e) = x.persist(&s).await {
                                break 'run Err(e);
                            }
                            last_persist = Instant::now();
                        }
                        if until == Until::CaughtUp && pending.is_empty() {
                            break 'run Ok(());
                        }
                        pending.push(Box::pin(async move {
                            if !x.wait_for_log().await {
                                return Event::ListFailed(String::new());
                            }
                            match x.list_log(&after).await {
                                Ok((items, more)) => Event::LogPage { items, more },
                                Err(e) => Event::ListFailed(e.to_string()),
                            }
                        }));
                    } else {
                        let ev = match x.list_log(&after).await {
                            Ok((items, more)) => Event::LogPage { items, more },
                            Err(e) => Event::ListFailed(e.to_string()),
                        };
                        queue.extend(m.step(ev));
                    }
                }
                Effect::Apply(item) => {
                    pending.push(Box::pin(async move {
                        let pos = item.pos().to_string();
                        match x.apply(item).await {
                            Ok(()) => Event::Applied(pos),
                            Err(e) => Event::Failed {
                                pos,
                                error: e.to_string(),
                            },
                        }
                    }));
                }
                Effect::ApplyAfter(item, d) => {
                    pending.push(Box::pin(async move {
                        tokio::time::sleep(d).await;
                        Event::Retry(item.pos().to_string())
                    }));
                }
                Effect::ListAfter(d) => {
                    pending.push(Box::pin(async move {
                        tokio::time::sleep(d).await;
                        Event::RetryList
                    }));
                }
                Effect::Persist(s) => {
                    if last_persist.elapsed() >= PERSIST_EVERY {
                        if let Err(e) = x.persist(&s).await {
                            break 'run Err(e);
                        }
                        last_persist = Instant::now();
                        dirty = None;
                    } else {
                        dirty = Some(s);
                    }
                }
                Effect::RecordError { item, error } => {
                    if let Err(e) = x.record_error(&item, &error).await {
                        break 'run Err(e);
                    }
                }
            }
        }
        if let Some(s) = dirty.take_if(|_| last_persist.elapsed() >= PERSIST_EVERY) {
            if let Err(e) = x.persist(&s).await {
                break 'run Err(e);
            }
            last_persist = Instant::now();
        }
        match pending.next().await {
            // A stop while waiting for the log.
            Some(Event::ListFailed(e)) if e.is_empty() => {
                if let Some(s) = dirty.take()
                    && let Err(e) = x.persist(&s).await
                {
                    break 'run Err(e);
                }
                break 'run Ok(());
            }
            Some(ev) => queue.extend(m.step(ev)),
            None => {
                if let Some(s) = dirty.take()
                    && let Err(e) = x.persist(&s).await
                {
                    break 'run Err(e);
                }
                break 'run Ok(());
            }
        }
    };
    x.pending_changed(reported, 0);
    result
}
