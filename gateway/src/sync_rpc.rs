//! The zone-to-zone calls another zone's sync makes on this zone: log
//! positions (a long poll), log pages, bucket shard listings with their log
//! position, the bilog comparison, metadata listing and reads, and object
//! versions as a stream. Every one reads; none changes this zone.

use futures::{Stream, StreamExt as _};
use meridian_proto::multisite::*;
use meridian_zone::log::LogKind as ZoneLogKind;
use meridian_zone::{BucketInfo, Zone, ZoneError};
use std::pin::Pin;
use std::time::Duration;
use tonic::Status;

/// Pages of a bucket shard's log BilogPending reads past entries the caller has.
const PENDING_SCAN_PAGES: usize = 4;

/// Longest long poll a caller may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The stream of one object version.
pub type ObjectStream = Pin<Box<dyn Stream<Item = Result<ObjectChunk, Status>> + Send>>;

fn status(e: ZoneError) -> Status {
    match e {
        ZoneError::NoSuchBucket(_) | ZoneError::NoSuchKey(_) | ZoneError::NoSuchVersion { .. } => {
            Status::not_found(e.to_string())
        }
        ZoneError::InvalidArgument(_) | ZoneError::InvalidBucketName { .. } => {
            Status::invalid_argument(e.to_string())
        }
        e => Status::unavailable(e.to_string()),
    }
}

fn kind(k: i32) -> Result<ZoneLogKind, Status> {
    match LogKind::try_from(k) {
        Ok(LogKind::Metadata) => Ok(ZoneLogKind::Metadata),
        Ok(LogKind::Data) => Ok(ZoneLogKind::Data),
        _ => Err(Status::invalid_argument(
            "log kind must be METADATA or DATA",
        )),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<bytes::Bytes, Status> {
    serde_json::to_vec(v)
        .map(bytes::Bytes::from)
        .map_err(|e| Status::internal(e.to_string()))
}

/// The bucket a request names, checked against the instance it expects
/// (the cached record first: sync asks about the same buckets constantly).
async fn bucket(zone: &Zone, name: &str, id: &str) -> Result<BucketInfo, Status> {
    if let Ok(b) = zone.bucket(name).await
        && (id.is_empty() || b.id == id)
    {
        return Ok((*b).clone());
    }
    let (b, _) = zone.bucket_fresh(name).await.map_err(status)?;
    if !id.is_empty() && b.id != id {
        return Err(Status::not_found(format!(
            "bucket {name} is instance {} here, not {id}",
            b.id
        )));
    }
    Ok(b)
}

/// LogPositions.
pub async fn log_positions(
    zone: &Zone,
    req: LogPositionsRequest,
) -> Result<LogPositionsReply, Status> {
    let k = kind(req.kind)?;
    let wait = Duration::from_millis(u64::from(req.wait_ms)).min(MAX_WAIT);
    let positions = if req.known.is_empty() || wait.is_zero() {
        zone.log_positions(k).await
    } else {
        zone.wait_log_positions(k, &req.known, wait).await
    }
    .map_err(status)?;
    Ok(LogPositionsReply {
        positions,
        zone_id: zone.zone_id(),
    })
}

/// ListLog.
pub async fn list_log(zone: &Zone, req: ListLogRequest) -> Result<ListLogReply, Status> {
    let k = kind(req.kind)?;
    if req.shard >= zone.log_shards(k) {
        return Err(Status::invalid_argument(format!(
            "shard {} does not exist (this zone has {})",
            req.shard,
            zone.log_shards(k)
        )));
    }
    validate_marker(&req.after)?;
    let (items, more) = match k {
        ZoneLogKind::Metadata => {
            let (v, more) = zone
                .mdlog_list(req.shard, &req.after, req.max)
                .await
                .map_err(status)?;
            (
                v.into_iter()
                    .map(|i| (i.marker, json(&i.entry)))
                    .collect::<Vec<_>>(),
                more,
            )
        }
        ZoneLogKind::Data => {
            let (v, more) = zone
                .datalog_list(req.shard, &req.after, req.max)
                .await
                .map_err(status)?;
            (
                v.into_iter()
                    .map(|i| (i.marker, json(&i.entry)))
                    .collect::<Vec<_>>(),
                more,
            )
        }
    };
    Ok(ListLogReply {
        items: items
            .into_iter()
            .map(|(marker, e)| Ok(LogItem { marker, entry: e? }))
            .collect::<Result<_, Status>>()?,
        more,
    })
}

/// A log marker is empty or 20 digits.
fn validate_marker(m: &str) -> Result<(), Status> {
    if m.is_empty() || (m.len() == 20 && m.bytes().all(|b| b.is_ascii_digit())) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "marker {m:?} is not a log position (20 digits)"
        )))
    }
}

