//! `sync status`: where every sync of a zone stands, computed so that it
//! never says "caught up" while a committed change is pending. For each
//! source it compares the source's logs with the persisted markers (a log
//! shard with an entry after its marker is behind, whether or not any worker
//! has read that entry yet), asks the source which bucket shards have log
//! entries after their markers (changes whose data log hint was missed), and
//! counts the sync error log. A source that cannot be asked is reported as
//! unknown, never as caught up.

use crate::agent::SyncPlan;
use crate::data::DataSync;
use crate::machine::{Phase, ShardStatus};
use crate::remote::RemoteZone;
use crate::status::{META_STATUS, StatusStore, data_status};
use crate::{SyncError, SyncSettings};
use futures::StreamExt as _;
use meridian_zone::Zone;
use meridian_zone::log::LogKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// The state of one log's sync (metadata from the master, or data from a source).
#[derive(Debug, Clone, Serialize, Default)]
pub struct LogSyncReport {
    /// Source zone id.
    pub source_id: String,
    /// Source zone name.
    pub source_name: String,
    /// init, full, incremental.
    pub phase: String,
    /// Full sync: items done / found.
    pub full_done: u64,
    /// Full sync: items found so far.
    pub full_total: u64,
    /// Log shards.
    pub shards: usize,
    /// Shards in full sync.
    pub full_shards: usize,
    /// Shards in incremental sync.
    pub incremental_shards: usize,
    /// Shards whose source log has entries after their marker.
    pub behind_shards: Vec<u32>,
    /// Time of the oldest change not applied (Unix ms), if known.
    pub oldest_pending_ms: Option<u64>,
    /// Bucket shards with source log entries after their marker (data only).
    pub recovering_shards: usize,
    /// Entries in the sync error log for this source.
    pub errors: usize,
    /// True only when nothing committed at the source is pending here.
    pub caught_up: bool,
    /// Why the state could not be determined.
    pub error: Option<String>,
}

/// `sync status` of a zone.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SyncReport {
    /// Realm (id, name).
    pub realm: (String, String),
    /// Zonegroup (id, name).
    pub zonegroup: (String, String),
    /// Zone (id, name).
    pub zone: (String, String),
    /// True when this zone is the metadata master.
    pub metadata_master: bool,
    /// Metadata sync (None on the master).
    pub metadata: Option<LogSyncReport>,
    /// Data sync per source.
    pub data: Vec<LogSyncReport>,
}

impl SyncReport {
    /// Every sync of the zone is caught up.
    pub fn caught_up(&self) -> bool {
        self.metadata.as_ref().is_none_or(|m| m.caught_up) && self.data.iter().all(|d| d.caught_up)
    }
}

/// The remote zone descriptions of `plan`.
pub fn remotes(plan: &SyncPlan) -> (Option<RemoteZone>, Vec<RemoteZone>) {
    let key = plan.key.clone().unwrap_or_default();
    let mk = |(name, id, eps): &(String, String, Vec<String>)| RemoteZone {
        name: name.clone(),
        id: id.clone(),
        endpoints: eps.clone(),
        key: meridian_proto::multisite::SystemKey {
            access_key: key.0.clone(),
            secret_key: key.1.clone(),
        },
        links: Default::default(),
    };
    (
        plan.master.as_ref().map(mk),
        plan.sources.iter().map(mk).collect(),
    )
}

/// Shards of `kind` at `source` with entries after the markers in `shards`;
/// with the time of the oldest such entry.
async fn behind(
    source: &RemoteZone,
    kind: LogKind,
    shards: &BTreeMap<u32, ShardStatus>,
) -> Result<(Vec<u32>, Option<u64>), SyncError> {
    let checks = shards.iter().map(|(n, st)| async move {
        let (items, _) = source
            .list_log::<serde_json::Value>(kind, *n, &st.marker, 1)
            .await?;
        Ok::<_, SyncError>((
            *n,
            items.first().and_then(|(_, e)| e["ts_ms"].as_u64()),
            !items.is_empty(),
        ))
    });
    let results: Vec<_> = futures::stream::iter(checks).buffered(16).collect().await;
    let mut out = Vec::new();
    let mut oldest: Option<u64> = None;
    for r in results {
        let (n, ts, is_behind) = r?;
        if is_behind {
            out.push(n);
            if let Some(t) = ts {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
        }
    }
    Ok((out, oldest))
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Init => "init",
        Phase::Full => "full",
        Phase::Incremental => "incremental",
    }
}

async fn log_report(
    status: &StatusStore,
    object: &str,
    source: &RemoteZone,
    kind: LogKind,
) -> Result<LogSyncReport, SyncError> {
    let g = status.global(object).await?;
    let shards = status.shards(object).await?;
    let mut r = LogSyncReport {
        source_id: source.id.clone(),
        source_name: source.name.clone(),
        phase: phase_name(g.phase).into(),
        full_done: g.full_done,
        full_total: g.full_total,
        shards: shards.len(),
        full_shards: if g.phase == Phase::Incremental {
            0
        } else {
            shards.len()
        },
        incremental_shards: if g.phase == Phase::Incremental {
            shards.len()
        } else {
            0
        },
        ..Default::default()
    };
    let (b, oldest) = behind(source, kind, &shards).await?;
    r.behind_shards = b;
    r.oldest_pending_ms = oldest;
    Ok(r)
}

