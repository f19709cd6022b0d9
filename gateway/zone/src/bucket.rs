//! Buckets, in the meta pool: `bucket.<name>` holds the [`BucketInfo`]
//! (created exclusively, so names are unique in the zone) and the `buckets`
//! omap directory lists them with their owners. A bucket's index shards are
//! created before its record (a crash leaves empty, unreferenced shards,
//! never a record without shards).

use crate::index::{self, RangeReq};
use crate::{
    BucketInfo, CannedAcl, Result, ShardState, Versioning, Zone, ZoneError, json, parse, random_id,
};
use bytes::Bytes;
use meridian_client::ClientError;
use meridian_client::ops::sub;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const BUCKETS_DIR: &str = "buckets";

fn bucket_object(name: &str) -> String {
    format!("bucket.{name}")
}

/// A `buckets` directory entry.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
struct DirEntry {
    owner: String,
    created_ms: u64,
}

/// A change of a bucket record that a secondary zone forwards to the
/// metadata master (every bucket metadata write is made there first).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketChange {
    /// PutBucketVersioning.
    Versioning(Versioning),
    /// PutBucketAcl with a canned ACL only (drops any grants).
    Acl(CannedAcl),
    /// PutBucketAcl with grants beyond the canned ACL.
    AclGrants {
        /// The canned part.
        acl: CannedAcl,
        /// The rest.
        grants: Vec<crate::AclGrant>,
    },
    /// PutBucketTagging / DeleteBucketTagging (empty).
    Tags(Vec<(String, String)>),
    /// `bucket sync enable` (true) / `bucket sync disable` (false).
    SyncEnabled(bool),
    /// `ratelimit set|enable|disable --ratelimit-scope=bucket`.
    RateLimit(crate::RateLimit),
    /// `sync group ... --bucket` (None: no bucket policy).
    SyncPolicy(Option<meridian_proto::multisite::SyncPolicy>),
    /// PutBucketPolicy (the JSON document, checked by the S3 front end) /
    /// DeleteBucketPolicy (None).
    AccessPolicy(Option<String>),
    /// PutBucketCors / DeleteBucketCors (empty).
    Cors(Vec<crate::CorsRule>),
    /// PutBucketLifecycleConfiguration / DeleteBucketLifecycle (empty).
    Lifecycle(Vec<crate::lifecycle::LifecycleRule>),
    /// PutObjectLockConfiguration (or CreateBucket with object lock):
    /// enables object lock for good; the bucket must be versioned.
    ObjectLock(crate::ObjectLockConfig),
    /// PutBucketEncryption / DeleteBucketEncryption (None).
    Encryption(Option<crate::BucketEncryption>),
    /// PutPublicAccessBlock / DeletePublicAccessBlock (None).
    PublicAccessBlock(Option<crate::PublicAccessBlock>),
    /// PutBucketOwnershipControls / DeleteBucketOwnershipControls (None).
    Ownership(Option<crate::ObjectOwnership>),
}

impl BucketChange {
    /// Applies the change to the bucket record (versioning also rewrites
    /// the shard headers: see [`Zone::change_bucket`]).
    fn apply(&self, b: &mut BucketInfo) -> Result<()> {
        match self {
            BucketChange::Versioning(_) => {
                return Err(ZoneError::InvalidArgument(
                    "versioning changes go through the index shard headers".into(),
                ));
            }
            BucketChange::ObjectLock(cfg) => {
                if b.versioning != Versioning::Enabled {
                    return Err(ZoneError::InvalidBucketState(
                        "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration".into(),
                    ));
                }
                b.object_lock = Some(*cfg);
            }
            BucketChange::Acl(a) => {
                b.acl = *a;
                b.grants.clear();
            }
            BucketChange::AclGrants { acl, grants } => {
                b.acl = *acl;
                b.grants = grants.clone();
            }
            BucketChange::Tags(t) => b.tags = t.clone(),
            BucketChange::SyncEnabled(on) => b.sync_disabled = !on,
            BucketChange::RateLimit(l) => b.ratelimit = *l,
            BucketChange::SyncPolicy(p) => {
                b.sync_policy = p.clone().filter(|p| !p.groups.is_empty());
            }
            BucketChange::AccessPolicy(p) => b.policy = p.clone(),
            BucketChange::Cors(rules) => b.cors = rules.clone(),
            BucketChange::Lifecycle(rules) => b.lifecycle = rules.clone(),
            BucketChange::Encryption(e) => b.encryption = e.clone(),
            BucketChange::PublicAccessBlock(p) => b.public_access_block = *p,
            BucketChange::Ownership(o) => b.ownership = *o,
        }
        Ok(())
    }
}

