//! Object data in the data pool: each run of bytes (a PUT, or one part of a
//! multipart upload) is striped into objects of at most [`STRIPE`] bytes named
//! `<bucket id>_<inst>`, `<bucket id>_<inst>.1`, ... Writes stream from the
//! request body with bounded buffering; reads stream with a small prefetch.
//! A stripe is compressed (when the data pool asks for it) and then sealed
//! (when the version is encrypted) on its way to the pool; stripe `n` always
//! holds the run's bytes from `n * STRIPE`, whatever its stored length.

use crate::checksum::{ChecksumAlgorithm, Hasher, ObjectChecksum};
use crate::crypt::DataKey;
use crate::{DataRef, Result, RunCompression, Zone, ZoneError};
use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use md5::{Digest as _, Md5};
use meridian_client::ClientError;
use meridian_client::ops::sub;
use meridian_common::compression::{Algorithm, Hint, PoolCompression};
use std::pin::Pin;
use std::sync::Arc;
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
/// One stripe write in flight (holding its buffer permit): its number and
/// stored length.
type StripeWrite<'a> = futures::future::BoxFuture<'a, Result<(u64, u64)>>;

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
    /// How the stripes were compressed (None: none was).
    pub compression: Option<RunCompression>,
    /// The checksum `Encoding::checksum` asked for, of the plaintext.
    pub checksum: Option<ObjectChecksum>,
}

impl Written {
    /// The run record of what was stored as run `inst`.
    pub fn run(&self, inst: &str) -> DataRef {
        DataRef {
            inst: inst.to_string(),
            size: self.size,
            compression: self.compression.clone(),
            inline_shard: None,
            prefetched: None,
        }
    }
}

/// How a run's bytes are encoded on their way to the data pool.
#[derive(Clone, Copy, Default)]
pub struct Encoding<'a> {
    /// Seal the stripes with this key (None: stored in the clear).
    pub key: Option<&'a DataKey>,
    /// What the object's type says about compressing it.
    pub hint: Hint,
    /// The additional checksum to compute over the bytes.
    pub checksum: Option<ChecksumAlgorithm>,
}

/// The compression a run is written with: algorithm and settings.
type Packing = Option<(Algorithm, PoolCompression)>;

