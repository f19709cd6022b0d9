//! The source zone as the sync engine reads it: its ZoneService on the
//! source gateways' S3 ports, every request signed with a system key.

use crate::SyncError;
use crate::peer::{self, sign};
use futures::StreamExt as _;
use meridian_proto::multisite::*;
use meridian_zone::data::Body;
use meridian_zone::{BilogEntry, BucketInfo, IndexEntry};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A zone another zone syncs from.
#[derive(Debug, Clone)]
pub struct RemoteZone {
    /// Zone name.
    pub name: String,
    /// Zone id (checked against what its gateways answer).
    pub id: String,
    /// Its gateways (`http://host:port`).
    pub endpoints: Vec<String>,
    /// The key requests are signed with.
    pub key: SystemKey,
    /// Connections to `endpoints`, kept across calls (clones share them).
    pub links: peer::ZoneLinks,
}

/// How far a peer has read a zone's logs (see [`RemoteZone::sync_markers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMarkers {
    /// The zone its metadata sync reads ("" none).
    pub metadata_source: String,
    /// Per metadata log shard.
    pub metadata: Vec<String>,
    /// Per data log shard ("" not started).
    pub data: Vec<String>,
    /// Per (bucket id, shard): the marker, None when the peer has bucket
    /// sync disabled (it needs none of that log).
    pub buckets: std::collections::BTreeMap<(String, u32), Option<String>>,
}

fn parse<T: DeserializeOwned>(what: &str, b: &[u8]) -> Result<T, SyncError> {
    serde_json::from_slice(b).map_err(|e| SyncError::Corrupt(format!("{what}: {e}")))
}

fn proto_kind(kind: meridian_zone::log::LogKind) -> i32 {
    match kind {
        meridian_zone::log::LogKind::Metadata => LogKind::Metadata as i32,
        meridian_zone::log::LogKind::Data => LogKind::Data as i32,
    }
}

impl RemoteZone {
    /// `call` on whichever of the zone's endpoints answers, over the kept
    /// connections, each call waiting at most [`peer::CALL_TIMEOUT`].
    async fn ask<T, F, Fut>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: FnMut(
            meridian_proto::multisite::zone_service_client::ZoneServiceClient<
                tonic::transport::Channel,
            >,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.ask_within(Some(peer::CALL_TIMEOUT), call).await
    }

    /// [`Self::ask`] with its own bound on the wait (None: none).
    async fn ask_within<T, F, Fut>(
        &self,
        timeout: Option<Duration>,
        call: F,
    ) -> Result<T, tonic::Status>
    where
        F: FnMut(
            meridian_proto::multisite::zone_service_client::ZoneServiceClient<
                tonic::transport::Channel,
            >,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        peer::on_any_via(&self.links, &self.endpoints, timeout, call).await
    }

    /// The source's log positions, waiting up to `wait` for one to move past
    /// `known` (empty `known`: answer at once). Checks the answering zone is
    /// the one meant.
    pub async fn log_positions(
        &self,
        kind: meridian_zone::log::LogKind,
        known: &[String],
        wait: Duration,
    ) -> Result<Vec<String>, SyncError> {
        let r = self.positions_reply(kind, known, wait).await?;
        if !self.id.is_empty() && r.zone_id != self.id {
            return Err(SyncError::WrongZone {
                expected: format!("{} ({})", self.name, self.id),
                found: r.zone_id,
            });
        }
        Ok(r.positions)
    }

    /// The id of the zone answering at these endpoints (checks the key too).
    pub async fn whoami(&self) -> Result<String, SyncError> {
        let r = self
            .positions_reply(meridian_zone::log::LogKind::Metadata, &[], Duration::ZERO)
            .await?;
        Ok(r.zone_id)
    }

    /// `LogPositions`, answered by whichever endpoint responds.
    async fn positions_reply(
        &self,
        kind: meridian_zone::log::LogKind,
        known: &[String],
        wait: Duration,
    ) -> Result<LogPositionsReply, SyncError> {
        let req = LogPositionsRequest {
            auth: None,
            kind: proto_kind(kind),
            known: known.to_vec(),
            wait_ms: wait.as_millis() as u32,
        };
        let timeout = wait + Duration::from_secs(30);
        self.ask_within(Some(timeout), |mut c| {
            let req = sign(req.clone(), &self.key);
            async move { c.log_positions(req).await }
        })
        .await
        .map_err(SyncError::from)
    }