/// A bucket as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketListing {
    /// Name.
    pub name: String,
    /// Owner uid.
    pub owner: String,
    /// Creation time, Unix ms.
    pub created_ms: u64,
}

/// Object count and bytes of a bucket (current versions and noncurrent ones).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BucketStats {
    /// Objects (versions that are not delete markers).
    pub num_objects: u64,
    /// Their bytes.
    pub size: u64,
    /// Their bytes rounded up to 4 KiB each (RGW's `size_actual`).
    pub size_actual: u64,
    /// Bytes their data occupies in the data pool after compression (per
    /// replica; RGW's `size_utilized`).
    pub size_utilized: u64,
    /// Multipart uploads in progress.
    pub uploads: u64,
}

/// Checks a bucket name against AWS's rules for new buckets.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(ZoneError::InvalidBucketName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.len() < 3 || name.len() > 63 {
        return bad("bucket names are 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return bad("bucket names begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("no two adjacent periods, nor a period next to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("bucket names must not look like an IP address");
    }
    // AWS's reserved prefixes and suffixes (access points, S3 Express,
    // table buckets, multi-region access points, documentation examples).
    const PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    if let Some(p) = PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return bad(&format!("the prefix {p} is reserved"));
    }
    if let Some(s) = SUFFIXES.iter().find(|s| name.ends_with(*s)) {
        return bad(&format!("the suffix {s} is reserved"));
    }
    Ok(())
}

impl Zone {
    /// The bucket record (cached for `rgw_cache_ttl_ms`).
    pub async fn bucket(&self, name: &str) -> Result<Arc<BucketInfo>> {
        if let Some(b) = Self::cache_get(&self.inner.buckets, name, self.params().cache_ttl) {
            return Ok(b);
        }
        let b = self.bucket_fresh(name).await?.0;
        let b = Arc::new(b);
        Self::cache_put(&self.inner.buckets, name, b.clone());
        Ok(b)
    }

    /// The bucket record as stored now, and its version.
    pub async fn bucket_fresh(&self, name: &str) -> Result<(BucketInfo, u64)> {
        self.read_record::<BucketInfo>(&self.pools().meta, &bucket_object(name))
            .await?
            .ok_or_else(|| ZoneError::NoSuchBucket(name.into()))
    }

    /// Creates a bucket owned by `owner` (a user of this zone).
    pub async fn create_bucket(
        &self,
        name: &str,
        owner: &str,
        acl: CannedAcl,
    ) -> Result<BucketInfo> {
        validate_bucket_name(name)?;
        let user = self.user(owner).await?;
        if user.max_buckets > 0 {
            let n = self.list_buckets(Some(owner)).await?.len();
            if n >= user.max_buckets as usize {
                return Err(ZoneError::TooManyBuckets(user.max_buckets));
            }
        }
        self.create_bucket_for(name, owner, acl).await
    }

    /// Creates a bucket for `owner`, who may be a user of another zone (a
    /// create forwarded to this metadata master zone).
    pub async fn create_bucket_for(
        &self,
        name: &str,
        owner: &str,
        acl: CannedAcl,
    ) -> Result<BucketInfo> {
        let zonegroup = self.params().zonegroup.clone();
        self.create_bucket_in(name, owner, acl, &zonegroup).await
    }

