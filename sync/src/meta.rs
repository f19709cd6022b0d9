//! Metadata sync from the metadata master zone: users (with their access
//! keys) and buckets, full then incremental from the master's metadata log.

use crate::drive::{Exec, Until, drive};
use crate::machine::{Item, Phase, ShardMachine, ShardStatus, Tuning};
use crate::mdlog::plan_page;
use crate::remote::RemoteZone;
use crate::status::{ErrorRecord, META_STATUS, StatusStore};
use crate::{SyncError, SyncSettings, telemetry};
use meridian_zone::log::LogKind;
use meridian_zone::{BucketInfo, MdlogEntry, User, Zone};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Metadata sync of a zone from its master.
pub struct MetaSync {
    /// The local zone.
    pub local: Zone,
    /// The metadata master.
    pub master: RemoteZone,
    /// Sync state.
    pub status: StatusStore,
    /// Settings.
    pub settings: SyncSettings,
    /// This worker's name (leases).
    pub holder: String,
    bells: Vec<Notify>,
    running: std::sync::atomic::AtomicBool,
    /// Metadata log entries listed from the master and not yet applied.
    pending: std::sync::atomic::AtomicUsize,
}

/// One metadata change to apply (or a position to pass).
#[derive(Debug, Clone)]
pub struct MetaItem {
    pos: String,
    key: String,
    /// (section, name); None: nothing to do (a prepare whose commit follows).
    target: Option<(String, String)>,
}

impl Item for MetaItem {
    fn pos(&self) -> &str {
        &self.pos
    }
    fn key(&self) -> &str {
        &self.key
    }
}