    /// How far this zone has read the logs of zone `source_id`: its
    /// metadata sync source and markers, its data sync markers for
    /// `source_id`, and every bucket shard marker (read page by page).
    pub async fn sync_markers(&self, source_id: &str) -> Result<PeerMarkers, SyncError> {
        let mut out = PeerMarkers::default();
        let mut after = String::new();
        loop {
            let req = SyncMarkersRequest {
                auth: None,
                source_zone_id: source_id.to_string(),
                bucket_after: after.clone(),
                max_buckets: 1000,
            };
            let r = self
                .ask(|mut c| {
                    let req = sign(req.clone(), &self.key);
                    async move { c.sync_markers(req).await }
                })
                .await?;
            if !self.id.is_empty() && r.zone_id != self.id {
                return Err(SyncError::WrongZone {
                    expected: format!("{} ({})", self.name, self.id),
                    found: r.zone_id,
                });
            }
            if after.is_empty() {
                out.metadata_source = r.metadata_source;
                out.metadata = r.metadata_markers;
                out.data = r.data_markers;
            }
            let last = r
                .buckets
                .last()
                .map(|b| crate::status::bucket_shard_key(&b.bucket_id, b.shard));
            for b in r.buckets {
                let m = if b.disabled { None } else { Some(b.marker) };
                out.buckets.insert((b.bucket_id, b.shard), m);
            }
            match last {
                Some(l) if r.more_buckets => after = l,
                _ => return Ok(out),
            }
        }
    }

    /// A page of a zone-wide log shard after `after`.
    pub async fn list_log<T: DeserializeOwned>(
        &self,
        kind: meridian_zone::log::LogKind,
        shard: u32,
        after: &str,
        max: u32,
    ) -> Result<(Vec<(String, T)>, bool), SyncError> {
        let req = ListLogRequest {
            auth: None,
            kind: proto_kind(kind),
            shard,
            after: after.to_string(),
            max,
        };
        let r = self
            .ask(|mut c| {
                let req = sign(req.clone(), &self.key);
                async move { c.list_log(req).await }
            })
            .await?;
        let items = r
            .items
            .into_iter()
            .map(|i| Ok((i.marker, parse("log entry", &i.entry)?)))
            .collect::<Result<Vec<_>, SyncError>>()?;
        Ok((items, r.more))
    }

    /// A page of a bucket index shard's log after `after`.
    pub async fn list_bilog(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        after: &str,
        max: u32,
    ) -> Result<(Vec<(String, BilogEntry)>, bool), SyncError> {
        let req = ListBilogRequest {
            auth: None,
            bucket: bucket.name.clone(),
            bucket_id: bucket.id.clone(),
            shard,
            after: after.to_string(),
            max,
        };
        let r = self
            .ask(|mut c| {
                let req = sign(req.clone(), &self.key);
                async move { c.list_bilog(req).await }
            })
            .await?;
        let items = r
            .items
            .into_iter()
            .map(|i| Ok((i.marker, parse("bilog entry", &i.entry)?)))
            .collect::<Result<Vec<_>, SyncError>>()?;
        Ok((items, r.more))
    }

    /// A page of every version in a bucket shard after `after`, and the
    /// shard's log position read before it.
    pub async fn list_shard(
        &self,
        bucket: &BucketInfo,
        shard: u32,
        after: &str,
        max: u32,
    ) -> Result<(Vec<(String, IndexEntry)>, bool, String), SyncError> {
        let req = ListShardRequest {
            auth: None,
            bucket: bucket.name.clone(),
            bucket_id: bucket.id.clone(),
            shard,
            after: after.to_string(),
            max,
        };
        let r = self
            .ask(|mut c| {
                let req = sign(req.clone(), &self.key);
                async move { c.list_shard(req).await }
            })
            .await?;
        let items = r
            .items
            .into_iter()
            .map(|i| Ok((i.marker, parse("index entry", &i.entry)?)))
            .collect::<Result<Vec<_>, SyncError>>()?;
        Ok((items, r.more, r.log_position))
    }

