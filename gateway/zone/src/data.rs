//! Object data in the data pool: each run of bytes (a PUT, or one part of a
//! multipart upload) is striped into objects of at most [`STRIPE`] bytes named
//! `<bucket id>_<inst>`, `<bucket id>_<inst>.1`, ... Writes stream from the
//! request body with bounded buffering; reads stream with a small prefetch.

use crate::crypt::DataKey;
use crate::{DataRef, Result, Zone, ZoneError};
use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use md5::{Digest as _, Md5};
use meridian_client::ClientError;
use std::pin::Pin;
use std::time::Instant;

/// Stripe size: tail objects of at most 4 MiB, as RGW stripes them.
pub const STRIPE: u64 = 4 << 20;
/// Stripe writes in flight per request.
const WRITES_IN_FLIGHT: usize = 2;
/// Stripe reads prefetched per request.
const READS_AHEAD: usize = 2;

/// A request body as the zone consumes it.
pub type Body = Pin<Box<dyn Stream<Item = std::result::Result<Bytes, String>> + Send>>;
/// Object bytes as the zone produces them.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;
/// One stripe write in flight (holding its buffer permit).
type StripeWrite<'a> = futures::future::BoxFuture<'a, std::result::Result<u64, ClientError>>;

/// Name of stripe `n` of a run.
pub fn stripe_name(bucket_id: &str, inst: &str, n: u64) -> String {
    if n == 0 {
        format!("{bucket_id}_{inst}")
    } else {
        format!("{bucket_id}_{inst}.{n}")
    }
}

/// Stripes a run of `size` bytes occupies.
pub fn stripe_count(size: u64) -> u64 {
    size.div_ceil(STRIPE)
}

/// Every stripe object name of a run.
pub fn stripe_names(bucket_id: &str, run: &DataRef) -> Vec<String> {
    (0..stripe_count(run.size))
        .map(|n| stripe_name(bucket_id, &run.inst, n))
        .collect()
}

/// What was stored.
#[derive(Debug, Clone)]
pub struct Written {
    /// Bytes.
    pub size: u64,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
}

impl Zone {
    /// Streams `body` into stripes of run `inst`; fails past `limit` bytes or
    /// on a body error, and with [`ZoneError::Expired`] rather than start a
    /// stripe write at or after `deadline` or wait for the body past it: from
    /// then on GC may collect the writer's intent, and a stripe stored after
    /// GC deleted the run would be referenced by nothing. When it returns,
    /// every stripe write it started has finished, so deleting the run after
    /// a failure deletes all of it (partial stripes are covered by the
    /// writer's intent until then).
    pub async fn write_run(
        &self,
        bucket_id: &str,
        inst: &str,
        mut body: Body,
        limit: u64,
        deadline: Instant,
        key: Option<&DataKey>,
    ) -> Result<Written> {
        let mut inflight = FuturesUnordered::new();
        let r = self
            .write_stripes(
                bucket_id,
                inst,
                &mut body,
                (limit, deadline),
                key,
                &mut inflight,
            )
            .await;
        // After a failure, writes still in flight are awaited, not dropped: a
        // dropped write may land after the caller deleted the run.
        while inflight.next().await.is_some() {}
        r
    }