    /// Creates a bucket for `owner` recorded in `zonegroup` (a create
    /// forwarded by a zone of another zonegroup to this metadata master).
    pub async fn create_bucket_in(
        &self,
        name: &str,
        owner: &str,
        acl: CannedAcl,
        zonegroup: &str,
    ) -> Result<BucketInfo> {
        validate_bucket_name(name)?;
        let info = BucketInfo {
            v: 1,
            name: name.into(),
            id: random_id(),
            owner: owner.into(),
            created_ms: meridian_common::now_unix_ms(),
            zonegroup: zonegroup.into(),
            num_shards: self.params().index_shards,
            versioning: Versioning::Off,
            acl,
            ..Default::default()
        };
        self.adopt_bucket(&info).await
    }

    /// Stores a bucket instance as given (a new one, or the master zone's
    /// record on a secondary, so both zones name the same instance).
    pub async fn adopt_bucket(&self, info: &BucketInfo) -> Result<BucketInfo> {
        self.logged(
            "bucket",
            &info.name,
            "write",
            self.adopt_bucket_unlogged(info),
        )
        .await
    }

    async fn adopt_bucket_unlogged(&self, info: &BucketInfo) -> Result<BucketInfo> {
        let name = info.name.as_str();
        if let Ok((b, _)) = self.bucket_fresh(name).await {
            if b.id == info.id {
                return Ok(b);
            }
            return Err(ZoneError::BucketExists {
                name: name.into(),
                owned_by_you: b.owner == info.owner,
            });
        }
        self.create_shards(info).await?;
        if !self
            .create_record(&self.pools().meta, &bucket_object(name), info)
            .await?
        {
            // Lost the race for the name: our shards are unreferenced; drop them.
            self.remove_shards(info).await;
            let owned_by_you = self
                .bucket_fresh(name)
                .await
                .map(|(b, _)| b.owner == info.owner)
                .unwrap_or(false);
            return Err(ZoneError::BucketExists {
                name: name.into(),
                owned_by_you,
            });
        }
        self.cluster()
            .op(
                &self.pools().meta,
                BUCKETS_DIR,
                vec![sub::omap_set(vec![(
                    Bytes::from(name.to_string()),
                    json(&DirEntry {
                        owner: info.owner.clone(),
                        created_ms: info.created_ms,
                    }),
                )])],
            )
            .await?;
        Self::cache_forget(&self.inner.buckets, name);
        Ok(info.clone())
    }

    /// Applies a bucket metadata change here (this zone is the master).
    pub async fn change_bucket(&self, name: &str, change: &BucketChange) -> Result<BucketInfo> {
        match change {
            BucketChange::Versioning(v) => {
                if *v != Versioning::Enabled {
                    let (b, _) = self.bucket_fresh(name).await?;
                    if b.object_lock.is_some() {
                        return Err(ZoneError::InvalidBucketState(
                            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.".into(),
                        ));
                    }
                }
                self.set_versioning(name, *v).await
            }
            other => self.update_bucket(name, |b| other.apply(b)).await,
        }
    }

