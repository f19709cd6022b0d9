//! Bounded logs: a zone trims its metadata, data and bucket index logs
//! through the position every peer zone that reads them has passed, as it
//! learns from the peers' persisted sync markers (ZoneService
//! `SyncMarkers`). A peer that cannot be asked, or whose sync has not
//! applied changes logged longer ago than the warning lag, holds the logs
//! back and is named in a health warning (instead of the logs growing
//! silently, as RGW's do until large-omap warnings appear).
//!
//! Who reads what: every other zone of the realm reads the metadata master's
//! metadata log; every zone of the zonegroup that syncs data from this zone
//! (`sync_from_all`, or this zone in its `sync_from`) reads its data log and
//! bucket index logs. A log no zone reads is trimmed to its current position.
//!
//! Why a marker is a safe trim point: a reader persists a marker only over a
//! prefix of entries it has applied, and a reader that starts over (init,
//! full sync, a new metadata master, a bucket whose sync was disabled) reads
//! the log position first and lists everything, so it needs nothing before
//! that position. A bucket shard a reader has no status for yet is not
//! trimmed: such a shard is synced from the start of its log.

use crate::remote::{PeerMarkers, RemoteZone};
use crate::status::{META_STATUS, StatusStore, data_status};
use crate::{SyncError, SyncSettings};
use meridian_proto::mon::ClusterMap;
use meridian_proto::multisite::{BucketShardMarker, SyncMarkersReply, SystemKey};
use meridian_zone::log::LogKind;
use meridian_zone::sync_policy::{self, ZoneRef};
use meridian_zone::{BucketInfo, Zone};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A zone that reads this zone's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// Zone name.
    pub name: String,
    /// Zone id.
    pub id: String,
    /// Its gateways.
    pub endpoints: Vec<String>,
    /// It syncs metadata from this zone (this zone is the metadata master).
    pub metadata: bool,
    /// It syncs data from this zone (data log and bucket index logs).
    pub data: bool,
}

/// This zone and the zones that read its logs in the current period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readers {
    /// This zone's id ("" outside a realm).
    pub zone_id: String,
    /// This zone's system key (signs the questions to peers).
    pub key: Option<SystemKey>,
    /// The readers.
    pub zones: Vec<Reader>,
    /// Another zone of the period exists (else GC trims the logs whole).
    pub has_peers: bool,
    /// This zone's zonegroup's sync policy (which buckets each reader reads).
    pub policy: Option<meridian_proto::multisite::SyncPolicy>,
}

impl Readers {
    /// The readers of zone `zone`'s logs in `map`'s current period.
    pub fn of(map: &ClusterMap, zone: &str) -> Readers {
        let mut out = Readers::default();
        let Some(ms) = &map.multisite else {
            return out;
        };
        let Some(local) = ms.zones.iter().find(|z| z.name == zone) else {
            return out;
        };
        out.zone_id = local.id.clone();
        out.key = local
            .system_key
            .clone()
            .filter(|k| !k.access_key.is_empty());
        let Some(p) = ms
            .realms
            .iter()
            .find(|r| r.id == local.realm_id)
            .and_then(|r| ms.periods.iter().find(|p| p.id == r.current_period))
        else {
            return out;
        };
        let master = p.master_zone == local.id;
        let own_group = p
            .zonegroups
            .iter()
            .find(|g| g.zones.iter().any(|z| z.id == local.id));
        out.policy = own_group.and_then(|g| g.sync_policy.clone());
        for g in &p.zonegroups {
            for z in g.zones.iter().filter(|z| z.id != local.id) {
                out.has_peers = true;
                let same_group = own_group.is_some_and(|o| o.id == g.id);
                let from_us = z.sync_from_all
                    || z.sync_from.is_empty()
                    || z.sync_from
                        .iter()
                        .any(|s| *s == local.name || *s == local.id);
                let admitted = || {
                    sync_policy::pair_admitted(
                        g.sync_policy.as_ref(),
                        ZoneRef {
                            name: &local.name,
                            id: &local.id,
                        },
                        ZoneRef {
                            name: &z.name,
                            id: &z.id,
                        },
                    )
                };
                let r = Reader {
                    name: z.name.clone(),
                    id: z.id.clone(),
                    endpoints: z.endpoints.clone(),
                    metadata: master,
                    data: same_group && from_us && admitted(),
                };
                if r.metadata || r.data {
                    out.zones.push(r);
                }
            }
        }
        out
    }
}

