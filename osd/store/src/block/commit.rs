//! The committer thread: group commit of queued transactions.
//!
//! Each round takes every transaction queued at that moment and applies them in
//! order to a two-level overlay (batch level, plus a per-transaction level that
//! is merged on success or rolled back on failure). New data goes to freshly
//! allocated extents, held in aligned buffers. Then: one batched write of all
//! buffers, one fdatasync of the block file, one durable fjall batch — the
//! atomic point — and every submitter is woken.

use super::io::{AlignedBuf, IoDone, IoOp};
use super::keys;
use super::record::{self, CHUNK, Chunk, ObjData, ObjState, UNIT, round_up_unit};
use super::{Counters, Inner, Submission};
use crate::{ObjectKey, PgId, StoreError, StoreOp, Transaction, failpoints};
use bytes::Bytes;
use crossbeam::channel::{Receiver, RecvTimeoutError};
use fjall::{Keyspace, PersistMode};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

/// Most transactions in one group commit.
const MAX_BATCH_TXNS: usize = 512;
/// Most chunks written by one I/O op (8 MiB).
const MAX_RUN_CHUNKS: usize = 128;

pub(super) fn committer_loop(inner: Arc<Inner>, rx: Receiver<Submission>) {
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(s) => s,
            Err(RecvTimeoutError::Timeout) => {
                inner.try_reclaim();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut bytes = first.txn.payload_bytes();
        let mut subs = vec![first];
        while subs.len() < MAX_BATCH_TXNS && bytes < inner.cfg.max_batch_bytes {
            match rx.try_recv() {
                Ok(s) => {
                    bytes += s.txn.payload_bytes();
                    subs.push(s);
                }
                Err(_) => break,
            }
        }
        let (txns, replies): (Vec<Transaction>, Vec<_>) =
            subs.into_iter().map(|s| (s.txn, s.reply)).unzip();
        let results = inner.commit_batch(txns);
        for (reply, res) in replies.into_iter().zip(results) {
            let _ = reply.send(res);
        }
    }
}

/// KV keyspaces that hold per-object entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Space {
    Xattr,
    Omap,
}

#[derive(Clone, Debug)]
struct ObjEntry {
    /// Whether a committed record exists in the KV.
    existed: bool,
    /// State after the ops so far (`None` = absent).
    state: Option<ObjState>,
}

struct PendingWrite {
    phys: u64,
    buf: AlignedBuf,
}

/// Changes made by a transaction (or a merged batch of them).
#[derive(Default)]
struct Level {
    objects: HashMap<ObjectKey, ObjEntry>,
    kv: BTreeMap<(Space, Vec<u8>), Option<Bytes>>,
    /// Units allocated here: returned to the allocator on rollback.
    allocs: Vec<(u64, u64)>,
    /// Units freed here: recycled after the commit (and after readers leave).
    frees: Vec<(u64, u64)>,
    writes: Vec<PendingWrite>,
    /// Physical offset of a chunk written here -> (index in `writes`, offset in its buffer).
    fresh: HashMap<u64, (usize, usize)>,
}

impl Level {
    fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.kv.is_empty() && self.writes.is_empty()
    }

    fn merge(&mut self, other: Level) {
        let base = self.writes.len();
        self.objects.extend(other.objects);
        self.kv.extend(other.kv);
        self.allocs.extend(other.allocs);
        self.frees.extend(other.frees);
        self.writes.extend(other.writes);
        self.fresh.extend(
            other
                .fresh
                .into_iter()
                .map(|(p, (w, o))| (p, (w + base, o))),
        );
    }

    fn fresh_chunk(&self, c: &Chunk) -> Option<&[u8]> {
        let (w, off) = *self.fresh.get(&c.phys)?;
        self.writes
            .get(w)?
            .buf
            .as_slice()
            .get(off..off + c.len as usize)
    }
}