impl MetaSync {
    /// Metadata sync of `local` from `master`.
    pub fn new(
        local: Zone,
        master: RemoteZone,
        settings: SyncSettings,
        holder: String,
    ) -> Arc<Self> {
        let shards = local.params().mdlog_shards.max(1) as usize;
        telemetry::register_metadata();
        Arc::new(Self {
            status: StatusStore::new(local.clone()),
            local,
            master,
            settings,
            holder,
            bells: (0..shards).map(|_| Notify::new()).collect(),
            running: std::sync::atomic::AtomicBool::new(true),
            pending: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Stops the loops.
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

    /// Runs until stopped.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(500);
        while self.running() {
            match self.step().await {
                Ok(()) => backoff = Duration::from_millis(500),
                Err(e) => {
                    tracing::warn!(master = %self.master.name, error = %e, "metadata sync step failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn lease(&self, what: &str) -> Result<bool, SyncError> {
        self.status
            .lease(
                &format!("meta.{what}"),
                &self.holder,
                self.settings.lease.as_millis() as u64,
            )
            .await
    }

    async fn step(self: &Arc<Self>) -> Result<(), SyncError> {
        let mut g = self.status.global(META_STATUS).await?;
        if g.phase != Phase::Init && g.source.is_empty() {
            // Written before the source was recorded: it is the master's.
            g.source = self.master.id.clone();
            self.status.set_global(META_STATUS, &g).await?;
        }
        if g.phase != Phase::Init && g.source != self.master.id {
            // A new period made another zone the master: the markers are
            // positions in the old master's log, meaningless in the new
            // one's, so start over (full sync lists everything; it is cheap).
            if !self.lease("init").await? {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Ok(());
            }
            if self.status.global(META_STATUS).await?.source == g.source {
                tracing::info!(old = %g.source, master = %self.master.name, "metadata master changed: metadata sync starts over");
                self.status.reset(META_STATUS).await?;
            }
            return Ok(());
        }
        match g.phase {
            Phase::Init => {
                if !self.lease("init").await? {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Ok(());
                }
                let positions = self
                    .master
                    .log_positions(LogKind::Metadata, &[], Duration::ZERO)
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
                self.status.set_shards(META_STATUS, &shards).await?;
                g.phase = Phase::Full;
                g.source = self.master.id.clone();
                self.status.set_global(META_STATUS, &g).await
            }
            Phase::Full => {
                if !self.lease("init").await? {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Ok(());
                }
                for section in ["user", "bucket"] {
                    let mut after = String::new();
                    loop {
                        let (names, more) = self.master.list_metadata(section, &after, 500).await?;
                        g.full_total += names.len() as u64;
                        for n in &names {
                            self.apply(section, n).await?;
                            g.full_done += 1;
                        }
                        self.status.set_global(META_STATUS, &g).await?;
                        match names.last() {
                            Some(l) if more => after = l.clone(),
                            _ => break,
                        }
                    }
                }
                g.phase = Phase::Incremental;
                tracing::info!(master = %self.master.name, records = g.full_done, "metadata full sync done");
                self.status.set_global(META_STATUS, &g).await
            }
            Phase::Incremental => {
                let shards = self.status.shards(META_STATUS).await?;
                let mut tasks = Vec::new();
                for (n, st) in shards {
                    let me = self.clone();
                    tasks.push(tokio::spawn(async move { me.shard(n, st).await }));
                }
                let me = self.clone();
                tasks.push(tokio::spawn(async move { me.watch().await }));
                for t in tasks {
                    let _ = t.await;
                }
                Ok(())
            }
        }
    }

    /// Fetches `section:name` from the master and stores it (or removes it).
    pub async fn apply(&self, section: &str, name: &str) -> Result<(), SyncError> {
        match section {
            "user" => match self.master.get_metadata::<User>("user", name).await? {
                Some(u) => self.local.apply_user(&u).await?,
                None => self.local.apply_user_removal(name).await?,
            },
            "bucket" => match self
                .master
                .get_metadata::<BucketInfo>("bucket", name)
                .await?
            {
                Some(b) => self.local.apply_bucket(&b).await?,
                None => self.local.apply_bucket_removal(name).await?,
            },
            other => {
                return Err(SyncError::Corrupt(format!(
                    "unknown metadata section {other:?}"
                )));
            }
        }
        metrics::counter!("meridian_sync_metadata_applied_total").increment(1);
        Ok(())
    }

    async fn watch(self: Arc<Self>) {
        let mut known: Vec<String> = Vec::new();
        while self.running() {
            match self
                .master
                .log_positions(LogKind::Metadata, &known, self.settings.long_poll)
                .await
            {
                Ok(now) => {
                    telemetry::source_reachable(&self.master.name, true);
                    for (i, p) in now.iter().enumerate() {
                        if known.get(i) != Some(p)
                            && let Some(b) = self.bells.get(i)
                        {
                            b.notify_one();
                        }
                    }
                    known = now;
                }
                Err(_) => {
                    telemetry::source_reachable(&self.master.name, false);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    for b in &self.bells {
                        b.notify_one();
                    }
                }
            }
        }
    }

    async fn shard(self: Arc<Self>, n: u32, st: ShardStatus) {
        let lease = format!("meta.shard.{n}");
        while self.running() {
            match self
                .status
                .lease(&lease, &self.holder, self.settings.lease.as_millis() as u64)
                .await
            {
                Ok(true) => {}
                _ => {
                    tokio::time::sleep(self.settings.lease / 2).await;
                    continue;
                }
            }
            let st = match self.status.shards(META_STATUS).await {
                Ok(m) => m.get(&n).cloned().unwrap_or_else(|| st.clone()),
                Err(_) => st.clone(),
            };
            let mut m = ShardMachine::new(
                st,
                Tuning {
                    window: self.settings.window.max(1),
                    ..Tuning::default()
                },
            );
            let exec = MdlogExec {
                sync: &self,
                shard: n,
            };
            if let Err(e) = drive(&mut m, &exec, Until::Stopped).await {
                tracing::warn!(shard = n, error = %e, "metadata log shard stopped; restarting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let _ = self.status.release(&lease, &self.holder).await;
    }
}

struct MdlogExec<'a> {
    sync: &'a Arc<MetaSync>,
    shard: u32,
}

impl Exec<MetaItem> for MdlogExec<'_> {
    async fn read_head(&self) -> Result<String, SyncError> {
        let p = self
            .sync
            .master
            .log_positions(LogKind::Metadata, &[], Duration::ZERO)
            .await?;
        Ok(p.get(self.shard as usize).cloned().unwrap_or_default())
    }

    async fn list_full(&self, _after: &str) -> Result<(Vec<MetaItem>, bool), SyncError> {
        Ok((Vec::new(), false))
    }

    async fn list_log(&self, after: &str) -> Result<(Vec<MetaItem>, bool), SyncError> {
        let (page, more) = self
            .sync
            .master
            .list_log::<MdlogEntry>(LogKind::Metadata, self.shard, after, 1000)
            .await?;
        let plan = plan_page(
            &page,
            meridian_common::now_unix_ms(),
            self.sync.settings.md_settle.as_millis() as u64,
        );
        let mut items: Vec<MetaItem> = plan
            .apply
            .into_iter()
            .map(|(pos, e)| MetaItem {
                key: format!("{}:{}", e.section, e.name),
                target: Some((e.section, e.name)),
                pos,
            })
            .chain(plan.passed.into_iter().map(|pos| MetaItem {
                key: pos.clone(),
                target: None,
                pos,
            }))
            .collect();
        items.sort_by(|a, b| a.pos.cmp(&b.pos));
        if plan.held && items.is_empty() {
            // A change is in progress at the master: look again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((items, more && !plan.held))
    }

    async fn apply(&self, item: MetaItem) -> Result<(), SyncError> {
        match &item.target {
            Some((section, name)) => self.sync.apply(section, name).await,
            None => Ok(()),
        }
    }

    async fn persist(&self, s: &ShardStatus) -> Result<(), SyncError> {
        self.sync.status.set_shard(META_STATUS, self.shard, s).await
    }

    async fn record_error(&self, item: &MetaItem, error: &str) -> Result<(), SyncError> {
        metrics::counter!("meridian_sync_metadata_failed_total").increment(1);
        self.sync
            .status
            .add_error(&ErrorRecord {
                kind: "metadata".into(),
                key: item.key.clone(),
                error: error.to_string(),
                ts_ms: meridian_common::now_unix_ms(),
                ..Default::default()
            })
            .await
            .map(|_| ())
    }

    fn pending_changed(&self, before: usize, now: usize) {
        let total = telemetry::move_pending(&self.sync.pending, before, now);
        metrics::gauge!("meridian_sync_metadata_pending_entries").set(total as f64);
    }

    async fn wait_for_log(&self) -> bool {
        let bell = &self.sync.bells[self.shard as usize % self.sync.bells.len()];
        let _ = tokio::time::timeout(self.sync.settings.idle_recheck, bell.notified()).await;
        self.sync.running()
    }
}