/// ListBilog.
pub async fn list_bilog(zone: &Zone, req: ListBilogRequest) -> Result<ListLogReply, Status> {
    validate_marker(&req.after)?;
    let b = bucket(zone, &req.bucket, &req.bucket_id).await?;
    if req.shard >= b.num_shards {
        return Err(Status::invalid_argument(format!(
            "bucket {} has {} shards",
            b.name, b.num_shards
        )));
    }
    let (v, more) = zone
        .bilog_list(&b, req.shard, &req.after, req.max)
        .await
        .map_err(status)?;
    Ok(ListLogReply {
        items: v
            .into_iter()
            .map(|i| {
                Ok(LogItem {
                    marker: i.marker,
                    entry: json(&i.entry)?,
                })
            })
            .collect::<Result<_, Status>>()?,
        more,
    })
}

/// ListShard.
pub async fn list_shard(zone: &Zone, req: ListShardRequest) -> Result<ListShardReply, Status> {
    let b = bucket(zone, &req.bucket, &req.bucket_id).await?;
    if req.shard >= b.num_shards {
        return Err(Status::invalid_argument(format!(
            "bucket {} has {} shards",
            b.name, b.num_shards
        )));
    }
    // The position first: everything logged after it is seen by incremental sync.
    let log_position = zone.bilog_position(&b, req.shard).await.map_err(status)?;
    let (v, more) = zone
        .list_shard_versions(&b, req.shard, req.after.as_bytes(), req.max)
        .await
        .map_err(status)?;
    Ok(ListShardReply {
        items: v
            .into_iter()
            .map(|(k, e)| {
                Ok(LogItem {
                    marker: String::from_utf8(k.to_vec())
                        .map_err(|_| Status::internal("index key is not UTF-8"))?,
                    entry: json(&e)?,
                })
            })
            .collect::<Result<_, Status>>()?,
        more,
        log_position,
    })
}

/// BilogPending.
pub async fn bilog_pending(
    zone: &Zone,
    req: BilogPendingRequest,
) -> Result<BilogPendingReply, Status> {
    if req.shards.len() > 1000 {
        return Err(Status::invalid_argument("at most 1000 shards per request"));
    }
    let for_zone = req.for_zone.clone();
    let checks = req.shards.into_iter().map(|s| {
        let for_zone = for_zone.clone();
        async move {
            validate_marker(&s.marker)?;
            let b = match bucket(zone, &s.bucket, &s.bucket_id).await {
                Ok(b) => b,
                // Gone here: nothing more will come from it.
                Err(st) if st.code() == tonic::Code::NotFound => return Ok(false),
                Err(st) => return Err(st),
            };
            if s.shard >= b.num_shards {
                return Ok(false);
            }
            // Entries the caller already has (it is in their trace) do not
            // count; past this many of them, say pending (the caller syncs
            // the shard and moves its marker over them).
            let mut after = s.marker.clone();
            for _ in 0..PENDING_SCAN_PAGES {
                let (v, more) = zone
                    .bilog_list(&b, s.shard, &after, 1000)
                    .await
                    .map_err(status)?;
                if v.iter()
                    .any(|i| for_zone.is_empty() || !i.entry.zone_trace.contains(&for_zone))
                {
                    return Ok(true);
                }
                match v.last() {
                    Some(l) if more => after = l.marker.clone(),
                    _ => return Ok(false),
                }
            }
            Ok(true)
        }
    });
    let pending = futures::stream::iter(checks)
        .buffered(32)
        .collect::<Vec<Result<bool, Status>>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(BilogPendingReply { pending })
}

