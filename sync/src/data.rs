//! Data sync from one source zone: full sync of every bucket shard, then
//! incremental sync driven by the source's data log, a periodic comparison
//! of every bucket shard's log with its marker (changes whose hint was lost
//! in a crash), and background retries of the sync error log.

use crate::drive::{Exec, Until, drive};
use crate::machine::{Item, Phase, ShardMachine, ShardStatus, Tuning};
use crate::remote::RemoteZone;
use crate::status::{ConflictRecord, ErrorRecord, GlobalStatus, StatusStore, data_status};
use crate::{SyncError, SyncSettings, telemetry};
use meridian_zone::log::LogKind;
use meridian_zone::replica::{Applied, Incoming, Plan, Skip, Stamp};
use meridian_zone::sync_policy::{self, Verdict, ZoneRef};
use meridian_zone::{BilogEntry, BilogOp, BucketInfo, DatalogEntry, IndexEntry, Zone, ZoneError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Everything data sync from one source needs.
pub struct DataSync {
    /// The local zone.
    pub local: Zone,
    /// The source zone.
    pub source: RemoteZone,
    /// Sync state.
    pub status: StatusStore,
    /// Settings.
    pub settings: SyncSettings,
    /// This worker's name (leases).
    pub holder: String,
    /// Bucket shards being synced in this process (one driver each).
    busy: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per data log shard: woken when the source's position moved.
    bells: Vec<Notify>,
    /// Cleared to stop.
    running: std::sync::atomic::AtomicBool,
    /// Bucket index log entries listed and not yet applied, all shards.
    pending: std::sync::atomic::AtomicUsize,
}

/// How a bucket shard with no sync status yet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NewShard {
    /// Data sync's full sync: list the source's versions, then follow the
    /// log from the position read before the listing.
    FullSync,
    /// Met later (a data log entry, the reconcile pass): follow the whole log.
    FromLogStart,
}

/// One item of a bucket shard: a listed version (full sync) or a log entry.
#[derive(Debug, Clone)]
pub struct BucketItem {
    pos: String,
    what: BucketChange,
}

#[derive(Debug, Clone)]
enum BucketChange {
    Listed(Box<IndexEntry>, Known),
    Logged(Box<BilogEntry>),
}

/// What this zone's index said about a listed version when its page was
/// listed (one index read per page instead of one per version).
#[derive(Debug, Clone)]
enum Known {
    /// Not looked up: decide before fetching.
    Unchecked,
    /// This zone lacks it: fetch (the apply decides again).
    Missing,
    /// This zone has it or something that wins over it: no fetch.
    Skip(Skip),
}

impl Item for BucketItem {
    fn pos(&self) -> &str {
        &self.pos
    }
    fn key(&self) -> &str {
        match &self.what {
            BucketChange::Listed(e, _) => &e.key,
            BucketChange::Logged(b) => &b.key,
        }
    }
}

/// One data log entry: a bucket shard to bring up to date.
#[derive(Debug, Clone)]
pub struct ShardRef {
    pos: String,
    key: String,
    entry: DatalogEntry,
}

impl Item for ShardRef {
    fn pos(&self) -> &str {
        &self.pos
    }
    fn key(&self) -> &str {
        &self.key
    }
}