/// What `reader` has passed of this zone's logs, answered to ZoneService
/// `SyncMarkers` from this zone's persisted sync status.
pub async fn markers_for(
    zone: &Zone,
    source_id: &str,
    bucket_after: &str,
    max_buckets: u32,
) -> Result<SyncMarkersReply, SyncError> {
    let status = StatusStore::new(zone.clone());
    let meta = status.global(META_STATUS).await?;
    let in_order = |m: BTreeMap<u32, crate::machine::ShardStatus>, n: u32| {
        (0..n)
            .map(|s| m.get(&s).map(|st| st.marker.clone()).unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let meta_shards = status.shards(META_STATUS).await?;
    let metadata_markers = if meta_shards.is_empty() {
        Vec::new()
    } else {
        let n = meta_shards.keys().max().map_or(0, |m| m + 1);
        in_order(meta_shards, n)
    };
    let data_shards = status.shards(&data_status(source_id)).await?;
    let n = data_shards.keys().max().map_or(0, |m| m + 1);
    let data_markers = in_order(data_shards, n);
    let (page, more) = status
        .bucket_shards_page(source_id, bucket_after, max_buckets)
        .await?;
    let buckets = page
        .into_iter()
        .filter_map(|(key, st)| {
            let (id, shard) = key.rsplit_once('.')?;
            Some(BucketShardMarker {
                bucket_id: id.to_string(),
                shard: shard.parse().ok()?,
                marker: st.marker,
                disabled: st.disabled,
            })
        })
        .collect();
    Ok(SyncMarkersReply {
        zone_id: zone.zone_id(),
        metadata_source: if meta.phase == crate::machine::Phase::Init {
            String::new()
        } else {
            meta.source
        },
        metadata_markers,
        data_markers,
        buckets,
        more_buckets: more,
    })
}

/// Which logs a trim pass covers.
#[derive(Debug, Clone, Default)]
pub struct TrimScope {
    /// The metadata log.
    pub mdlog: bool,
    /// The data log.
    pub datalog: bool,
    /// Bucket index logs (of every bucket, or of the bucket ids listed).
    pub bilog: bool,
    /// Only these bucket ids (empty: all).
    pub buckets: Vec<String>,
}

impl TrimScope {
    /// Every log.
    pub fn all() -> Self {
        Self {
            mdlog: true,
            datalog: true,
            bilog: true,
            buckets: Vec::new(),
        }
    }
}

/// A reader as the last pass saw it.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderState {
    /// Zone name.
    pub zone: String,
    /// It answered.
    pub reachable: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Age (s) of the oldest change in this zone's metadata or data log it
    /// has not applied (0: none).
    pub behind_s: u64,
}

/// What one trim pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrimReport {
    /// Metadata log entries removed.
    pub mdlog_trimmed: u64,
    /// Data log entries removed.
    pub datalog_trimmed: u64,
    /// Bucket index log entries removed.
    pub bilog_trimmed: u64,
    /// The readers.
    pub readers: Vec<ReaderState>,
    /// Health warnings ("CHECK: detail").
    pub warnings: Vec<String>,
}

/// The smallest of the readers' markers and the cap ("" when one reader has
/// read nothing: nothing can be trimmed). `None` markers put no bound.
fn trim_point<'a>(cap: &'a str, markers: impl IntoIterator<Item = Option<&'a str>>) -> &'a str {
    markers.into_iter().flatten().fold(cap, |a, m| a.min(m))
}