impl Inner {
    /// Applies and commits a group of transactions; one result per transaction.
    fn commit_batch(&self, txns: Vec<Transaction>) -> Vec<Result<(), StoreError>> {
        if let Some(reason) = self.poisoned() {
            return txns
                .iter()
                .map(|_| Err(StoreError::Poisoned(reason.clone())))
                .collect();
        }
        self.try_reclaim();
        let mut batch = Level::default();
        let mut results = Vec::with_capacity(txns.len());
        for txn in txns {
            let mut ctx = TxnCtx {
                inner: self,
                batch: &batch,
                own: Level::default(),
            };
            match ctx.apply(txn.ops) {
                Ok(()) => {
                    let own = ctx.own;
                    batch.merge(own);
                    results.push(Ok(()));
                }
                Err(e) => {
                    let own = ctx.own;
                    self.rollback(own);
                    Counters::add(&self.counters.txns_failed, 1);
                    results.push(Err(e));
                }
            }
        }
        if batch.is_empty() {
            return results;
        }
        // The ring may have failed while this group read data for a
        // read-modify-write: then nothing of it may be acknowledged, not even
        // metadata-only transactions that never touch the ring.
        let n_ok = results.iter().filter(|r| r.is_ok()).count() as u64;
        if let Some(reason) = self.poisoned() {
            self.rollback(batch);
            Counters::add(&self.counters.txns_failed, n_ok);
            return results
                .into_iter()
                .map(|r| r.and(Err(StoreError::Poisoned(reason.clone()))))
                .collect();
        }
        match self.persist(&mut batch) {
            Ok(()) => {
                Counters::add(&self.counters.txns_committed, n_ok);
                self.after_commit(batch);
            }
            Err((e, committed_unknown)) => {
                if committed_unknown {
                    self.poison(e.to_string());
                } else {
                    // Nothing became visible: the allocations can be reused.
                    self.rollback(batch);
                }
                Counters::add(&self.counters.txns_failed, n_ok);
                let msg = e.to_string();
                let mut first = Some(e);
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(first.take().unwrap_or_else(|| {
                        StoreError::io(
                            "commit a transaction group",
                            std::io::Error::other(msg.clone()),
                        )
                    }));
                }
            }
        }
        results
    }

    /// Data, data sync, KV commit. On error, says whether the KV state is unknown.
    fn persist(&self, batch: &mut Level) -> Result<(), (StoreError, bool)> {
        let writes = std::mem::take(&mut batch.writes);
        if !writes.is_empty() {
            let bytes: u64 = writes.iter().map(|w| w.buf.len() as u64).sum();
            let ops = writes
                .into_iter()
                .map(|w| IoOp::Write {
                    offset: w.phys,
                    buf: w.buf,
                })
                .collect();
            self.io
                .run(ops)
                .map_err(|e| (StoreError::io("write data to the block file", e), false))?;
            Counters::add(&self.counters.bytes_written, bytes);
            self.sync_block()
                .map_err(|e| (StoreError::io("fdatasync the block file", e), true))?;
            Counters::add(&self.counters.data_syncs, 1);
        }
        let mut wb = self.db.batch().durability(Some(PersistMode::SyncAll));
        for (key, entry) in &batch.objects {
            match &entry.state {
                Some(st) => wb.insert(
                    &self.ks.objects,
                    keys::object_key(key),
                    record::encode_record(st),
                ),
                None if entry.existed => wb.remove(&self.ks.objects, keys::object_key(key)),
                None => {}
            }
        }
        for ((space, k), v) in &batch.kv {
            let ks = self.keyspace(*space);
            match v {
                Some(v) => wb.insert(ks, k.as_slice(), v.as_ref()),
                None => wb.remove(ks, k.as_slice()),
            }
        }
        let kv_failed = |e| (StoreError::kv("commit a transaction group", e), true);
        fail::fail_point!(failpoints::KV_COMMIT, |arg| Err(kv_failed(
            fjall::Error::Io(failpoints::injected(failpoints::KV_COMMIT, arg))
        )));
        wb.commit().map_err(kv_failed)?;
        Counters::add(&self.counters.kv_commits, 1);
        Ok(())
    }

    /// fdatasync of the block file (behind the `store::data_sync` failpoint).
    fn sync_block(&self) -> std::io::Result<()> {
        fail::fail_point!(failpoints::DATA_SYNC, |arg| Err(failpoints::injected(
            failpoints::DATA_SYNC,
            arg
        )));
        self.block.sync_data()
    }

    fn after_commit(&self, batch: Level) {
        {
            let mut counts = self.pg_counts.lock().unwrap_or_else(|e| e.into_inner());
            for (key, e) in &batch.objects {
                let after = e.state.is_some();
                if after != e.existed {
                    let c = counts.entry(key.pg).or_default();
                    if after {
                        *c += 1;
                    } else {
                        *c = c.saturating_sub(1);
                    }
                }
            }
            counts.retain(|_, n| *n > 0);
        }
        self.space().pending_free.extend(batch.frees);
        self.try_reclaim();
    }

    fn rollback(&self, level: Level) {
        let mut space = self.space();
        for (s, n) in level.allocs {
            if let Err(o) = space.alloc.release(s, n) {
                tracing::error!(
                    start = o.start,
                    len = o.len,
                    "rollback released a range twice"
                );
            }
        }
    }

    fn keyspace(&self, s: Space) -> &Keyspace {
        match s {
            Space::Xattr => &self.ks.xattrs,
            Space::Omap => &self.ks.omap,
        }
    }

    /// Allocates `units` contiguous units, recycling pending frees if needed.
    fn alloc_units(&self, units: u64) -> Option<u64> {
        if let Some(s) = self.space().alloc.alloc(units) {
            return Some(s);
        }
        if self.reclaim_blocking() {
            return self.space().alloc.alloc(units);
        }
        None
    }
}