    async fn write_stripes<'a>(
        &'a self,
        bucket_id: &str,
        inst: &str,
        body: &mut Body,
        (limit, deadline): (u64, Instant),
        key: Option<&DataKey>,
        inflight: &mut FuturesUnordered<StripeWrite<'a>>,
    ) -> Result<Written> {
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let mut n = 0u64;
        let mut buf = BytesMut::new();
        let mut permit = Some(self.stripe_permit().await?);
        let stalled = tokio::time::sleep_until(deadline.into());
        tokio::pin!(stalled);
        loop {
            // Stripe writes in flight progress while the body is awaited.
            let chunk = loop {
                tokio::select! {
                    c = body.next() => break c,
                    Some(r) = inflight.next(), if !inflight.is_empty() => {
                        r?;
                    }
                    () = &mut stalled => return Err(ZoneError::Expired),
                }
            };
            let end = chunk.is_none();
            if let Some(c) = chunk {
                let c = c.map_err(ZoneError::Body)?;
                size += c.len() as u64;
                if size > limit {
                    return Err(ZoneError::EntityTooLarge { limit });
                }
                md5.update(&c);
                buf.extend_from_slice(&c);
            }
            // Flush whole stripes (and the tail at the end).
            while buf.len() as u64 >= STRIPE || (end && !buf.is_empty()) {
                if Instant::now() >= deadline {
                    return Err(ZoneError::Expired);
                }
                let take = (buf.len() as u64).min(STRIPE) as usize;
                let mut stripe = buf.split_to(take);
                // The MD5 above is of the plaintext; the stripe is stored sealed.
                if let Some(k) = key {
                    k.apply(inst, n * STRIPE, &mut stripe);
                }
                let stripe = stripe.freeze();
                let name = stripe_name(bucket_id, inst, n);
                n += 1;
                let p = permit.take();
                let cluster = self.cluster().clone();
                let pool = self.pools().data.clone();
                inflight.push(Box::pin(async move {
                    let r = cluster.write_full(&pool, &name, stripe).await;
                    drop(p);
                    r
                }));
                while inflight.len() >= WRITES_IN_FLIGHT {
                    if let Some(r) = inflight.next().await {
                        r?;
                    }
                }
                if !end {
                    permit = Some(self.stripe_permit().await?);
                }
            }
            if end {
                break;
            }
        }
        while let Some(r) = inflight.next().await {
            r?;
        }
        Ok(Written {
            size,
            md5: md5.finalize().into(),
        })
    }

    async fn stripe_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.inner
            .stripe_buffers
            .acquire()
            .await
            .map_err(|_| ZoneError::Body("gateway shutting down".into()))
    }

    /// Streams bytes `[start, end)` of the concatenated runs (decrypted with
    /// `key` when the version is encrypted).
    pub fn read_runs(
        &self,
        bucket_id: &str,
        runs: &[DataRef],
        (start, end): (u64, u64),
        key: Option<DataKey>,
    ) -> ByteStream {
        let mut pieces = Vec::new();
        let mut base = 0u64;
        for run in runs {
            let (run_start, run_end) = (base, base + run.size);
            base = run_end;
            if run_end <= start || run_start >= end {
                continue;
            }
            let from = start.max(run_start) - run_start;
            let to = end.min(run_end) - run_start;
            let mut off = from;
            while off < to {
                let n = off / STRIPE;
                let in_stripe = off % STRIPE;
                let len = (STRIPE - in_stripe).min(to - off);
                pieces.push((
                    stripe_name(bucket_id, &run.inst, n),
                    in_stripe,
                    len,
                    (run.inst.clone(), off),
                ));
                off += len;
            }
        }
        let cluster = self.cluster().clone();
        let pool = self.pools().data.clone();
        Box::pin(
            futures::stream::iter(pieces)
                .map(move |(name, off, len, (inst, run_off))| {
                    let cluster = cluster.clone();
                    let pool = pool.clone();
                    let key = key.clone();
                    async move {
                        let data = cluster.read_range(&pool, &name, off, len).await.map_err(
                            |e| match e {
                                ClientError::NotFound(_) => ZoneError::Corrupt {
                                    what: format!("data object {name}"),
                                    reason: "missing".into(),
                                },
                                e => e.into(),
                            },
                        )?;
                        if data.len() as u64 != len {
                            return Err(ZoneError::Corrupt {
                                what: format!("data object {name}"),
                                reason: format!("{} bytes at {off}, expected {len}", data.len()),
                            });
                        }
                        match key {
                            Some(k) => {
                                let mut plain = BytesMut::from(data);
                                k.apply(&inst, run_off, &mut plain);
                                Ok(plain.freeze())
                            }
                            None => Ok(data),
                        }
                    }
                })
                .buffered(READS_AHEAD),
        )
    }

    /// Bytes `[start, end)` of a stored object as the request body of another
    /// write (CopyObject, UploadPartCopy).
    pub fn copy_source(
        &self,
        bucket_id: &str,
        runs: &[DataRef],
        range: (u64, u64),
        key: Option<DataKey>,
    ) -> Body {
        Box::pin(
            self.read_runs(bucket_id, runs, range, key)
                .map(|r| r.map_err(|e| format!("copy source: {e}"))),
        )
    }

    /// Deletes every stripe of `runs` (missing stripes are fine: deletion is idempotent).
    pub async fn delete_runs(&self, bucket_id: &str, runs: &[DataRef]) -> Result<usize> {
        let names: Vec<String> = runs
            .iter()
            .flat_map(|r| stripe_names(bucket_id, r))
            .collect();
        let pool = self.pools().data.clone();
        let results = futures::stream::iter(names)
            .map(|name| {
                let pool = pool.clone();
                async move {
                    match self.cluster().remove(&pool, &name).await {
                        Ok(()) => Ok(1),
                        Err(ClientError::NotFound(_)) => Ok(0),
                        Err(e) => Err(ZoneError::from(e)),
                    }
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let mut removed = 0;
        for r in results {
            removed += r?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_named_and_counted() {
        assert_eq!(stripe_count(0), 0);
        assert_eq!(stripe_count(1), 1);
        assert_eq!(stripe_count(STRIPE), 1);
        assert_eq!(stripe_count(STRIPE + 1), 2);
        let run = DataRef {
            inst: "i1".into(),
            size: 2 * STRIPE + 5,
        };
        let names = stripe_names("b", &run);
        assert_eq!(names, vec!["b_i1", "b_i1.1", "b_i1.2"]);
    }
}