/// Trims this zone's logs through what its readers have passed, every
/// `log_trim_interval`, one gateway of the zone at a time (a lease).
pub struct LogTrimmer {
    zone: Zone,
    settings: SyncSettings,
    holder: String,
    status: StatusStore,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl LogTrimmer {
    /// A trimmer of `zone`'s logs; `holder` names this worker in the lease.
    pub fn new(zone: Zone, settings: SyncSettings, holder: String) -> Self {
        Self {
            status: StatusStore::new(zone.clone()),
            zone,
            settings,
            holder,
            warnings: Arc::default(),
        }
    }

    /// The health warnings of the last pass this worker ran (a gateway
    /// sends them in its beacon; empty while another worker holds the lease).
    pub fn warnings(&self) -> Arc<Mutex<Vec<String>>> {
        self.warnings.clone()
    }

    fn set_warnings(&self, w: Vec<String>) {
        *self.warnings.lock().unwrap_or_else(|p| p.into_inner()) = w;
    }

    /// Runs a pass every `log_trim_interval`, forever.
    pub async fn run(self) {
        let every = self.settings.log_trim_interval;
        loop {
            tokio::time::sleep(every).await;
            if !self.zone.has_peers() {
                // GC trims the logs of a zone without peers.
                self.set_warnings(Vec::new());
                continue;
            }
            // A worker that died hands over after three missed passes.
            let ttl = (every * 3).max(Duration::from_secs(3)).as_millis() as u64;
            match self.status.lease("log.trim", &self.holder, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    self.set_warnings(Vec::new());
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "log trim lease");
                    continue;
                }
            }
            match self.pass(&TrimScope::all()).await {
                Ok(r) => {
                    let n = r.mdlog_trimmed + r.datalog_trimmed + r.bilog_trimmed;
                    if n > 0 {
                        tracing::debug!(
                            mdlog = r.mdlog_trimmed,
                            datalog = r.datalog_trimmed,
                            bilog = r.bilog_trimmed,
                            "logs trimmed"
                        );
                    }
                    metrics::counter!("meridian_sync_log_entries_trimmed_total").increment(n);
                    for w in &r.warnings {
                        tracing::warn!("{w}");
                    }
                    self.set_warnings(r.warnings);
                }
                Err(e) => tracing::warn!(error = %e, "log trim pass failed"),
            }
        }
    }

    /// One pass over `scope`: ask every reader how far it has read, trim
    /// through the smallest marker, and report the readers that hold the
    /// logs back.
    pub async fn pass(&self, scope: &TrimScope) -> Result<TrimReport, SyncError> {
        let local = self.zone.params().zone.clone();
        let readers = Readers::of(&self.zone.cluster().map().map, &local);
        // Positions first: whatever a reader reports afterwards is at or
        // below them, and a log no one reads is trimmed only up to them.
        let md_pos = self.zone.log_positions(LogKind::Metadata).await?;
        let dl_pos = self.zone.log_positions(LogKind::Data).await?;
        let mut bilog_cap: HashMap<(String, u32), String> = HashMap::new();
        let mut local_buckets = Vec::new();
        if scope.bilog {
            for l in self.zone.list_buckets(None).await? {
                let Ok((b, _)) = self.zone.bucket_fresh(&l.name).await else {
                    continue;
                };
                if !scope.buckets.is_empty() && !scope.buckets.contains(&b.id) {
                    continue;
                }
                // A bucket no reader syncs needs no log: trim up to here.
                let unread = !readers.zones.iter().any(|r| {
                    r.data
                        && sync_policy::bucket_verdict(
                            readers.policy.as_ref(),
                            &b,
                            ZoneRef {
                                name: &local,
                                id: &readers.zone_id,
                            },
                            ZoneRef {
                                name: &r.name,
                                id: &r.id,
                            },
                        )
                        .syncs()
                });
                if unread {
                    for s in 0..b.num_shards {
                        if let Ok(p) = self.zone.bilog_position(&b, s).await {
                            bilog_cap.insert((b.id.clone(), s), p);
                        }
                    }
                }
                local_buckets.push(b);
            }
        }
        let mut answers: Vec<(&Reader, Result<PeerMarkers, SyncError>)> = Vec::new();
        for r in &readers.zones {
            let got = match (&readers.key, r.endpoints.is_empty()) {
                (None, _) => Err(SyncError::Remote(format!(
                    "zone {local} has no system key to ask it with"
                ))),
                (_, true) => Err(SyncError::Remote("it has no endpoints".into())),
                (Some(key), false) => {
                    let remote = RemoteZone {
                        name: r.name.clone(),
                        id: r.id.clone(),
                        endpoints: r.endpoints.clone(),
                        key: key.clone(),
                        links: Default::default(),
                    };
                    match tokio::time::timeout(
                        Duration::from_secs(30),
                        remote.sync_markers(&readers.zone_id),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(SyncError::Remote("no answer within 30 s".into())),
                    }
                }
            };
            answers.push((r, got));
        }
        let mut report = TrimReport::default();
        let reachable = |a: &Result<PeerMarkers, SyncError>| a.is_ok();
        // The metadata markers a reader holds for this zone: None when it
        // will list everything anyway (not started, or reading another
        // master it will leave for this one with a full sync).
        let md_markers = |m: &PeerMarkers| -> Option<Vec<String>> {
            if m.metadata_source == readers.zone_id {
                Some(m.metadata.clone())
            } else if m.metadata_source.is_empty() && !m.metadata.is_empty() {
                // Markers of an unknown master: keep everything.
                Some(Vec::new())
            } else {
                None
            }
        };
        let all_reachable = |want: fn(&Reader) -> bool| {
            answers
                .iter()
                .filter(|(r, _)| want(r))
                .all(|(_, a)| reachable(a))
        };
        for (kind, on, pos) in [
            (LogKind::Metadata, scope.mdlog, &md_pos),
            (LogKind::Data, scope.datalog, &dl_pos),
        ] {
            let want: fn(&Reader) -> bool = match kind {
                LogKind::Metadata => |r: &Reader| r.metadata,
                LogKind::Data => |r: &Reader| r.data,
            };
            if !on || !all_reachable(want) {
                continue;
            }
            let per_reader: Vec<Option<Vec<String>>> = answers
                .iter()
                .filter(|(r, _)| want(r))
                .filter_map(|(_, a)| a.as_ref().ok())
                .map(|m| match kind {
                    LogKind::Metadata => md_markers(m),
                    LogKind::Data => Some(m.data.clone()),
                })
                .collect();
            for (s, cap) in pos.iter().enumerate() {
                let through = trim_point(
                    cap,
                    per_reader.iter().map(|m| {
                        m.as_ref()
                            .map(|v| v.get(s).map(String::as_str).unwrap_or(""))
                    }),
                );
                if through.is_empty() {
                    continue;
                }
                let n = self.zone.trim_zone_log(kind, s as u32, through).await?;
                match kind {
                    LogKind::Metadata => report.mdlog_trimmed += n,
                    LogKind::Data => report.datalog_trimmed += n,
                }
            }
        }
        if scope.bilog && all_reachable(|r: &Reader| r.data) {
            report.bilog_trimmed = self
                .trim_bilogs(scope, &answers, &local_buckets, bilog_cap)
                .await?;
        }
        // Who holds the logs back, and how far behind.
        for (r, a) in &answers {
            let mut st = ReaderState {
                zone: r.name.clone(),
                reachable: a.is_ok(),
                error: a.as_ref().err().map(ToString::to_string),
                behind_s: 0,
            };
            if let Ok(m) = a {
                let mut oldest: Option<u64> = None;
                let check = |kind: LogKind, markers: &[String], pos: &[String]| {
                    let mut shards = Vec::new();
                    for (s, p) in pos.iter().enumerate() {
                        let after = markers.get(s).cloned().unwrap_or_default();
                        if after.as_str() < p.as_str() {
                            shards.push((kind, s as u32, after));
                        }
                    }
                    shards
                };
                let mut todo = Vec::new();
                if r.metadata
                    && let Some(ms) = md_markers(m)
                {
                    todo.extend(check(LogKind::Metadata, ms.as_slice(), md_pos.as_slice()));
                }
                if r.data {
                    todo.extend(check(LogKind::Data, m.data.as_slice(), dl_pos.as_slice()));
                }
                for (kind, s, after) in todo {
                    if let Some(ts) = self.zone.first_entry_after(kind, s, &after).await? {
                        oldest = Some(oldest.map_or(ts, |o| o.min(ts)));
                    }
                }
                if let Some(ts) = oldest {
                    st.behind_s = meridian_common::now_unix_ms().saturating_sub(ts) / 1000;
                }
            }
            match (&st.error, st.behind_s) {
                (Some(e), _) => report.warnings.push(format!(
                    "SYNC_PEER_UNREACHABLE: zone {} cannot be reached from zone {local} ({e}); {local} keeps its logs until {} has read them",
                    r.name, r.name
                )),
                (None, b) if b >= self.settings.log_trim_warn_lag.as_secs() => {
                    report.warnings.push(format!(
                        "SYNC_PEER_BEHIND: zone {} has not applied changes zone {local} logged {b} s ago; {local} keeps its logs until it has",
                        r.name
                    ))
                }
                _ => {}
            }
            report.readers.push(st);
        }
        Ok(report)
    }

    /// Trims each bucket index shard through the smallest marker of the
    /// data readers. A shard a reader has no status for would be synced
    /// from the start of its log: only its leading entries that every
    /// reader already has (their zone trace names it: changes this zone
    /// applied from them, which log no data log hint) are trimmed. A shard
    /// whose sync a reader has disabled bounds nothing there, but is
    /// trimmed only up to `cap`, the position read before the readers were
    /// asked, and only when the bucket is disabled here too (else the flag
    /// is moving).
    async fn trim_bilogs(
        &self,
        scope: &TrimScope,
        answers: &[(&Reader, Result<PeerMarkers, SyncError>)],
        local: &[BucketInfo],
        cap: HashMap<(String, u32), String>,
    ) -> Result<u64, SyncError> {
        let data_readers: Vec<(&Reader, &PeerMarkers)> = answers
            .iter()
            .filter(|(r, _)| r.data)
            .filter_map(|(r, a)| a.as_ref().ok().map(|m| (*r, m)))
            .collect();
        let markers: Vec<&PeerMarkers> = data_readers.iter().map(|(_, m)| *m).collect();
        let reader_ids: Vec<&str> = data_readers.iter().map(|(r, _)| r.id.as_str()).collect();
        let mut keys: BTreeMap<(String, u32), Option<&BucketInfo>> =
            cap.keys().map(|k| (k.clone(), None)).collect();
        for b in local {
            for s in 0..b.num_shards {
                keys.insert((b.id.clone(), s), Some(b));
            }
        }
        if let Some(first) = markers.first() {
            for k in first.buckets.keys() {
                if scope.buckets.is_empty() || scope.buckets.contains(&k.0) {
                    keys.entry(k.clone()).or_insert(None);
                }
            }
        }
        let mut n = 0;
        for (key, info) in keys {
            let cap_here = cap.get(&key).map(String::as_str);
            let mut through = cap_here.map(str::to_string);
            let mut bounded = true;
            for m in &markers {
                match m.buckets.get(&key) {
                    None => bounded = false,
                    Some(None) if cap_here.is_none() => bounded = false,
                    Some(None) => {}
                    Some(Some(mk)) => {
                        through = Some(through.map_or(mk.clone(), |t| t.min(mk.clone())))
                    }
                }
            }
            let mut through = if bounded { through } else { None };
            if through.as_deref().is_none_or(str::is_empty)
                && !reader_ids.is_empty()
                && let Some(b) = info
            {
                through = self.quiet_prefix_end(b, key.1, &reader_ids).await?;
            }
            if let Some(t) = through.filter(|t| !t.is_empty()) {
                n += self.zone.trim_bilog_shard(&key.0, key.1, &t).await?;
            }
        }
        Ok(n)
    }

    /// The last entry of the leading run of a bucket shard's log that every
    /// zone in `readers` already has (None when the first entry is needed).
    async fn quiet_prefix_end(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        readers: &[&str],
    ) -> Result<Option<String>, SyncError> {
        let mut end = None;
        let mut after = String::new();
        loop {
            let (items, more) = self.zone.bilog_list(bucket, shard, &after, 1000).await?;
            for i in &items {
                if !readers
                    .iter()
                    .all(|r| i.entry.zone_trace.iter().any(|z| z == r))
                {
                    return Ok(end);
                }
                end = Some(i.marker.clone());
            }
            match items.last() {
                Some(l) if more => after = l.marker.clone(),
                _ => return Ok(end),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_proto::multisite::{MultisiteState, Period, Realm, Zone as ZoneEntry, Zonegroup};

    fn zone(id: &str, eps: &[&str]) -> ZoneEntry {
        ZoneEntry {
            id: id.into(),
            name: format!("zone-{id}"),
            endpoints: eps.iter().map(|e| e.to_string()).collect(),
            realm_id: "r".into(),
            sync_from_all: true,
            ..Default::default()
        }
    }

    fn map(master: &str, groups: Vec<(&str, Vec<ZoneEntry>)>) -> ClusterMap {
        let zonegroups = groups
            .into_iter()
            .map(|(id, zones)| Zonegroup {
                id: id.into(),
                name: id.into(),
                zones,
                ..Default::default()
            })
            .collect::<Vec<_>>();
        let local = zonegroups[0].zones[0].clone();
        ClusterMap {
            multisite: Some(MultisiteState {
                zones: vec![local],
                realms: vec![Realm {
                    id: "r".into(),
                    current_period: "p".into(),
                    ..Default::default()
                }],
                periods: vec![Period {
                    id: "p".into(),
                    master_zone: master.into(),
                    zonegroups,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_master_is_read_for_metadata_by_all_and_for_data_by_its_zonegroup() {
        let m = map(
            "a",
            vec![
                (
                    "g1",
                    vec![zone("a", &["http://a"]), zone("b", &["http://b"])],
                ),
                ("g2", vec![zone("c", &["http://c"])]),
            ],
        );
        let r = Readers::of(&m, "zone-a");
        assert!(r.has_peers);
        let got: Vec<(&str, bool, bool)> = r
            .zones
            .iter()
            .map(|z| (z.id.as_str(), z.metadata, z.data))
            .collect();
        assert_eq!(got, vec![("b", true, true), ("c", true, false)]);
    }

    #[test]
    fn a_secondary_is_read_for_data_only_and_sync_from_is_honoured() {
        let mut b = zone("b", &["http://b"]);
        b.sync_from_all = false;
        b.sync_from = vec!["zone-c".into()];
        let m = map(
            "c",
            vec![(
                "g1",
                vec![zone("a", &["http://a"]), b, zone("c", &["http://c"])],
            )],
        );
        let r = Readers::of(&m, "zone-a");
        let got: Vec<(&str, bool, bool)> = r
            .zones
            .iter()
            .map(|z| (z.id.as_str(), z.metadata, z.data))
            .collect();
        assert_eq!(got, vec![("c", false, true)], "b syncs only from c");
    }

    #[test]
    fn a_zone_without_endpoints_still_counts_its_readers() {
        // A pair agent may read it with endpoints of its own: its readers
        // are asked all the same (and hold the logs until they have read).
        let m = map(
            "a",
            vec![("g1", vec![zone("a", &[]), zone("b", &["http://b"])])],
        );
        let r = Readers::of(&m, "zone-a");
        let got: Vec<(&str, bool, bool)> = r
            .zones
            .iter()
            .map(|z| (z.id.as_str(), z.metadata, z.data))
            .collect();
        assert_eq!(got, vec![("b", true, true)]);
    }

    #[test]
    fn the_trim_point_is_the_smallest_marker_below_the_cap() {
        let cap = "00000000000000000009";
        assert_eq!(
            trim_point(
                cap,
                [Some("00000000000000000005"), Some("00000000000000000007")]
            ),
            "00000000000000000005"
        );
        assert_eq!(
            trim_point(cap, [Some(""), Some("00000000000000000007")]),
            ""
        );
        assert_eq!(trim_point(cap, [None, None]), cap, "no bound: the cap");
        assert_eq!(
            trim_point(cap, [Some("00000000000000000012")]),
            cap,
            "never past what was read first"
        );
    }
}