/// Compresses (if `packing` says so and it pays) and seals stripe `n` of
/// run `inst`; returns the bytes to store. CPU-bound: callers run it off the
/// async workers when it compresses.
fn encode_stripe(
    mut plain: BytesMut,
    (inst, n): (&str, u64),
    packing: Packing,
    key: Option<&DataKey>,
) -> Result<Bytes> {
    if let Some((alg, settings)) = packing {
        let packed =
            crate::compress::compress(alg, &plain).map_err(|reason| ZoneError::Corrupt {
                what: format!("stripe {n} of run {inst}"),
                reason,
            })?;
        if settings.worth_keeping(packed.len(), plain.len()) {
            plain = BytesMut::from(&packed[..]);
        }
    }
    // The stored bytes are sealed at the stripe's offset in the run: a
    // compressed stripe is shorter than STRIPE, so no keystream is reused.
    if let Some(k) = key {
        k.apply(inst, n * STRIPE, &mut plain);
    }
    Ok(plain.freeze())
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
        enc: Encoding<'_>,
    ) -> Result<Written> {
        let mut inflight = FuturesUnordered::new();
        let r = self
            .write_stripes(
                bucket_id,
                inst,
                &mut body,
                (limit, deadline),
                enc,
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
        enc: Encoding<'_>,
        inflight: &mut FuturesUnordered<StripeWrite<'a>>,
    ) -> Result<Written> {
        let packing = self.packing(enc.hint);
        let mut stored: Vec<u64> = Vec::new();
        let mut record = |r: Result<(u64, u64)>| -> Result<()> {
            let (n, len) = r?;
            let n = n as usize;
            if stored.len() <= n {
                stored.resize(n + 1, 0);
            }
            stored[n] = len;
            Ok(())
        };
        let mut md5 = Md5::new();
        let mut sum = enc.checksum.map(Hasher::new);
        let mut size = 0u64;
        let mut n = 0u64;
        // Each stripe's buffer is sized (and its permit taken) for what the
        // declared length says it will hold, so a small PUT holds little.
        let (mut buf, permit) = self.stripe_buffer(limit).await?;
        let mut permit = Some(permit);
        // What is left of the body chunk last received.
        let mut pending = Bytes::new();
        let mut end = false;
        let stalled = tokio::time::sleep_until(deadline.into());
        tokio::pin!(stalled);
        loop {
            if pending.is_empty() {
                // Stripe writes in flight progress while the body is awaited.
                let chunk = loop {
                    tokio::select! {
                        c = body.next() => break c,
                        Some(r) = inflight.next(), if !inflight.is_empty() => {
                            record(r)?;
                        }
                        () = &mut stalled => return Err(ZoneError::Expired),
                    }
                };
                match chunk {
                    None => end = true,
                    Some(c) => {
                        let c = c.map_err(ZoneError::Body)?;
                        size += c.len() as u64;
                        if size > limit {
                            return Err(ZoneError::EntityTooLarge { limit });
                        }
                        md5.update(&c);
                        if let Some(h) = sum.as_mut() {
                            h.update(&c);
                        }
                        pending = c;
                    }
                }
            }
            let take = pending.len().min(STRIPE as usize - buf.len());
            buf.extend_from_slice(&pending.split_to(take));
            // Flush a whole stripe (and the tail at the end).
            if buf.len() as u64 == STRIPE || (end && !buf.is_empty()) {
                if Instant::now() >= deadline {
                    return Err(ZoneError::Expired);
                }
                // The MD5 above is of the plaintext; the stripe is stored
                // compressed and sealed as `enc` and the pool say.
                let plain = std::mem::take(&mut buf);
                let (this, name) = (n, stripe_name(bucket_id, inst, n));
                n += 1;
                let p = permit.take();
                let cluster = self.cluster().clone();
                let pool = self.pools().data.clone();
                let (run, key) = (inst.to_string(), enc.key.cloned());
                inflight.push(Box::pin(async move {
                    let stripe = match packing {
                        None => encode_stripe(plain, (&run, this), None, key.as_ref())?,
                        Some(_) => tokio::task::spawn_blocking(move || {
                            encode_stripe(plain, (&run, this), packing, key.as_ref())
                        })
                        .await
                        .map_err(|e| ZoneError::Body(format!("stripe encoder: {e}")))??,
                    };
                    let len = stripe.len() as u64;
                    cluster.write_full(&pool, &name, stripe).await?;
                    drop(p);
                    Ok((this, len))
                }));
                while inflight.len() >= WRITES_IN_FLIGHT {
                    if let Some(r) = inflight.next().await {
                        record(r)?;
                    }
                }
                if !end {
                    // Writes in flight are driven while waiting for room:
                    // they hold budget that only their completion returns.
                    let next = self.stripe_buffer(limit.saturating_sub(n * STRIPE));
                    tokio::pin!(next);
                    let (b, p) = loop {
                        tokio::select! {
                            r = &mut next => break r?,
                            Some(r) = inflight.next(), if !inflight.is_empty() => {
                                record(r)?;
                            }
                        }
                    };
                    (buf, permit) = (b, Some(p));
                }
            }
            if end {
                break;
            }
        }
        while let Some(r) = inflight.next().await {
            record(r)?;
        }
        // A run none of whose stripes shrank is recorded as plain.
        let compression = packing.and_then(|(algorithm, _)| {
            let full = (0..stored.len() as u64).map(|i| STRIPE.min(size - i * STRIPE));
            let shrank = stored.iter().zip(full).any(|(s, f)| *s < f);
            shrank.then_some(RunCompression { algorithm, stored })
        });
        Ok(Written {
            size,
            md5: md5.finalize().into(),
            compression,
            checksum: sum.map(Hasher::finish),
        })
    }

    /// Reads a body of at most `limit` bytes (no more than one stripe) into
    /// memory and encodes it as the one stripe of run `inst`, for a version
    /// whose data is stored inline in its index shard (see [`DataRef`]). The
    /// returned permit holds its write budget until the bytes are stored.
    pub(crate) async fn read_inline_run(
        &self,
        inst: &str,
        mut body: Body,
        (limit, deadline): (u64, Instant),
        enc: Encoding<'_>,
    ) -> Result<(Written, Bytes, tokio::sync::OwnedSemaphorePermit)> {
        debug_assert!(limit <= STRIPE);
        let (mut buf, permit) = self.stripe_buffer(limit).await?;
        let mut md5 = Md5::new();
        let mut sum = enc.checksum.map(Hasher::new);
        loop {
            let chunk = tokio::time::timeout_at(deadline.into(), body.next())
                .await
                .map_err(|_| ZoneError::Expired)?;
            let Some(c) = chunk else { break };
            let c = c.map_err(ZoneError::Body)?;
            if (buf.len() + c.len()) as u64 > limit {
                return Err(ZoneError::EntityTooLarge { limit });
            }
            md5.update(&c);
            if let Some(h) = sum.as_mut() {
                h.update(&c);
            }
            buf.extend_from_slice(&c);
        }
        let size = buf.len() as u64;
        let packing = self.packing(enc.hint);
        let stored = match packing {
            None => encode_stripe(buf, (inst, 0), None, enc.key)?,
            // Compressing is CPU work: off the async workers, as for stripes.
            Some(_) => {
                let (inst, key) = (inst.to_string(), enc.key.cloned());
                tokio::task::spawn_blocking(move || {
                    encode_stripe(buf, (&inst, 0), packing, key.as_ref())
                })
                .await
                .map_err(|e| ZoneError::Body(format!("stripe encoder: {e}")))??
            }
        };
        let compression = packing
            .filter(|_| (stored.len() as u64) < size)
            .map(|(algorithm, _)| RunCompression {
                algorithm,
                stored: vec![stored.len() as u64],
            });
        let written = Written {
            size,
            md5: md5.finalize().into(),
            compression,
            checksum: sum.map(Hasher::finish),
        };
        Ok((written, stored, permit))
    }

    /// How data with `hint` is compressed in this zone's data pool now.
    fn packing(&self, hint: Hint) -> Packing {
        let view = self.cluster().map();
        let settings = view
            .pool_by_name(&self.pools().data)
            .map(|p| PoolCompression::from_options(&p.options))
            .unwrap_or_default();
        settings.decide(hint).map(|alg| (alg, settings))
    }

    /// An empty buffer for the next stripe of a run that has at most
    /// `remaining` bytes left, with the write-buffer permit it occupies.
    async fn stripe_buffer(
        &self,
        remaining: u64,
    ) -> Result<(BytesMut, tokio::sync::OwnedSemaphorePermit)> {
        let len = remaining.min(STRIPE);
        let permit = take_room(self.inner.write_buffers.clone(), len, "write").await?;
        Ok((BytesMut::with_capacity(len as usize), permit))
    }

    /// Bytes of write and read buffer not taken by any request now.
    pub fn buffer_room(&self) -> BufferRoom {
        let free = |s: &tokio::sync::Semaphore| s.available_permits() as u64 * 1024;
        BufferRoom {
            write: free(&self.inner.write_buffers),
            read: free(&self.inner.read_buffers),
        }
    }

    /// Streams bytes `[start, end)` of the concatenated runs (decrypted with
    /// `key` when the version is encrypted, decompressed where stored so).
    /// Each piece read ahead holds read budget until its bytes are dropped.
    pub fn read_runs(
        &self,
        (bucket_id, object): (&str, &str),
        runs: &[DataRef],
        range: (u64, u64),
        key: Option<DataKey>,
    ) -> ByteStream {
        let budget = Some(self.inner.read_buffers.clone());
        self.read_pieces((bucket_id, object), runs, range, key, budget)
    }

    fn read_pieces(
        &self,
        (bucket_id, object): (&str, &str),
        runs: &[DataRef],
        (start, end): (u64, u64),
        key: Option<DataKey>,
        budget: Option<Arc<tokio::sync::Semaphore>>,
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
                let full = STRIPE.min(run.size - n * STRIPE);
                let packed = run
                    .compression
                    .as_ref()
                    .map(|c| (c.algorithm, c.stored.get(n as usize).copied(), full));
                let at = match (run.inline_shard, &run.prefetched) {
                    (Some(_), Some(bytes)) => StripeAt::Fetched(bytes.clone()),
                    (Some(shard), None) => StripeAt::Inline {
                        shard: crate::index::shard_object(bucket_id, shard),
                        key: crate::index::inline_key(object, &run.inst),
                    },
                    (None, _) => StripeAt::Pool(stripe_name(bucket_id, &run.inst, n)),
                };
                pieces.push(Piece {
                    at,
                    inst: run.inst.clone(),
                    n,
                    in_stripe,
                    len,
                    packed,
                });
                off += len;
            }
        }
        let cluster = self.cluster().clone();
        let pools = Arc::new(self.pools().clone());
        Box::pin(
            futures::stream::iter(pieces)
                // Permits are taken in the order of the pieces (`then` runs
                // one at a time), so the piece a request waits on next always
                // has one: requests that hold permits for later pieces cannot
                // starve their own first one.
                .then(move |p| {
                    let budget = budget.clone();
                    async move {
                        let permit = match budget {
                            Some(b) => take_room(b, p.charge(), "read").await.map(Some),
                            None => Ok(None),
                        };
                        (p, permit)
                    }
                })
                .map(move |(p, permit)| {
                    let (cluster, pools, key) = (cluster.clone(), pools.clone(), key.clone());
                    async move {
                        let permit = permit?;
                        let bytes = p.read(&cluster, &pools, key).await?;
                        // The permit is returned when the client has taken
                        // the bytes (the HTTP layer drops them).
                        Ok(match permit {
                            Some(permit) => Bytes::from_owner(Budgeted {
                                bytes,
                                _permit: permit,
                            }),
                            None => bytes,
                        })
                    }
                })
                .buffered(READS_AHEAD),
        )
    }

    /// Bytes `[start, end)` of the concatenated runs for another zone's sync
    /// (FetchObject). It takes no read budget: the fetching zone holds its
    /// write budget while it reads the stream, and streams it has not begun
    /// to read would hold this zone's read budget while they wait for that
    /// write budget, a cycle across the two zones. The fetching zone's sync
    /// window bounds how many such streams are open at once.
    pub fn replication_source(
        &self,
        at: (&str, &str),
        runs: &[DataRef],
        range: (u64, u64),
        key: Option<DataKey>,
    ) -> ByteStream {
        self.read_pieces(at, runs, range, key, None)
    }

    /// Bytes `[start, end)` of a stored object as the request body of another
    /// write (CopyObject, UploadPartCopy). Its reads take no read budget: the
    /// copy holds write budget while it reads, so two copies each holding one
    /// kind and waiting for the other could deadlock. A copy reads ahead a
    /// few stripes at most, and starts reading only once it holds write
    /// budget for its first stripe.
    pub fn copy_source(
        &self,
        at: (&str, &str),
        runs: &[DataRef],
        range: (u64, u64),
        key: Option<DataKey>,
    ) -> Body {
        Box::pin(
            self.read_pieces(at, runs, range, key, None)
                .map(|r| r.map_err(|e| format!("copy source: {e}"))),
        )
    }

    /// Deletes every stripe of `runs` (missing stripes are fine: deletion is
    /// idempotent); an inline run's bytes leave its index shard.
    pub async fn delete_runs(
        &self,
        (bucket_id, object): (&str, &str),
        runs: &[DataRef],
    ) -> Result<usize> {
        let names: Vec<String> = runs
            .iter()
            .filter(|r| r.inline_shard.is_none())
            .flat_map(|r| stripe_names(bucket_id, r))
            .collect();
        let mut inline: std::collections::BTreeMap<u32, Vec<Bytes>> = Default::default();
        for r in runs {
            if let Some(shard) = r.inline_shard {
                inline
                    .entry(shard)
                    .or_default()
                    .push(crate::index::inline_key(object, &r.inst));
            }
        }
        let pool = self.pools().data.clone();
        let removed_inline = futures::stream::iter(inline)
            .map(|(shard, keys)| async move {
                let n = keys.len();
                let obj = crate::index::shard_object(bucket_id, shard);
                let op = vec![sub::omap_rm(keys)];
                match self.cluster().op(&self.pools().index, &obj, op).await {
                    Ok(_) => Ok(n),
                    Err(ClientError::NotFound(_)) => Ok(0),
                    Err(e) => Err(ZoneError::from(e)),
                }
            })
            .buffer_unordered(8);
        let removed_stripes = futures::stream::iter(names)
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
            .buffer_unordered(8);
        let results = futures::stream::select(removed_inline, removed_stripes)
            .collect::<Vec<_>>()
            .await;
        let mut removed = 0;
        for r in results {
            removed += r?;
        }
        Ok(removed)
    }
}