/// ListMetadata.
pub async fn list_metadata(
    zone: &Zone,
    req: ListMetadataRequest,
) -> Result<ListMetadataReply, Status> {
    let mut names: Vec<String> = match req.section.as_str() {
        "user" => zone.list_users().await.map_err(status)?,
        "bucket" => zone
            .list_buckets(None)
            .await
            .map_err(status)?
            .into_iter()
            .map(|b| b.name)
            .collect(),
        s => {
            return Err(Status::invalid_argument(format!(
                "unknown metadata section {s:?} (user, bucket)"
            )));
        }
    };
    names.sort();
    let max = req.max.clamp(1, 1000) as usize;
    let rest: Vec<String> = names.into_iter().filter(|n| *n > req.after).collect();
    let more = rest.len() > max;
    Ok(ListMetadataReply {
        names: rest.into_iter().take(max).collect(),
        more,
    })
}

/// GetMetadata.
pub async fn get_metadata(
    zone: &Zone,
    req: GetMetadataRequest,
) -> Result<GetMetadataReply, Status> {
    let record = match req.section.as_str() {
        "user" => match zone.user(&req.name).await {
            Ok(u) => Some(json(&u)?),
            Err(ZoneError::NoSuchUser(_)) => None,
            Err(e) => return Err(status(e)),
        },
        "bucket" => match zone.bucket_fresh(&req.name).await {
            Ok((b, _)) => Some(json(&b)?),
            Err(ZoneError::NoSuchBucket(_)) => None,
            Err(e) => return Err(status(e)),
        },
        s => {
            return Err(Status::invalid_argument(format!(
                "unknown metadata section {s:?} (user, bucket)"
            )));
        }
    };
    Ok(GetMetadataReply {
        found: record.is_some(),
        record: record.unwrap_or_default(),
    })
}

/// FetchObject: the entry, then the bytes in chunks as they are read.
pub async fn fetch_object(zone: &Zone, req: FetchObjectRequest) -> Result<ObjectStream, Status> {
    let b = match bucket(zone, &req.bucket, &req.bucket_id).await {
        Ok(b) => b,
        Err(s) if s.code() == tonic::Code::NotFound => {
            return Ok(Box::pin(futures::stream::once(async {
                Ok(ObjectChunk::default())
            })));
        }
        Err(s) => return Err(s),
    };
    let vid = (!req.version_id.is_empty()).then_some(req.version_id.as_str());
    let e = match zone.lookup(&b, &req.key, vid).await {
        Ok(e) => e,
        Err(ZoneError::NoSuchKey(_) | ZoneError::NoSuchVersion { .. }) => {
            return Ok(Box::pin(futures::stream::once(async {
                Ok(ObjectChunk::default())
            })));
        }
        Err(e) => return Err(status(e)),
    };
    let not_modified = req.if_not_mtime_ns == e.mtime_ns
        && !req.if_not_etag.is_empty()
        && req.if_not_etag == e.etag;
    let head = ObjectChunk {
        found: true,
        entry: json(&e)?,
        not_modified,
        data: Default::default(),
    };
    if not_modified || e.delete_marker || e.size == 0 {
        return Ok(Box::pin(futures::stream::once(async move { Ok(head) })));
    }
    // Sent as plaintext (the link is the zones' own, TLS when configured);
    // the receiving zone seals it again with its copy of the master key.
    // SSE-C data cannot be read without its owner's key: it does not replicate.
    let key = zone
        .params()
        .keys
        .data_key(e.attrs.encryption.as_ref(), None)
        .map_err(|err| {
            Status::failed_precondition(format!(
                "{}/{} version {} cannot be replicated: {err}",
                b.name, e.key, e.version_id
            ))
        })?;
    let data = zone
        .replication_source((&b.id, &e.key), &e.manifest.runs, (0, e.size), key)
        .map(|r| match r {
            Ok(bytes) => Ok(ObjectChunk {
                data: bytes,
                ..Default::default()
            }),
            Err(err) => Err(Status::unavailable(format!("read object data: {err}"))),
        });
    Ok(Box::pin(
        futures::stream::once(async move { Ok(head) }).chain(data),
    ))
}