/// Computes `sync status` for `local`.
pub async fn sync_report(local: &Zone, settings: &SyncSettings) -> Result<SyncReport, SyncError> {
    let view = local.cluster().map();
    let plan = SyncPlan::of(&view.map, &local.params().zone);
    let mut report = SyncReport {
        zone: (local.zone_id(), local.params().zone.clone()),
        metadata_master: plan.master.is_none(),
        ..Default::default()
    };
    if let Some(ms) = &view.map.multisite
        && let Some(z) = ms.zones.iter().find(|z| z.name == local.params().zone)
    {
        if let Some(r) = ms.realms.iter().find(|r| r.id == z.realm_id) {
            report.realm = (r.id.clone(), r.name.clone());
        }
        if let Some(g) = ms
            .zonegroups
            .iter()
            .find(|g| g.zones.iter().any(|x| x.id == z.id))
        {
            report.zonegroup = (g.id.clone(), g.name.clone());
        }
    }
    let status = StatusStore::new(local.clone());
    let errors = status.errors().await.unwrap_or_default();
    let (master, sources) = remotes(&plan);
    if let Some(m) = master {
        let mut r = match log_report(&status, META_STATUS, &m, LogKind::Metadata).await {
            Ok(r) => r,
            Err(e) => LogSyncReport {
                source_id: m.id.clone(),
                source_name: m.name.clone(),
                error: Some(e.to_string()),
                ..Default::default()
            },
        };
        r.errors = errors.iter().filter(|(_, e)| e.kind == "metadata").count();
        r.caught_up = r.error.is_none()
            && r.phase == "incremental"
            && r.behind_shards.is_empty()
            && r.errors == 0;
        report.metadata = Some(r);
    }
    for src in sources {
        let object = data_status(&src.id);
        let mut r = match log_report(&status, &object, &src, LogKind::Data).await {
            Ok(r) => r,
            Err(e) => LogSyncReport {
                source_id: src.id.clone(),
                source_name: src.name.clone(),
                error: Some(e.to_string()),
                ..Default::default()
            },
        };
        if r.error.is_none() {
            let ds = DataSync::new(
                local.clone(),
                src.clone(),
                settings.clone(),
                "status".into(),
            );
            match ds.behind_shards().await {
                Ok(b) => r.recovering_shards = b.len(),
                Err(e) => r.error = Some(e.to_string()),
            }
            // Bucket shards that have not finished their own full sync.
            if let Ok(states) = status.bucket_shards(&src.id).await {
                r.recovering_shards += states
                    .values()
                    .filter(|s| s.phase != Phase::Incremental)
                    .count();
            }
        }
        r.errors = errors
            .iter()
            .filter(|(_, e)| e.kind == "data" && e.source_zone == src.id)
            .count();
        r.caught_up = r.error.is_none()
            && r.phase == "incremental"
            && r.behind_shards.is_empty()
            && r.recovering_shards == 0
            && r.errors == 0;
        report.data.push(r);
    }
    Ok(report)
}

fn when(ms: Option<u64>) -> String {
    match ms {
        Some(t) => {
            let age = meridian_common::now_unix_ms().saturating_sub(t) as f64 / 1000.0;
            format!("{age:.1}s ago")
        }
        None => "unknown".into(),
    }
}

fn body(r: &LogSyncReport, what: &str, source: &str, pad: &str, out: &mut String) {
    use std::fmt::Write as _;
    if let Some(e) = &r.error {
        let _ = writeln!(out, "{pad}cannot tell: {e}");
        return;
    }
    let _ = writeln!(
        out,
        "{pad}{}",
        if r.phase == "incremental" {
            "syncing"
        } else {
            "preparing for full sync"
        }
    );
    let _ = writeln!(out, "{pad}full sync: {}/{} shards", r.full_shards, r.shards);
    if r.phase != "incremental" {
        let _ = writeln!(
            out,
            "{pad}full sync: {}/{} items copied",
            r.full_done, r.full_total
        );
    }
    let _ = writeln!(
        out,
        "{pad}incremental sync: {}/{} shards",
        r.incremental_shards, r.shards
    );
    if r.caught_up {
        let _ = writeln!(out, "{pad}{what} is caught up with {source}");
        return;
    }
    if !r.behind_shards.is_empty() {
        let _ = writeln!(
            out,
            "{pad}{what} is behind on {} shards",
            r.behind_shards.len()
        );
        let _ = writeln!(out, "{pad}behind shards: {:?}", r.behind_shards);
        let _ = writeln!(
            out,
            "{pad}oldest incremental change not applied: {}",
            when(r.oldest_pending_ms)
        );
    }
    if r.recovering_shards > 0 {
        let _ = writeln!(out, "{pad}{} shards are recovering", r.recovering_shards);
    }
    if r.errors > 0 {
        let _ = writeln!(
            out,
            "{pad}{} entries in the sync error log (retrying)",
            r.errors
        );
    }
    if r.phase != "incremental" {
        let _ = writeln!(out, "{pad}{what} is not caught up: full sync in progress");
    }
}

/// The report as radosgw-admin prints `sync status`.
pub fn render(r: &SyncReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "          realm {} ({})", r.realm.0, r.realm.1);
    let _ = writeln!(out, "      zonegroup {} ({})", r.zonegroup.0, r.zonegroup.1);
    let _ = writeln!(out, "           zone {} ({})", r.zone.0, r.zone.1);
    let pad = "                ";
    match &r.metadata {
        None => {
            let _ = writeln!(out, "  metadata sync no sync (zone is master)");
        }
        Some(m) => {
            let _ = write!(out, "  metadata sync ");
            let mut b = String::new();
            body(m, "metadata", "master", pad, &mut b);
            out.push_str(b.trim_start());
        }
    }
    for d in &r.data {
        let _ = writeln!(
            out,
            "      data sync source: {} ({})",
            d.source_id, d.source_name
        );
        body(d, "data", "source", "                        ", &mut out);
    }
    out
}