/// Object data buffer not taken by any request (see [`Zone::buffer_room`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferRoom {
    /// Bytes of write buffer free.
    pub write: u64,
    /// Bytes of read buffer free.
    pub read: u64,
}

/// Takes room for `bytes` in a buffer budget (`kind` = write or read),
/// counting a wait when there is none now.
async fn take_room(
    budget: Arc<tokio::sync::Semaphore>,
    bytes: u64,
    kind: &'static str,
) -> Result<tokio::sync::OwnedSemaphorePermit> {
    let want = kib(bytes);
    match budget.clone().try_acquire_many_owned(want) {
        Ok(p) => Ok(p),
        Err(_) => {
            metrics::counter!("meridian_gateway_buffer_waits_total", "kind" => kind).increment(1);
            budget
                .acquire_many_owned(want)
                .await
                .map_err(|_| ZoneError::Body("gateway shutting down".into()))
        }
    }
}

/// KiB (rounded up) of `bytes`: the unit of the buffer budgets.
pub(crate) fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Bytes `[off, off + len)` of a whole stored stripe, or what of them it has.
fn slice_of(whole: &Bytes, off: u64, len: u64) -> Bytes {
    let end = (off + len).min(whole.len() as u64);
    whole.slice(off.min(end) as usize..end as usize)
}