/// One transaction being applied on top of the batch so far.
struct TxnCtx<'a> {
    inner: &'a Inner,
    batch: &'a Level,
    own: Level,
}

/// One chunk to (re)write.
struct Plan<'d> {
    idx: u64,
    new_len: usize,
    old: Option<Chunk>,
    /// Old bytes kept at the start of the chunk.
    keep: Option<Vec<u8>>,
    /// New bytes placed at this offset in the chunk.
    patch: Option<(usize, &'d [u8])>,
}

impl TxnCtx<'_> {
    fn apply(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let thr = self.inner.cfg.inline_threshold;
        for op in ops {
            match op {
                StoreOp::Touch { key } => {
                    let st = self.take_or_create(&key)?;
                    self.put(&key, Some(st));
                }
                StoreOp::Write { key, offset, data } => {
                    let mut st = self.take_or_create(&key)?;
                    if !data.is_empty() {
                        self.write(&key, &mut st, offset, &data, thr)?;
                    }
                    self.put(&key, Some(st));
                }
                StoreOp::WriteFull { key, data } => {
                    let mut st = self.take_or_create(&key)?;
                    self.free_all(&st);
                    st = ObjState::empty();
                    if !data.is_empty() {
                        self.write(&key, &mut st, 0, &data, thr)?;
                    }
                    self.put(&key, Some(st));
                }
                StoreOp::Truncate { key, size } => {
                    let mut st = self.take_or_create(&key)?;
                    self.truncate(&key, &mut st, size, thr)?;
                    self.put(&key, Some(st));
                }
                StoreOp::Remove { key } => self.remove_object(&key)?,
                StoreOp::SetXattrs { key, attrs } => {
                    let st = self.take_or_create(&key)?;
                    self.put(&key, Some(st));
                    for (name, v) in attrs {
                        self.own.kv.insert(
                            (Space::Xattr, keys::sub_key(&key, name.as_bytes())),
                            Some(v),
                        );
                    }
                }
                StoreOp::RmXattr { key, name } => {
                    if self.exists(&key)? {
                        self.own
                            .kv
                            .insert((Space::Xattr, keys::sub_key(&key, name.as_bytes())), None);
                    }
                }
                StoreOp::OmapSet { key, entries } => {
                    let st = self.take_or_create(&key)?;
                    self.put(&key, Some(st));
                    for (k, v) in entries {
                        self.own
                            .kv
                            .insert((Space::Omap, keys::sub_key(&key, &k)), Some(v));
                    }
                }
                StoreOp::OmapRm { key, keys: ks } => {
                    if self.exists(&key)? {
                        for k in ks {
                            self.own
                                .kv
                                .insert((Space::Omap, keys::sub_key(&key, &k)), None);
                        }
                    }
                }
                StoreOp::OmapRmRange { key, start, end } => {
                    if self.exists(&key)? {
                        let lower = keys::sub_key(&key, &start);
                        let upper = if end.is_empty() {
                            keys::prefix_successor(&keys::sub_prefix(&key))
                        } else {
                            Some(keys::sub_key(&key, &end))
                        };
                        self.delete_kv_range(Space::Omap, lower, upper)?;
                    }
                }
                StoreOp::OmapClear { key } => {
                    if self.exists(&key)? {
                        let p = keys::sub_prefix(&key);
                        let upper = keys::prefix_successor(&p);
                        self.delete_kv_range(Space::Omap, p, upper)?;
                    }
                }
                StoreOp::RemoveCollection { pg } => {
                    for key in self.collection_objects(pg)? {
                        self.remove_object(&key)?;
                    }
                }
            }
        }
        Ok(())
    }

    // ---- object state across the levels ------------------------------------

    fn entry(&mut self, key: &ObjectKey) -> Result<&mut ObjEntry, StoreError> {
        if !self.own.objects.contains_key(key) {
            let e = match self.batch.objects.get(key) {
                Some(e) => e.clone(),
                None => {
                    let raw = self
                        .inner
                        .ks
                        .objects
                        .get(keys::object_key(key))
                        .map_err(|e| StoreError::kv(format!("read the record of {key}"), e))?;
                    let st = Inner::decode_loaded(key, raw.as_deref())?;
                    ObjEntry {
                        existed: st.is_some(),
                        state: st,
                    }
                }
            };
            self.own.objects.insert(key.clone(), e);
        }
        self.own
            .objects
            .get_mut(key)
            .ok_or_else(|| StoreError::NotFound { key: key.clone() })
    }

    fn exists(&mut self, key: &ObjectKey) -> Result<bool, StoreError> {
        Ok(self.entry(key)?.state.is_some())
    }

    fn take_or_create(&mut self, key: &ObjectKey) -> Result<ObjState, StoreError> {
        Ok(self
            .entry(key)?
            .state
            .take()
            .unwrap_or_else(ObjState::empty))
    }

    fn put(&mut self, key: &ObjectKey, st: Option<ObjState>) {
        if let Some(e) = self.own.objects.get_mut(key) {
            e.state = st;
        }
    }

    fn remove_object(&mut self, key: &ObjectKey) -> Result<(), StoreError> {
        let Some(st) = self.entry(key)?.state.take() else {
            return Ok(());
        };
        self.free_all(&st);
        let p = keys::sub_prefix(key);
        let upper = keys::prefix_successor(&p);
        self.delete_kv_range(Space::Xattr, p.clone(), upper.clone())?;
        self.delete_kv_range(Space::Omap, p, upper)
    }

    /// Every object of `pg` that exists at this point of the batch.
    fn collection_objects(&self, pg: PgId) -> Result<Vec<ObjectKey>, StoreError> {
        let mut found: BTreeMap<ObjectKey, bool> = BTreeMap::new();
        for item in self.inner.ks.objects.prefix(keys::pg_prefix(pg)) {
            let k = item
                .key()
                .map_err(|e| StoreError::kv(format!("list objects of {pg}"), e))?;
            found.insert(keys::decode_object_key(&k)?, true);
        }
        for level in [self.batch, &self.own] {
            for (k, e) in level.objects.iter().filter(|(k, _)| k.pg == pg) {
                found.insert(k.clone(), e.state.is_some());
            }
        }
        Ok(found
            .into_iter()
            .filter(|(_, v)| *v)
            .map(|(k, _)| k)
            .collect())
    }

    /// Marks every key in `[lower, upper)` of `space` deleted, as seen through
    /// the KV, the batch and this transaction.
    fn delete_kv_range(
        &mut self,
        space: Space,
        lower: Vec<u8>,
        upper: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        if upper.as_ref().is_some_and(|u| lower >= *u) {
            return Ok(());
        }
        let mut present: BTreeSet<Vec<u8>> = BTreeSet::new();
        let ub = match &upper {
            Some(u) => Bound::Excluded(u.clone()),
            None => Bound::Unbounded,
        };
        for item in self
            .inner
            .keyspace(space)
            .range((Bound::Included(lower.clone()), ub))
        {
            let k = item
                .key()
                .map_err(|e| StoreError::kv("scan a key range", e))?;
            present.insert(k.to_vec());
        }
        for level in [self.batch, &self.own] {
            let range = level
                .kv
                .range((Bound::Included((space, lower.clone())), Bound::Unbounded))
                .take_while(|((s, k), _)| {
                    *s == space && upper.as_ref().is_none_or(|u| k.as_slice() < u.as_slice())
                });
            for ((_, k), v) in range {
                if v.is_some() {
                    present.insert(k.clone());
                } else {
                    present.remove(k);
                }
            }
        }
        for k in present {
            self.own.kv.insert((space, k), None);
        }
        Ok(())
    }

    // ---- data ---------------------------------------------------------------

    fn free_all(&mut self, st: &ObjState) {
        if let ObjData::Chunks(m) = &st.data {
            for c in m.values() {
                self.free_chunk(c);
            }
        }
    }

    fn free_chunk(&mut self, c: &Chunk) {
        self.own.frees.push((c.phys / UNIT, c.alloc_len() / UNIT));
    }

    fn write(
        &mut self,
        key: &ObjectKey,
        st: &mut ObjState,
        offset: u64,
        data: &[u8],
        thr: u64,
    ) -> Result<(), StoreError> {
        let end = offset + data.len() as u64;
        let new_size = st.size.max(end);
        if let ObjData::Inline(v) = &mut st.data {
            if new_size <= thr {
                v.resize(new_size as usize, 0);
                v[offset as usize..end as usize].copy_from_slice(data);
                st.size = new_size;
                return Ok(());
            }
            // Grows past the inline threshold: move the data to chunks.
            let old = std::mem::take(v);
            st.data = ObjData::Chunks(BTreeMap::new());
            if !old.is_empty() {
                self.write_chunks(key, st, 0, &old)?;
            }
        }
        self.write_chunks(key, st, offset, data)?;
        st.size = new_size;
        Ok(())
    }

    fn truncate(
        &mut self,
        key: &ObjectKey,
        st: &mut ObjState,
        size: u64,
        thr: u64,
    ) -> Result<(), StoreError> {
        if size == st.size {
            return Ok(());
        }
        if let ObjData::Inline(v) = &mut st.data {
            if size <= thr {
                v.resize(size as usize, 0);
                st.size = size;
                return Ok(());
            }
            let old = std::mem::take(v);
            st.data = ObjData::Chunks(BTreeMap::new());
            if !old.is_empty() {
                self.write_chunks(key, st, 0, &old)?;
            }
            st.size = size;
            return Ok(());
        }
        if size > st.size {
            // Sparse growth: the new range reads as zeros.
            st.size = size;
            return Ok(());
        }
        let ObjData::Chunks(m) = &mut st.data else {
            return Ok(());
        };
        let doomed: Vec<u64> = m.range(size.div_ceil(CHUNK)..).map(|(i, _)| *i).collect();
        let mut freed = Vec::new();
        for i in doomed {
            if let Some(c) = m.remove(&i) {
                freed.push(c);
            }
        }
        for c in &freed {
            self.free_chunk(c);
        }
        // The chunk straddling the new end keeps only its bytes below `size`.
        let idx = size / CHUNK;
        let straddle = m
            .get(&idx)
            .filter(|c| idx * CHUNK + u64::from(c.len) > size)
            .cloned();
        if let Some(c) = straddle {
            let new_len = (size - idx * CHUNK) as usize;
            let mut old = self.read_chunks(key, &[(idx, c.clone())])?;
            let mut keep = old.pop().unwrap_or_default();
            keep.truncate(new_len);
            self.store_chunks(
                st,
                vec![Plan {
                    idx,
                    new_len,
                    old: Some(c),
                    keep: Some(keep),
                    patch: None,
                }],
            )?;
        }
        st.size = size;
        if size <= thr {
            // Small again: back inline.
            let data = self.read_chunks_all(key, st)?;
            self.free_all(st);
            st.data = ObjData::Inline(data);
        }
        Ok(())
    }

    /// All data of a chunked object as one buffer (for conversion to inline).
    fn read_chunks_all(&mut self, key: &ObjectKey, st: &ObjState) -> Result<Vec<u8>, StoreError> {
        let mut out = vec![0u8; st.size as usize];
        let ObjData::Chunks(m) = &st.data else {
            return Ok(out);
        };
        let list: Vec<(u64, Chunk)> = m.iter().map(|(i, c)| (*i, c.clone())).collect();
        let datas = self.read_chunks(key, &list)?;
        for ((idx, _), d) in list.iter().zip(datas) {
            let cs = (idx * CHUNK) as usize;
            let n = d.len().min(out.len().saturating_sub(cs));
            out[cs..cs + n].copy_from_slice(&d[..n]);
        }
        Ok(out)
    }

    /// Writes `data` at `offset` of a chunked object (copy-on-write per chunk).
    fn write_chunks(
        &mut self,
        key: &ObjectKey,
        st: &mut ObjState,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let ObjData::Chunks(m) = &st.data else {
            return Ok(());
        };
        let end = offset + data.len() as u64;
        let first = offset / CHUNK;
        let last = (end - 1) / CHUNK;
        let mut plans = Vec::with_capacity((last - first + 1) as usize);
        let mut rmw = Vec::new();
        for idx in first..=last {
            let cs = idx * CHUNK;
            let ws = (offset.max(cs) - cs) as usize;
            let we = (end.min(cs + CHUNK) - cs) as usize;
            let old = m.get(&idx).cloned();
            let old_len = old.as_ref().map_or(0, |c| c.len as usize);
            if let Some(c) = &old
                && !(ws == 0 && we >= old_len)
            {
                rmw.push((idx, c.clone()));
            }
            let src = (cs + ws as u64 - offset) as usize;
            plans.push(Plan {
                idx,
                new_len: old_len.max(we),
                old,
                keep: None,
                patch: Some((ws, &data[src..src + (we - ws)])),
            });
        }
        if !rmw.is_empty() {
            let olds = self.read_chunks(key, &rmw)?;
            for ((idx, _), d) in rmw.iter().zip(olds) {
                if let Some(p) = plans.iter_mut().find(|p| p.idx == *idx) {
                    p.keep = Some(d);
                }
            }
        }
        self.store_chunks(st, plans)
    }

    /// Reads (and verifies) chunks, from this batch's buffers or the device.
    fn read_chunks(
        &mut self,
        key: &ObjectKey,
        list: &[(u64, Chunk)],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(list.len());
        let mut ops = Vec::new();
        let mut from_dev = Vec::new();
        for (i, (_, c)) in list.iter().enumerate() {
            let fresh = self
                .own
                .fresh_chunk(c)
                .or_else(|| self.batch.fresh_chunk(c));
            match fresh {
                Some(d) => out.push(Some(d.to_vec())),
                None => {
                    out.push(None);
                    ops.push(IoOp::Read {
                        offset: c.phys,
                        len: c.alloc_len() as usize,
                    });
                    from_dev.push(i);
                }
            }
        }
        if !ops.is_empty() {
            let done = self
                .inner
                .io
                .run(ops)
                .map_err(|e| StoreError::io(format!("read {key} for read-modify-write"), e))?;
            Counters::add(&self.inner.counters.rmw_chunk_reads, done.len() as u64);
            for (i, d) in from_dev.into_iter().zip(done) {
                if let IoDone::Read(buf) = d {
                    Counters::add(&self.inner.counters.bytes_read, buf.len() as u64);
                    out[i] = Some(buf.as_slice()[..list[i].1.len as usize].to_vec());
                }
            }
        }
        let mut res = Vec::with_capacity(list.len());
        for ((idx, c), d) in list.iter().zip(out) {
            let d = d.ok_or_else(|| {
                StoreError::io("read chunk", std::io::Error::other("missing read result"))
            })?;
            if blake3::hash(&d).as_bytes() != &c.hash {
                return Err(StoreError::Corrupt {
                    key: key.clone(),
                    offset: idx * CHUNK,
                });
            }
            res.push(d);
        }
        Ok(res)
    }

    /// Allocates fresh extents for the planned chunks, fills aligned buffers,
    /// updates the chunk map and frees the replaced chunks.
    fn store_chunks(&mut self, st: &mut ObjState, plans: Vec<Plan<'_>>) -> Result<(), StoreError> {
        for group in plans.chunks(MAX_RUN_CHUNKS) {
            let lens: Vec<u64> = group
                .iter()
                .map(|p| round_up_unit(p.new_len as u64))
                .collect();
            let phys = self.alloc_chunks(&lens)?;
            // One buffer per physically contiguous run.
            let mut i = 0;
            while i < group.len() {
                let mut j = i + 1;
                while j < group.len() && phys[j - 1] + lens[j - 1] == phys[j] {
                    j += 1;
                }
                let run_start = phys[i];
                let run_len: u64 = lens[i..j].iter().sum();
                let mut buf = AlignedBuf::zeroed(run_len as usize);
                let widx = self.own.writes.len();
                for k in i..j {
                    let p = &group[k];
                    let off = (phys[k] - run_start) as usize;
                    let dst = &mut buf.as_mut_slice()[off..off + p.new_len];
                    if let Some(keep) = &p.keep {
                        dst[..keep.len()].copy_from_slice(keep);
                    }
                    if let Some((ws, src)) = p.patch {
                        dst[ws..ws + src.len()].copy_from_slice(src);
                    }
                    let hash = *blake3::hash(dst).as_bytes();
                    let chunk = Chunk {
                        phys: phys[k],
                        len: p.new_len as u32,
                        hash,
                    };
                    self.own.fresh.insert(phys[k], (widx, off));
                    if let ObjData::Chunks(m) = &mut st.data {
                        m.insert(p.idx, chunk);
                    }
                    if let Some(old) = &p.old {
                        self.free_chunk(old);
                    }
                }
                self.own.writes.push(PendingWrite {
                    phys: run_start,
                    buf,
                });
                i = j;
            }
        }
        Ok(())
    }

    /// Physical offsets for chunks of the given allocation lengths: one
    /// contiguous extent if possible, else chunk by chunk.
    fn alloc_chunks(&mut self, lens: &[u64]) -> Result<Vec<u64>, StoreError> {
        let total: u64 = lens.iter().sum();
        if let Some(start) = self.inner.alloc_units(total / UNIT) {
            self.own.allocs.push((start, total / UNIT));
            let mut at = start * UNIT;
            return Ok(lens
                .iter()
                .map(|l| {
                    let p = at;
                    at += l;
                    p
                })
                .collect());
        }
        let mut out = Vec::with_capacity(lens.len());
        for l in lens {
            match self.inner.alloc_units(l / UNIT) {
                Some(s) => {
                    self.own.allocs.push((s, l / UNIT));
                    out.push(s * UNIT);
                }
                None => {
                    let available = self.inner.space().alloc.free_units() * UNIT;
                    return Err(StoreError::NoSpace {
                        needed: *l,
                        available,
                    });
                }
            }
        }
        Ok(out)
    }
}