    /// Stores a bucket as the metadata master holds it (metadata sync): a
    /// new instance gets its shards; a changed record (versioning, ACL,
    /// tags, policy) replaces the local one, shard headers first.
    pub async fn apply_bucket(&self, info: &BucketInfo) -> Result<()> {
        validate_bucket_name(&info.name)?;
        match self.bucket_fresh(&info.name).await {
            Ok((b, _)) if b == *info => Ok(()),
            Ok((b, _)) if b.id == info.id => {
                if b.versioning != info.versioning {
                    let state = info.versioning;
                    self.update_headers(&b, 0..b.num_shards, |h| h.versioning = state)
                        .await?;
                }
                self.cluster()
                    .write_full(&self.pools().meta, &bucket_object(&info.name), json(info))
                    .await?;
                Self::cache_forget(&self.inner.buckets, &info.name);
                Ok(())
            }
            Ok((b, _)) => Err(ZoneError::BucketExists {
                name: format!(
                    "{} (instance {} here, {} on the master: delete the local one)",
                    info.name, b.id, info.id
                ),
                owned_by_you: b.owner == info.owner,
            }),
            Err(ZoneError::NoSuchBucket(_)) => self.adopt_bucket_unlogged(info).await.map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// Removes a bucket the metadata master removed (metadata sync). Fails
    /// with BucketNotEmpty while data sync has not yet removed its objects
    /// here (sync retries it).
    pub async fn apply_bucket_removal(&self, name: &str) -> Result<()> {
        match self.delete_bucket_with(name, || async { Ok(()) }).await {
            Ok(()) | Err(ZoneError::NoSuchBucket(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_shards(&self, info: &BucketInfo) {
        for s in 0..info.num_shards {
            let obj = index::shard_object(&info.id, s);
            if let Err(e) = self.cluster().remove(&self.pools().index, &obj).await
                && !matches!(e, ClientError::NotFound(_))
            {
                tracing::warn!(bucket = %info.name, shard = s, error = %e, "could not remove index shard");
            }
        }
    }

    /// Every bucket (of `owner`, if given), sorted by name.
    pub async fn list_buckets(&self, owner: Option<&str>) -> Result<Vec<BucketListing>> {
        let entries = match self
            .cluster()
            .omap_get_all(&self.pools().meta, BUCKETS_DIR)
            .await
        {
            Ok(v) => v,
            Err(ClientError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let d: DirEntry = parse("bucket directory entry", &v)?;
            if owner.is_none_or(|o| o == d.owner) {
                out.push(BucketListing {
                    name: String::from_utf8_lossy(&k).into_owned(),
                    owner: d.owner,
                    created_ms: d.created_ms,
                });
            }
        }
        Ok(out)
    }

    /// Changes the bucket record with `f` (ACL, tags, policy), compare-and-swap.
    pub async fn update_bucket(
        &self,
        name: &str,
        f: impl FnMut(&mut BucketInfo) -> Result<()>,
    ) -> Result<BucketInfo> {
        self.logged(
            "bucket",
            name,
            "write",
            self.update_bucket_unlogged(name, f),
        )
        .await
    }

    async fn update_bucket_unlogged(
        &self,
        name: &str,
        mut f: impl FnMut(&mut BucketInfo) -> Result<()>,
    ) -> Result<BucketInfo> {
        for _ in 0..32 {
            let (mut b, version) = self.bucket_fresh(name).await?;
            f(&mut b)?;
            if self
                .replace_record(&self.pools().meta, &bucket_object(name), &b, version)
                .await?
            {
                Self::cache_forget(&self.inner.buckets, name);
                return Ok(b);
            }
        }
        Err(ZoneError::Contention(format!("bucket {name}")))
    }

    /// PutBucketVersioning: the shard headers first (what writes follow), then the record.
    pub async fn set_versioning(&self, name: &str, state: Versioning) -> Result<BucketInfo> {
        if state == Versioning::Off {
            return Err(ZoneError::InvalidArgument(
                "versioning can be Enabled or Suspended, not turned off".into(),
            ));
        }
        self.logged("bucket", name, "write", async {
            let b = self.bucket_fresh(name).await?.0;
            self.update_headers(&b, 0..b.num_shards, |h| h.versioning = state)
                .await?;
            self.update_bucket_unlogged(name, |b| {
                b.versioning = state;
                Ok(())
            })
            .await
        })
        .await
    }

    /// Deletes an empty bucket: marks every shard deleting (so no write can
    /// land), checks that each holds no object version (else reverts:
    /// BucketNotEmpty), aborts its multipart uploads and collects leftover
    /// data, then removes the record and the shards. In-progress uploads do
    /// not keep a bucket alive, as on AWS.
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        self.delete_bucket_with(name, || async { Ok(()) }).await
    }

    /// DeleteBucket whose last step needs another party's consent (a secondary
    /// zone asks the master): `confirm` runs once no write can land and the
    /// bucket is known empty; if it fails, the bucket is left as it was.
    pub async fn delete_bucket_with<F, Fut>(&self, name: &str, confirm: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let (b, version) = self.bucket_fresh(name).await?;
        let mut marked = Vec::new();
        let mut not_empty = false;
        for s in 0..b.num_shards {
            self.update_headers(&b, std::iter::once(s), |h| h.state = ShardState::Deleting)
                .await?;
            marked.push(s);
            let snap = self
                .shard_read(
                    &b,
                    s,
                    &[],
                    &[RangeReq::prefix(
                        Bytes::from_static(index::VERSION_PREFIX),
                        1,
                    )],
                )
                .await?;
            if snap.ranges.iter().any(|(e, _)| !e.is_empty()) {
                not_empty = true;
                break;
            }
        }
        if not_empty {
            self.update_headers(&b, marked.into_iter(), |h| h.state = ShardState::Live)
                .await?;
            return Err(ZoneError::BucketNotEmpty(name.into()));
        }
        // Leftover data (GC records, crashed or unfinished writes, parts of
        // uploads that are gone) goes while the shards that reference it
        // still exist: a shard removed with a record in it would leak that
        // record's data for good. Writes still storing data fail at their
        // link and delete it themselves.
        for s in 0..b.num_shards {
            let collected = async {
                let uploads = self.drop_uploads_of_deleting_shard(&b, s).await?;
                if uploads > 0 {
                    tracing::info!(
                        bucket = name,
                        shard = s,
                        uploads,
                        "aborted the multipart uploads of a deleted bucket"
                    );
                }
                self.collect_shard(&b, s, true, true).await
            };
            if let Err(e) = collected.await {
                tracing::warn!(bucket = name, shard = s, error = %e, "could not collect a deleted bucket's leftover data; the delete is undone");
                self.update_headers(&b, marked.into_iter(), |h| h.state = ShardState::Live)
                    .await?;
                return Err(e);
            }
        }
        if let Err(e) = confirm().await {
            self.update_headers(&b, marked.into_iter(), |h| h.state = ShardState::Live)
                .await?;
            return Err(e);
        }
        let ticket = self.mdlog_prepare("bucket", name, "remove").await?;
        let removed = self.remove_bucket_record(name, version).await;
        self.mdlog_commit(ticket).await;
        removed?;
        self.remove_shards(&b).await;
        Ok(())
    }

    /// The record and directory entry of a bucket whose shards are deleting.
    async fn remove_bucket_record(&self, name: &str, version: u64) -> Result<()> {
        if !self
            .remove_record(&self.pools().meta, &bucket_object(name), version)
            .await?
        {
            // The record changed under us (ACL, versioning): re-read and retry once more.
            let (_, v2) = self.bucket_fresh(name).await?;
            if !self
                .remove_record(&self.pools().meta, &bucket_object(name), v2)
                .await?
            {
                return Err(ZoneError::Contention(format!("bucket {name}")));
            }
        }
        Self::cache_forget(&self.inner.buckets, name);
        match self
            .cluster()
            .op(
                &self.pools().meta,
                BUCKETS_DIR,
                vec![sub::omap_rm(vec![Bytes::from(name.to_string())])],
            )
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Objects and bytes in a bucket (a scan of its version entries).
    pub async fn bucket_stats(&self, name: &str) -> Result<BucketStats> {
        let b = self.bucket_fresh(name).await?.0;
        let mut stats = BucketStats::default();
        let mut scan = index::MergedScan::new(
            self,
            &b,
            Bytes::from_static(index::VERSION_PREFIX),
            Bytes::new(),
            1000,
        );
        while let Some((_, v)) = scan.next().await? {
            let e: crate::IndexEntry = parse("index entry", &v)?;
            if !e.delete_marker {
                stats.num_objects += 1;
                stats.size += e.size;
                stats.size_actual += e.size.next_multiple_of(4096);
                stats.size_utilized += e.manifest.stored_size();
            }
        }
        let mut ups = index::MergedScan::new(
            self,
            &b,
            Bytes::from_static(index::UPLOAD_PREFIX),
            Bytes::new(),
            1000,
        );
        while ups.next().await?.is_some() {
            stats.uploads += 1;
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_aws_rules() {
        for ok in ["abc", "my-bucket", "my.bucket.1", "a1b", &"a".repeat(63)] {
            validate_bucket_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "MyBucket",
            "my_bucket",
            "-abc",
            "abc-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--abc",
            "amzn-s3-demo-bucket",
            "abc-s3alias",
            "abc.mrap",
            "abc--x-s3",
            "abc--table-s3",
            "a b",
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad} accepted");
        }
    }
}