fn metric_labels(source: &RemoteZone) -> [(&'static str, String); 1] {
    telemetry::source_labels(&source.name)
}

impl DataSync {
    /// Data sync of `local` from `source`.
    pub fn new(
        local: Zone,
        source: RemoteZone,
        settings: SyncSettings,
        holder: String,
    ) -> Arc<Self> {
        let shards = local.params().datalog_shards.max(1) as usize;
        telemetry::register_data_source(&source.name);
        Arc::new(Self {
            status: StatusStore::new(local.clone()),
            local,
            source,
            settings,
            holder,
            busy: Mutex::new(HashMap::new()),
            bells: (0..shards).map(|_| Notify::new()).collect(),
            running: std::sync::atomic::AtomicBool::new(true),
            pending: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Stops the loops (they finish their current step).
    pub fn stop(&self) {
        self.running
            .store(false, std::sync::atomic::Ordering::SeqCst);
        for b in &self.bells {
            b.notify_one();
        }
    }

    fn running(&self) -> bool {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn tuning(&self) -> Tuning {
        Tuning {
            window: self.settings.window.max(1),
            ..Tuning::default()
        }
    }

    /// Runs until stopped: init, full sync, then incremental sync with its
    /// reconcile and error-retry loops.
    pub async fn run(self: Arc<Self>) {
        let object = data_status(&self.source.id);
        let mut backoff = Duration::from_millis(500);
        while self.running() {
            let r = self.step(&object).await;
            match r {
                Ok(true) => backoff = Duration::from_millis(500),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(source = %self.source.name, error = %e, "data sync step failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// One phase step; false once stopped.
    async fn step(self: &Arc<Self>, object: &str) -> Result<bool, SyncError> {
        let mut g = self.status.global(object).await?;
        match g.phase {
            Phase::Init => {
                if !self.lease("init").await? {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Ok(true);
                }
                let positions = self
                    .source
                    .log_positions(LogKind::Data, &[], Duration::ZERO)
                    .await?;
                let shards: BTreeMap<u32, ShardStatus> = positions
                    .into_iter()
                    .enumerate()
                    .map(|(n, p)| {
                        (
                            n as u32,
                            ShardStatus {
                                phase: Phase::Incremental,
                                marker: p,
                                ..Default::default()
                            },
                        )
                    })
                    .collect();
                self.status.set_shards(object, &shards).await?;
                g.phase = Phase::Full;
                self.status.set_global(object, &g).await?;
                tracing::info!(source = %self.source.name, "data sync: full sync starts");
                Ok(true)
            }
            Phase::Full => {
                if !self.lease("full").await? {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Ok(true);
                }
                self.full_sync(object, &mut g).await?;
                g.phase = Phase::Incremental;
                self.status.set_global(object, &g).await?;
                tracing::info!(source = %self.source.name, buckets = g.full_done, "data sync: full sync done; incremental sync starts");
                Ok(true)
            }
            Phase::Incremental => {
                self.incremental(object).await?;
                Ok(self.running())
            }
        }
    }

    async fn lease(&self, what: &str) -> Result<bool, SyncError> {
        self.status
            .lease(
                &format!("data.{}.{what}", self.source.id),
                &self.holder,
                self.settings.lease.as_millis() as u64,
            )
            .await
    }

    /// Every bucket of the source, every shard, brought to the source's
    /// position; resumable by bucket name.
    async fn full_sync(
        self: &Arc<Self>,
        object: &str,
        g: &mut GlobalStatus,
    ) -> Result<(), SyncError> {
        let mut after = g.full_marker.clone();
        loop {
            let (names, more) = self.source.list_metadata("bucket", &after, 100).await?;
            g.full_total = g.full_done + names.len() as u64;
            for name in &names {
                if !self.running() {
                    return Err(SyncError::Stopped);
                }
                if let Some(info) = self
                    .source
                    .get_metadata::<BucketInfo>("bucket", name)
                    .await?
                {
                    let shards = (0..info.num_shards).map(|s| {
                        let info = info.clone();
                        async move { self.sync_shard(&info, s, NewShard::FullSync).await }
                    });
                    for r in futures::future::join_all(shards).await {
                        r?;
                    }
                }
                g.full_done += 1;
                g.full_marker = name.clone();
                self.status.set_global(object, g).await?;
                metrics::gauge!(
                    "meridian_sync_full_sync_buckets_done",
                    &metric_labels(&self.source)
                )
                .set(g.full_done as f64);
            }
            match names.last() {
                Some(l) if more => after = l.clone(),
                _ => return Ok(()),
            }
        }
    }

    /// The incremental loops: one per data log shard, the position watcher,
    /// the reconcile pass and the error retries.
    async fn incremental(self: &Arc<Self>, object: &str) -> Result<(), SyncError> {
        let shards = self.status.shards(object).await?;
        let mut tasks = Vec::new();
        for (n, st) in shards {
            let me = self.clone();
            let object = object.to_string();
            tasks.push(tokio::spawn(async move {
                me.datalog_shard(&object, n, st).await
            }));
        }
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.watch().await }));
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.reconcile_loop().await }));
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.retry_errors_loop().await }));
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }

    /// Long-polls the source's data log positions and wakes the shards that moved.
    async fn watch(self: Arc<Self>) {
        let mut known: Vec<String> = Vec::new();
        while self.running() {
            match self
                .source
                .log_positions(LogKind::Data, &known, self.settings.long_poll)
                .await
            {
                Ok(now) => {
                    telemetry::source_reachable(&self.source.name, true);
                    for (i, p) in now.iter().enumerate() {
                        if known.get(i) != Some(p)
                            && let Some(b) = self.bells.get(i)
                        {
                            b.notify_one();
                        }
                    }
                    known = now;
                }
                Err(e) => {
                    telemetry::source_reachable(&self.source.name, false);
                    tracing::debug!(source = %self.source.name, error = %e, "data log watch failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    // Wake everyone: their own reads tell them how things are.
                    for b in &self.bells {
                        b.notify_one();
                    }
                }
            }
        }
    }

    async fn datalog_shard(self: Arc<Self>, object: &str, n: u32, st: ShardStatus) {
        let lease = format!("data.{}.shard.{n}", self.source.id);
        while self.running() {
            match self
                .status
                .lease(&lease, &self.holder, self.settings.lease.as_millis() as u64)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tokio::time::sleep(self.settings.lease / 2).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sync lease");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            let st = match self.status.shards(object).await {
                Ok(m) => m.get(&n).cloned().unwrap_or_else(|| st.clone()),
                Err(_) => st.clone(),
            };
            let mut m = ShardMachine::new(st, self.tuning());
            let exec = DatalogExec {
                sync: &self,
                object,
                shard: n,
                renewed: Mutex::new(std::time::Instant::now()),
            };
            if let Err(e) = drive(&mut m, &exec, Until::Stopped).await {
                tracing::warn!(source = %self.source.name, shard = n, error = %e, "data log shard stopped; restarting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let _ = self.status.release(&lease, &self.holder).await;
    }

    /// Brings one bucket shard up to the source's current state. A shard
    /// met for the first time after data sync's full sync follows its
    /// source bilog from the start: the bilog holds every change since the
    /// bucket was created (logs are not trimmed while zones have peers), so
    /// nothing — a removal in particular — is skipped, as a full listing
    /// would skip it.
    pub async fn sync_bucket_shard(
        &self,
        source_info: &BucketInfo,
        shard: u32,
    ) -> Result<(), SyncError> {
        self.sync_shard(source_info, shard, NewShard::FromLogStart)
            .await
    }

    async fn sync_shard(
        &self,
        source_info: &BucketInfo,
        shard: u32,
        new: NewShard,
    ) -> Result<(), SyncError> {
        let cached = self.local.bucket(&source_info.name).await.ok();
        let found = match cached {
            Some(b) if b.id == source_info.id => Ok(((*b).clone(), 0)),
            _ => self.local.bucket_fresh(&source_info.name).await,
        };
        let local = match found {
            Ok((b, _)) if b.id == source_info.id => b,
            Ok((b, _)) => {
                return Err(SyncError::Local(format!(
                    "bucket {} is instance {} here but {} in zone {}",
                    b.name, b.id, source_info.id, self.source.name
                )));
            }
            Err(ZoneError::NoSuchBucket(_)) => {
                return Err(SyncError::Local(format!(
                    "bucket {} is not here yet (metadata sync has not created it)",
                    source_info.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let key = crate::status::bucket_shard_key(&local.id, shard);
        let lock = self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _held = lock.lock().await;
        let r = self.sync_shard_held(&local, shard, new).await;
        drop(_held);
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if busy.get(&key).is_some_and(|l| Arc::strong_count(l) == 1) {
            busy.remove(&key);
        }
        r
    }

    /// `sync_shard` with the shard's lock held.
    async fn sync_shard_held(
        &self,
        local: &BucketInfo,
        shard: u32,
        new: NewShard,
    ) -> Result<(), SyncError> {
        let verdict = self.verdict(local);
        let excluded = !verdict.syncs();
        let st = match self
            .status
            .bucket_shard_if_any(&self.source.id, &local.id, shard)
            .await?
        {
            // Sync of the bucket was disabled: start over from a full sync.
            Some(st) if st.disabled && !excluded => ShardStatus::default(),
            Some(st) => st,
            None if new == NewShard::FromLogStart => ShardStatus {
                phase: Phase::Incremental,
                ..Default::default()
            },
            None => ShardStatus::default(),
        };
        if excluded {
            // `bucket sync disable` or a sync policy: the bucket stays
            // local. Remember that changes were passed over, so enabling
            // it again full-syncs.
            if !st.disabled {
                let paused = ShardStatus {
                    disabled: true,
                    ..st
                };
                self.status
                    .set_bucket_shard(&self.source.id, &local.id, shard, &paused)
                    .await?;
            }
            return Ok(());
        }
        let full = st.phase != Phase::Incremental;
        let mut tuning = self.tuning();
        if full {
            tuning.window = self.settings.full_window.max(1);
        }
        let mut m = ShardMachine::new(st, tuning);
        // Versions fetched while an index commit is in flight go into the
        // next one together, in full sync and incremental alike: a busy
        // shard's log brings many keys at once too. The machine still
        // applies one entry per key at a time, so a key's changes keep the
        // source's order.
        let batch = Some(crate::batch::ApplyBatcher::start(
            self.local.clone(),
            local.clone(),
            shard,
        ));
        let exec = BucketExec {
            sync: self,
            bucket: local.clone(),
            shard,
            batch,
            verdict,
        };
        drive(&mut m, &exec, Until::CaughtUp).await
    }

    /// Periodically: every bucket shard whose source log moved past its
    /// marker is synced (changes whose data log hint was lost).
    async fn reconcile_loop(self: Arc<Self>) {
        while self.running() {
            tokio::time::sleep(self.settings.reconcile).await;
            if !self.running() {
                return;
            }
            match self.lease("reconcile").await {
                Ok(true) => {}
                _ => continue,
            }
            match self.reconcile().await {
                Ok(n) if n > 0 => {
                    tracing::info!(source = %self.source.name, shards = n, "reconcile found bucket shards behind their source")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(source = %self.source.name, error = %e, "reconcile pass failed")
                }
            }
        }
    }

    /// What `bucket sync disable` and the sync policies (the zonegroup's in
    /// the current period, the bucket's own) say about syncing `bucket` from
    /// the source into here.
    pub fn verdict(&self, bucket: &BucketInfo) -> Verdict {
        let params = self.local.params();
        let zg =
            crate::agent::SyncPlan::zonegroup_policy(&self.local.cluster().map().map, &params.zone);
        let local_id = self.local.zone_id();
        sync_policy::bucket_verdict(
            zg.as_ref(),
            bucket,
            ZoneRef {
                name: &self.source.name,
                id: &self.source.id,
            },
            ZoneRef {
                name: &params.zone,
                id: &local_id,
            },
        )
    }

    /// The bucket shards whose source log has entries after their markers.
    pub async fn behind_shards(&self) -> Result<Vec<(BucketInfo, u32)>, SyncError> {
        let states = self.status.bucket_shards(&self.source.id).await?;
        let mut ask = Vec::new();
        let mut resync = Vec::new();
        for b in self.local.list_buckets(None).await? {
            let Ok((info, _)) = self.local.bucket_fresh(&b.name).await else {
                continue;
            };
            if !self.verdict(&info).syncs() {
                continue;
            }
            for s in 0..info.num_shards {
                // A shard never synced is compared from the log's start.
                let st = states
                    .get(&crate::status::bucket_shard_key(&info.id, s))
                    .cloned()
                    .unwrap_or(ShardStatus {
                        phase: Phase::Incremental,
                        ..Default::default()
                    });
                if st.disabled {
                    // Sync enabled again: behind until its full sync ran.
                    resync.push((info.clone(), s));
                    continue;
                }
                if st.phase != Phase::Incremental {
                    continue;
                }
                ask.push((info.clone(), s, st.marker));
            }
        }
        let pending = self
            .source
            .bilog_pending(&ask, &self.local.zone_id())
            .await?;
        resync.extend(
            ask.into_iter()
                .zip(pending)
                .filter(|(_, p)| *p)
                .map(|((b, s, _), _)| (b, s)),
        );
        Ok(resync)
    }

    async fn reconcile(&self) -> Result<usize, SyncError> {
        let behind = self.behind_shards().await?;
        for (b, s) in &behind {
            self.sync_bucket_shard(b, *s).await?;
        }
        Ok(behind.len())
    }

    async fn retry_errors_loop(self: Arc<Self>) {
        let mut delay = Duration::from_secs(2);
        while self.running() {
            tokio::time::sleep(delay).await;
            match self.retry_errors().await {
                Ok(0) => delay = (delay * 2).min(self.settings.error_retry_max),
                Ok(_) => delay = Duration::from_secs(2),
                Err(e) => {
                    tracing::warn!(error = %e, "sync error retry pass failed");
                    delay = (delay * 2).min(self.settings.error_retry_max);
                }
            }
        }
    }

    /// Retries this source's error log entries once; returns how many remain.
    pub async fn retry_errors(&self) -> Result<usize, SyncError> {
        let mut left = 0;
        for (marker, mut e) in self.status.errors().await? {
            if e.source_zone != self.source.id || e.kind != "data" {
                continue;
            }
            let r = async {
                let (info, _) = self.local.bucket_fresh(&e.bucket).await?;
                let verdict = self.verdict(&info);
                if !verdict.syncs_key(&e.key) {
                    // No longer synced: nothing to retry.
                    return Ok(());
                }
                let exec = BucketExec {
                    sync: self,
                    bucket: info,
                    shard: e.shard,
                    batch: None,
                    verdict,
                };
                exec.retry(&e).await
            }
            .await;
            match r {
                Ok(()) => {
                    self.status.remove_errors(vec![marker]).await?;
                    metrics::counter!(
                        "meridian_sync_errors_cleared_total",
                        &metric_labels(&self.source)
                    )
                    .increment(1);
                }
                Err(err) => {
                    e.retries += 1;
                    e.error = err.to_string();
                    self.status.update_error(&marker, &e).await?;
                    left += 1;
                }
            }
        }
        Ok(left)
    }
}

/// A data log shard: each entry names a bucket shard to bring up to date.
struct DatalogExec<'a> {
    sync: &'a Arc<DataSync>,
    object: &'a str,
    shard: u32,
    renewed: Mutex<std::time::Instant>,
}

impl Exec<ShardRef> for DatalogExec<'_> {
    async fn read_head(&self) -> Result<String, SyncError> {
        let p = self
            .sync
            .source
            .log_positions(LogKind::Data, &[], Duration::ZERO)
            .await?;
        Ok(p.get(self.shard as usize).cloned().unwrap_or_default())
    }

    async fn list_full(&self, _after: &str) -> Result<(Vec<ShardRef>, bool), SyncError> {
        Ok((Vec::new(), false))
    }

    async fn list_log(&self, after: &str) -> Result<(Vec<ShardRef>, bool), SyncError> {
        let (items, more) = self
            .sync
            .source
            .list_log::<DatalogEntry>(LogKind::Data, self.shard, after, 1000)
            .await?;
        // Syncing a bucket shard brings it to its head: of several entries
        // for one bucket shard in a page only the last needs a run (the
        // marker passes the others when it completes).
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, (_, e)) in items.iter().enumerate() {
            last.insert(format!("{}:{}", e.bucket_id, e.shard), i);
        }
        Ok((
            items
                .into_iter()
                .enumerate()
                .filter(|(i, (_, e))| last.get(&format!("{}:{}", e.bucket_id, e.shard)) == Some(i))
                .map(|(_, (pos, entry))| ShardRef {
                    pos,
                    key: format!("{}:{}", entry.bucket_id, entry.shard),
                    entry,
                })
                .collect(),
            more,
        ))
    }

    async fn apply(&self, item: ShardRef) -> Result<(), SyncError> {
        let info = BucketInfo {
            name: item.entry.bucket.clone(),
            id: item.entry.bucket_id.clone(),
            ..Default::default()
        };
        match self.sync.sync_bucket_shard(&info, item.entry.shard).await {
            // The bucket was deleted (or re-created) since: nothing to bring over.
            Err(SyncError::Local(m)) if m.contains("is instance") => Ok(()),
            r => r,
        }
    }

    async fn persist(&self, s: &ShardStatus) -> Result<(), SyncError> {
        self.sync
            .status
            .set_shard(self.object, self.shard, s)
            .await?;
        // Renew the shard's lease as progress is made.
        let due = {
            let mut r = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
            let due = r.elapsed() >= self.sync.settings.lease / 3;
            if due {
                *r = std::time::Instant::now();
            }
            due
        };
        if due {
            let name = format!("data.{}.shard.{}", self.sync.source.id, self.shard);
            if !self
                .sync
                .status
                .lease(
                    &name,
                    &self.sync.holder,
                    self.sync.settings.lease.as_millis() as u64,
                )
                .await?
            {
                return Err(SyncError::LeaseLost(name));
            }
        }
        Ok(())
    }

    async fn record_error(&self, item: &ShardRef, error: &str) -> Result<(), SyncError> {
        // The bucket shard itself keeps its errors; a shard that cannot be
        // synced at all is retried by the reconcile pass.
        tracing::warn!(bucket = %item.entry.bucket, shard = item.entry.shard, error, "bucket shard sync failed; the reconcile pass retries it");
        Ok(())
    }

    async fn wait_for_log(&self) -> bool {
        let bell = &self.sync.bells[self.shard as usize % self.sync.bells.len()];
        let _ = tokio::time::timeout(self.sync.settings.idle_recheck, bell.notified()).await;
        self.sync.running()
    }
}

/// One bucket shard of the source, applied to the same bucket here.
struct BucketExec<'a> {
    sync: &'a DataSync,
    bucket: BucketInfo,
    shard: u32,
    /// Group commit of the versions a full listing brings (None: one by one).
    batch: Option<crate::batch::ApplyBatcher>,
    /// What the sync policies let through (the pipes' key prefixes).
    verdict: Verdict,
}

impl BucketExec<'_> {
    fn local_id(&self) -> String {
        self.sync.local.zone_id()
    }

    /// What this zone's index says about each version of a listing page
    /// (`Unchecked` for all when the read fails: each is decided alone).
    async fn look_up(&self, listed: &[IndexEntry]) -> Vec<Known> {
        let incoming: Vec<Incoming> = listed
            .iter()
            .map(|e| Incoming::Version(Box::new(e.clone())))
            .collect();
        match self
            .sync
            .local
            .replica_plans(&self.bucket, self.shard, &incoming)
            .await
        {
            Ok(plans) => plans
                .into_iter()
                .map(|p| match p {
                    Plan::Skip(s) => Known::Skip(s),
                    _ => Known::Missing,
                })
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, bucket = %self.bucket.name, "listing page look-up failed");
                vec![Known::Unchecked; listed.len()]
            }
        }
    }

    /// Fetches the version from the source and applies it (no fetch when
    /// `listed` shows this zone has it, or has something newer).
    async fn fetch_and_apply(
        &self,
        key: &str,
        version_id: &str,
        listed: Option<(&IndexEntry, &Known)>,
        trace: Vec<String>,
    ) -> Result<(), SyncError> {
        if let Some((e, known)) = listed {
            let skip = match known {
                Known::Skip(s) => Some(s.clone()),
                Known::Missing => None,
                Known::Unchecked => match self
                    .sync
                    .local
                    .replica_plan(&self.bucket, &Incoming::Version(Box::new(e.clone())))
                    .await?
                {
                    Plan::Skip(s) => Some(s),
                    _ => None,
                },
            };
            if let Some(s) = skip {
                self.note_skip(e, &s).await;
                return Ok(());
            }
        }
        let fetched = self
            .sync
            .source
            .fetch(&self.bucket, key, version_id, self.sync.settings.fetch_idle)
            .await?;
        let Some((entry, body)) = fetched else {
            // Gone at the source: the entry that removed it follows in its log.
            return Ok(());
        };
        let size = entry.size;
        let body = self.sync.settings.bandwidth.throttle(body);
        let body = (!entry.delete_marker && entry.size > 0).then_some(body);
        let labels = metric_labels(&self.sync.source);
        let r = match &self.batch {
            Some(b) => b.apply(entry.clone(), body, trace).await?,
            None => {
                self.sync
                    .local
                    .apply_version(&self.bucket, entry.clone(), body, trace)
                    .await?
            }
        };
        match &r {
            Applied::Stored { beat } => {
                metrics::counter!("meridian_sync_bytes_fetched_total", &labels).increment(size);
                if let Some(loser) = beat {
                    self.conflict(&entry.key, loser.clone(), Stamp::of(&entry))
                        .await;
                }
                let lag = meridian_zone::now_ns().saturating_sub(entry.mtime_ns) as f64 / 1e9;
                metrics::gauge!("meridian_sync_lag_seconds", &labels).set(lag);
            }
            Applied::Skipped(s) => self.note_skip(&entry, s).await,
            _ => {}
        }
        metrics::counter!("meridian_sync_entries_applied_total", &labels).increment(1);
        Ok(())
    }

    async fn note_skip(&self, e: &IndexEntry, s: &Skip) {
        if let Skip::Lost { winner } = s
            && winner.zone != e.source_zone
        {
            self.conflict(&e.key, Stamp::of(e), winner.clone()).await;
        }
    }

    async fn conflict(&self, key: &str, loser: Stamp, winner: Stamp) {
        metrics::counter!(
            "meridian_sync_conflicts_total",
            &metric_labels(&self.sync.source)
        )
        .increment(1);
        let rec = ConflictRecord {
            bucket: self.bucket.name.clone(),
            key: key.to_string(),
            loser_zone: loser.zone,
            loser_mtime_ns: loser.mtime_ns,
            winner_zone: winner.zone,
            winner_mtime_ns: winner.mtime_ns,
            ts_ms: meridian_common::now_unix_ms(),
        };
        if let Err(e) = self.sync.status.add_conflict(&rec).await {
            tracing::warn!(error = %e, "conflict not recorded");
        }
    }

    async fn apply_logged(&self, b: &BilogEntry) -> Result<(), SyncError> {
        let me = self.local_id();
        if b.zone_trace.contains(&me) {
            return Ok(());
        }
        let mut trace = b.zone_trace.clone();
        if trace.is_empty() {
            trace.push(self.sync.source.id.clone());
        }
        match b.op {
            BilogOp::Write | BilogOp::DeleteMarker | BilogOp::Attrs => {
                self.fetch_and_apply(&b.key, &b.version_id, None, trace)
                    .await
            }
            BilogOp::Delete => {
                let stamp = Stamp {
                    mtime_ns: b.op_ns,
                    zone: trace[0].clone(),
                };
                self.sync
                    .local
                    .apply_removal(&self.bucket, &b.key, &b.version_id, stamp, trace)
                    .await?;
                metrics::counter!(
                    "meridian_sync_entries_applied_total",
                    &metric_labels(&self.sync.source)
                )
                .increment(1);
                Ok(())
            }
        }
    }

    /// Applies an error log entry again.
    async fn retry(&self, e: &ErrorRecord) -> Result<(), SyncError> {
        if e.op == "delete" {
            let stamp = Stamp {
                mtime_ns: e.op_ns,
                zone: e.trace.first().cloned().unwrap_or_default(),
            };
            self.sync
                .local
                .apply_removal(&self.bucket, &e.key, &e.version_id, stamp, e.trace.clone())
                .await?;
            return Ok(());
        }
        self.fetch_and_apply(&e.key, &e.version_id, None, e.trace.clone())
            .await
    }
}

impl Exec<BucketItem> for BucketExec<'_> {
    async fn read_head(&self) -> Result<String, SyncError> {
        let (_, _, pos) = self
            .sync
            .source
            .list_shard(&self.bucket, self.shard, "", 1)
            .await?;
        Ok(pos)
    }

    async fn list_full(&self, after: &str) -> Result<(Vec<BucketItem>, bool), SyncError> {
        let (items, more, _) = self
            .sync
            .source
            .list_shard(&self.bucket, self.shard, after, 1000)
            .await?;
        let me = self.local_id();
        // Versions that carry this zone in their trace are skipped unread.
        let ask: Vec<IndexEntry> = items
            .iter()
            .filter(|(_, e)| !e.zone_trace.contains(&me))
            .map(|(_, e)| e.clone())
            .collect();
        let mut known = self.look_up(&ask).await.into_iter();
        Ok((
            items
                .into_iter()
                .map(|(pos, e)| {
                    let k = if e.zone_trace.contains(&me) {
                        Known::Unchecked
                    } else {
                        known.next().unwrap_or(Known::Unchecked)
                    };
                    BucketItem {
                        pos,
                        what: BucketChange::Listed(Box::new(e), k),
                    }
                })
                .collect(),
            more,
        ))
    }

    async fn list_log(&self, after: &str) -> Result<(Vec<BucketItem>, bool), SyncError> {
        let (items, more) = self
            .sync
            .source
            .list_bilog(&self.bucket, self.shard, after, 1000)
            .await?;
        Ok((
            items
                .into_iter()
                .map(|(pos, b)| BucketItem {
                    pos,
                    what: BucketChange::Logged(Box::new(b)),
                })
                .collect(),
            more,
        ))
    }

    async fn apply(&self, item: BucketItem) -> Result<(), SyncError> {
        // Test hook: `FAILPOINTS=sync::apply_delay=return(MS)` holds every
        // apply that long (sync falls behind while writes go on).
        let delay: Option<u64> = (|| {
            fail::fail_point!("sync::apply_delay", |a| a.and_then(|s| s.parse().ok()));
            None
        })();
        if let Some(ms) = delay {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if !self.verdict.syncs_key(item.key()) {
            // Outside every pipe's prefix: passed over, as RGW does.
            return Ok(());
        }
        match &item.what {
            BucketChange::Listed(e, known) => {
                if e.zone_trace.contains(&self.local_id()) {
                    return Ok(());
                }
                let trace = if e.zone_trace.is_empty() {
                    vec![self.sync.source.id.clone()]
                } else {
                    e.zone_trace.clone()
                };
                self.fetch_and_apply(&e.key, &e.version_id, Some((e, known)), trace)
                    .await
            }
            BucketChange::Logged(b) => self.apply_logged(b).await,
        }
    }

    async fn persist(&self, s: &ShardStatus) -> Result<(), SyncError> {
        self.sync
            .status
            .set_bucket_shard(&self.sync.source.id, &self.bucket.id, self.shard, s)
            .await
    }

    async fn record_error(&self, item: &BucketItem, error: &str) -> Result<(), SyncError> {
        let (key, version_id, op, op_ns, trace) = match &item.what {
            BucketChange::Listed(e, _) => (
                e.key.clone(),
                e.version_id.clone(),
                "write",
                e.mtime_ns,
                e.zone_trace.clone(),
            ),
            BucketChange::Logged(b) => (
                b.key.clone(),
                b.version_id.clone(),
                if b.op == BilogOp::Delete {
                    "delete"
                } else {
                    "write"
                },
                b.op_ns,
                b.zone_trace.clone(),
            ),
        };
        metrics::counter!(
            "meridian_sync_entries_failed_total",
            &metric_labels(&self.sync.source)
        )
        .increment(1);
        self.sync
            .status
            .add_error(&ErrorRecord {
                source_zone: self.sync.source.id.clone(),
                kind: "data".into(),
                bucket: self.bucket.name.clone(),
                bucket_id: self.bucket.id.clone(),
                shard: self.shard,
                key,
                version_id,
                error: error.to_string(),
                ts_ms: meridian_common::now_unix_ms(),
                retries: 0,
                op: op.into(),
                op_ns,
                trace,
            })
            .await
            .map(|_| ())
    }

    async fn wait_for_log(&self) -> bool {
        false
    }

    fn pending_changed(&self, before: usize, now: usize) {
        let total = telemetry::move_pending(&self.sync.pending, before, now);
        metrics::gauge!(
            "meridian_sync_pending_entries",
            &metric_labels(&self.sync.source)
        )
        .set(total as f64);
    }
}