/// Bytes that hold a share of a buffer budget until they are dropped.
struct Budgeted {
    bytes: Bytes,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Where a stripe is stored.
enum StripeAt {
    /// An object of the data pool.
    Pool(String),
    /// An omap value of an index shard object (an inline run).
    Inline { shard: String, key: Bytes },
    /// An inline run's stored bytes, read with the version's index entry.
    Fetched(Bytes),
}

impl std::fmt::Display for StripeAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StripeAt::Pool(name) => write!(f, "data object {name}"),
            StripeAt::Inline { shard, key } => write!(
                f,
                "inline data {} in index shard {shard}",
                String::from_utf8_lossy(key)
            ),
            StripeAt::Fetched(_) => write!(f, "inline data"),
        }
    }
}

/// The part of one stripe a read wants.
struct Piece {
    /// Where the stripe is.
    at: StripeAt,
    /// Run it belongs to (the sealing key's input).
    inst: String,
    /// Stripe number in the run.
    n: u64,
    /// First wanted byte within the stripe's plaintext.
    in_stripe: u64,
    /// Wanted bytes.
    len: u64,
    /// For a run with compressed stripes: algorithm, this stripe's stored
    /// length, and its plaintext length.
    packed: Option<(Algorithm, Option<u64>, u64)>,
}