    /// For each (bucket, shard, marker): whether the source logged changes
    /// after it that zone `for_zone` does not have yet (its own changes,
    /// echoed in the source's log, do not count).
    pub async fn bilog_pending(
        &self,
        shards: &[(BucketInfo, u32, String)],
        for_zone: &str,
    ) -> Result<Vec<bool>, SyncError> {
        let mut out = Vec::with_capacity(shards.len());
        for chunk in shards.chunks(500) {
            let req = BilogPendingRequest {
                auth: None,
                shards: chunk
                    .iter()
                    .map(|(b, s, m)| bilog_pending_request::Shard {
                        bucket: b.name.clone(),
                        bucket_id: b.id.clone(),
                        shard: *s,
                        marker: m.clone(),
                    })
                    .collect(),
                for_zone: for_zone.to_string(),
            };
            let r = self
                .ask(|mut c| {
                    let req = sign(req.clone(), &self.key);
                    async move { c.bilog_pending(req).await }
                })
                .await?;
            if r.pending.len() != chunk.len() {
                return Err(SyncError::Corrupt(format!(
                    "bilog pending answered {} shards of {}",
                    r.pending.len(),
                    chunk.len()
                )));
            }
            out.extend(r.pending);
        }
        Ok(out)
    }

    /// A page of metadata names (`user` or `bucket`) after `after`.
    pub async fn list_metadata(
        &self,
        section: &str,
        after: &str,
        max: u32,
    ) -> Result<(Vec<String>, bool), SyncError> {
        let req = ListMetadataRequest {
            auth: None,
            section: section.to_string(),
            after: after.to_string(),
            max,
        };
        let r = self
            .ask(|mut c| {
                let req = sign(req.clone(), &self.key);
                async move { c.list_metadata(req).await }
            })
            .await?;
        Ok((r.names, r.more))
    }

    /// A metadata record as the source holds it (None: it does not exist).
    pub async fn get_metadata<T: DeserializeOwned>(
        &self,
        section: &str,
        name: &str,
    ) -> Result<Option<T>, SyncError> {
        let req = GetMetadataRequest {
            auth: None,
            section: section.to_string(),
            name: name.to_string(),
        };
        let r = self
            .ask(|mut c| {
                let req = sign(req.clone(), &self.key);
                async move { c.get_metadata(req).await }
            })
            .await?;
        if !r.found {
            return Ok(None);
        }
        Ok(Some(parse(&format!("{section}:{name}"), &r.record)?))
    }

    /// One version with its bytes (None: the source no longer has it). The
    /// stream has no overall timeout (large objects); each message must
    /// arrive within `idle`.
    pub async fn fetch(
        &self,
        bucket: &BucketInfo,
        key: &str,
        version_id: &str,
        idle: Duration,
    ) -> Result<Option<(IndexEntry, Body)>, SyncError> {
        let req = FetchObjectRequest {
            auth: None,
            bucket: bucket.name.clone(),
            bucket_id: bucket.id.clone(),
            key: key.to_string(),
            version_id: version_id.to_string(),
            if_not_mtime_ns: 0,
            if_not_etag: String::new(),
        };
        let mut stream = self
            .ask_within(None, |mut c| {
                let req = sign(req.clone(), &self.key);
                async move { c.fetch_object(req).await }
            })
            .await?;
        let first = match tokio::time::timeout(idle, stream.message()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return Err(SyncError::Corrupt("empty object stream".into())),
            Ok(Err(s)) => return Err(s.into()),
            Err(_) => return Err(SyncError::Remote("object stream stalled".into())),
        };
        if !first.found {
            return Ok(None);
        }
        let entry: IndexEntry = parse("index entry", &first.entry)?;
        let body = futures::stream::unfold(stream, move |mut s| async move {
            match tokio::time::timeout(idle, s.message()).await {
                Ok(Ok(Some(m))) => Some((Ok(m.data), s)),
                Ok(Ok(None)) => None,
                Ok(Err(st)) => Some((Err(format!("object stream: {}", st.message())), s)),
                Err(_) => Some((Err("object stream stalled".to_string()), s)),
            }
        })
        .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.is_empty())));
        Ok(Some((entry, Box::pin(body))))
    }
}