impl Piece {
    /// Bytes of read buffer it occupies: a compressed stripe is read whole.
    fn charge(&self) -> u64 {
        match self.packed {
            Some((_, _, full)) => full.max(self.len),
            None => self.len,
        }
    }

    fn corrupt(&self, reason: String) -> ZoneError {
        ZoneError::Corrupt {
            what: self.at.to_string(),
            reason,
        }
    }

    async fn read(
        self,
        cluster: &meridian_client::Cluster,
        pools: &crate::ZonePools,
        key: Option<DataKey>,
    ) -> Result<Bytes> {
        let this = &self;
        let missing = |e: ClientError| match e {
            ClientError::NotFound(_) => this.corrupt("missing".into()),
            e => e.into(),
        };
        let read = |off: u64, len: u64| async move {
            let data = match &this.at {
                StripeAt::Pool(name) => cluster
                    .read_range(&pools.data, name, off, len)
                    .await
                    .map_err(missing)?,
                StripeAt::Inline { shard, key } => {
                    let op = vec![sub::omap_get_values(vec![key.clone()])];
                    let reply = cluster.op(&pools.index, shard, op).await.map_err(missing)?;
                    let whole = reply
                        .results
                        .into_iter()
                        .next()
                        .and_then(|r| r.entries.into_iter().next())
                        .map(|kv| kv.value)
                        .ok_or_else(|| this.corrupt("missing".into()))?;
                    slice_of(&whole, off, len)
                }
                StripeAt::Fetched(whole) => slice_of(whole, off, len),
            };
            if data.len() as u64 != len {
                return Err(this.corrupt(format!("{} bytes at {off}, expected {len}", data.len())));
            }
            Ok(data)
        };
        let stripe_start = self.n * STRIPE;
        match self.packed {
            Some((_, None, _)) => Err(self.corrupt("no stored length for the stripe".into())),
            // A compressed stripe is read, unsealed and inflated whole.
            Some((alg, Some(stored), full)) if stored < full => {
                let mut sealed = BytesMut::from(read(0, stored).await?);
                let inst = self.inst.clone();
                let plain = tokio::task::spawn_blocking(move || {
                    if let Some(k) = key {
                        k.apply(&inst, stripe_start, &mut sealed);
                    }
                    crate::compress::decompress(alg, &sealed, full as usize)
                })
                .await
                .map_err(|e| self.corrupt(format!("stripe decoder: {e}")))?
                .map_err(|e| self.corrupt(e))?;
                let from = self.in_stripe as usize;
                Ok(Bytes::from(plain).slice(from..from + self.len as usize))
            }
            _ => {
                let data = read(self.in_stripe, self.len).await?;
                match key {
                    Some(k) => {
                        let mut plain = BytesMut::from(data);
                        k.apply(&self.inst, stripe_start + self.in_stripe, &mut plain);
                        Ok(plain.freeze())
                    }
                    None => Ok(data),
                }
            }
        }
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
        let run = DataRef::plain("i1", 2 * STRIPE + 5);
        let names = stripe_names("b", &run);
        assert_eq!(names, vec!["b_i1", "b_i1.1", "b_i1.2"]);
    }
}
