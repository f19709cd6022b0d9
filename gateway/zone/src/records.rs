//! The records a zone stores, as JSON (readable with `meridian listomapvals`).
//! Every record tolerates fields it does not know and defaults missing ones,
//! so a newer gateway can add fields without a migration; a record whose
//! meaning changes gets a new `v`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An S3 user (radosgw-admin's user info).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct User {
    /// Record version.
    pub v: u32,
    /// User id (`--uid`).
    pub user_id: String,
    /// Display name.
    pub display_name: String,
    /// E-mail.
    pub email: String,
    /// Suspended users are refused (403 UserSuspended... as RGW does).
    pub suspended: bool,
    /// System users may act for the zone (multi-site sync, period pulls).
    pub system: bool,
    /// S3 key pairs.
    pub keys: Vec<AccessKey>,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Maximum buckets (radosgw-admin's max_buckets; 0 = unlimited).
    pub max_buckets: u32,
    /// `ratelimit set --ratelimit-scope=user`.
    #[serde(skip_serializing_if = "RateLimit::is_unset")]
    pub ratelimit: RateLimit,
}

/// Request limits per minute and per gateway, as RGW's `ratelimit` (0 = no
/// limit of that kind); a request past one gets 503 SlowDown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RateLimit {
    /// The limits apply.
    pub enabled: bool,
    /// GET and HEAD requests per minute.
    pub max_read_ops: u64,
    /// Other requests per minute.
    pub max_write_ops: u64,
    /// Bytes sent per minute.
    pub max_read_bytes: u64,
    /// Bytes received per minute.
    pub max_write_bytes: u64,
}

impl RateLimit {
    /// Never set (kept out of records).
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }

    /// Enabled with at least one limit.
    pub fn active(&self) -> bool {
        self.enabled
            && (self.max_read_ops | self.max_write_ops | self.max_read_bytes | self.max_write_bytes)
                != 0
    }
}

/// One S3 key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AccessKey {
    /// Owner uid.
    pub user: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

/// Versioning state of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Versioning {
    /// Never versioned.
    #[default]
    Off,
    /// Every write makes a new version.
    Enabled,
    /// Writes replace the `null` version; old versions stay.
    Suspended,
}

/// Canned ACL of a bucket or object (what access beyond the owner is granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CannedAcl {
    /// Owner only.
    #[default]
    Private,
    /// Anyone may read.
    PublicRead,
    /// Anyone may read and write.
    PublicReadWrite,
    /// Any authenticated user may read.
    AuthenticatedRead,
}

impl CannedAcl {
    /// Parses `x-amz-acl`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "private" => Self::Private,
            "public-read" => Self::PublicRead,
            "public-read-write" => Self::PublicReadWrite,
            "authenticated-read" => Self::AuthenticatedRead,
            // Owner-based grants the owner already has.
            "bucket-owner-read" | "bucket-owner-full-control" => Self::Private,
            _ => return None,
        })
    }

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::PublicRead => "public-read",
            Self::PublicReadWrite => "public-read-write",
            Self::AuthenticatedRead => "authenticated-read",
        }
    }
}

/// Who an ACL grant is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grantee {
    /// One user (S3's CanonicalUser, by uid).
    User(String),
    /// Everyone, anonymous callers included (the AllUsers group).
    AllUsers,
    /// Any caller with a valid signature (the AuthenticatedUsers group).
    AuthenticatedUsers,
}

/// What an ACL grant allows, as S3 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclPermission {
    /// List the bucket / read the object.
    Read,
    /// Write and delete objects in the bucket.
    Write,
    /// Read the ACL.
    ReadAcp,
    /// Replace the ACL.
    WriteAcp,
    /// All of the above.
    FullControl,
}

impl AclPermission {
    /// This permission includes `want`.
    pub fn covers(self, want: AclPermission) -> bool {
        self == want || self == AclPermission::FullControl
    }
}

/// A grant beyond the canned ACL (x-amz-grant-* headers, AccessControlPolicy
/// grants); the owner's full control is implied and never stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclGrant {
    /// Who.
    pub grantee: Grantee,
    /// What.
    pub permission: AclPermission,
}

impl CannedAcl {
    /// The group grants this canned ACL stands for.
    pub fn group_grants(self) -> &'static [AclGrant] {
        const READ: AclGrant = AclGrant {
            grantee: Grantee::AllUsers,
            permission: AclPermission::Read,
        };
        const WRITE: AclGrant = AclGrant {
            grantee: Grantee::AllUsers,
            permission: AclPermission::Write,
        };
        const AUTH_READ: AclGrant = AclGrant {
            grantee: Grantee::AuthenticatedUsers,
            permission: AclPermission::Read,
        };
        match self {
            CannedAcl::Private => &[],
            CannedAcl::PublicRead => &[READ],
            CannedAcl::PublicReadWrite => &[READ, WRITE],
            CannedAcl::AuthenticatedRead => &[AUTH_READ],
        }
    }
}

/// Grants `who` (None: anonymous) holds through `acl` and `grants`, the
/// owner's implied full control aside.
pub fn acl_permits(
    acl: CannedAcl,
    grants: &[AclGrant],
    who: Option<&str>,
    want: AclPermission,
) -> bool {
    acl.group_grants()
        .iter()
        .chain(grants)
        .filter(|g| g.permission.covers(want))
        .any(|g| match &g.grantee {
            Grantee::AllUsers => true,
            Grantee::AuthenticatedUsers => who.is_some(),
            Grantee::User(u) => who == Some(u.as_str()),
        })
}

/// Object lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RetentionMode {
    /// Users with s3:BypassGovernanceRetention may shorten it or delete.
    Governance,
    /// Nobody may shorten it or delete the version before it ends.
    Compliance,
}

impl RetentionMode {
    /// Parses S3's GOVERNANCE / COMPLIANCE.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GOVERNANCE" => Some(Self::Governance),
            "COMPLIANCE" => Some(Self::Compliance),
            _ => None,
        }
    }

    /// S3's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }
}

/// The retention of one object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// How strict.
    pub mode: RetentionMode,
    /// Until when, ms since the Unix epoch.
    pub until_ms: u64,
}

impl Retention {
    /// Whether `new` may replace `old` (None: no retention) at `now_ms`: a
    /// running COMPLIANCE retention may only be extended, a running
    /// GOVERNANCE one shortened, removed or weakened only with the bypass.
    pub fn may_replace(
        old: Option<Retention>,
        new: Option<Retention>,
        now_ms: u64,
        bypass_governance: bool,
    ) -> std::result::Result<(), String> {
        let Some(old) = old.filter(|o| o.until_ms > now_ms) else {
            return Ok(());
        };
        let keeps = new.is_some_and(|n| {
            n.until_ms >= old.until_ms
                && (n.mode == RetentionMode::Compliance || old.mode == RetentionMode::Governance)
        });
        match old.mode {
            _ if keeps => Ok(()),
            RetentionMode::Governance if bypass_governance => Ok(()),
            RetentionMode::Governance => Err(
                "a GOVERNANCE retention may only be shortened or removed with x-amz-bypass-governance-retention"
                    .into(),
            ),
            RetentionMode::Compliance => {
                Err("a COMPLIANCE retention can only be extended until it ends".into())
            }
        }
    }
}

/// A bucket's default retention for new versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// Mode given to new versions.
    pub mode: RetentionMode,
    /// Days from the write (a year counts 365).
    pub days: u32,
    /// The rule was given in years (reported back as such).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_years: bool,
}

/// Object lock of a bucket: once enabled it cannot be turned off, and the
/// bucket stays versioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ObjectLockConfig {
    /// Retention new versions get when their write names none.
    pub default_retention: Option<DefaultRetention>,
}

/// A bucket's default encryption: SSE-S3, or SSE-KMS with a key id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// `S3` or `Kms`.
    pub mode: crate::crypt::SseMode,
    /// The KMS key ("" for SSE-S3).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_id: String,
}

/// A bucket's public access block (PutPublicAccessBlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PublicAccessBlock {
    /// Refuse requests that set a public ACL.
    pub block_public_acls: bool,
    /// Evaluate ACLs as if their public grants were not there.
    pub ignore_public_acls: bool,
    /// Refuse a public bucket policy.
    pub block_public_policy: bool,
    /// A public policy grants nothing to anyone but the owner.
    pub restrict_public_buckets: bool,
}

/// Who owns the objects written into a bucket (PutBucketOwnershipControls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// The bucket owner owns every object and ACLs are disabled.
    BucketOwnerEnforced,
    /// The bucket owner owns objects written with `bucket-owner-full-control`.
    BucketOwnerPreferred,
    /// The writer owns the object (the default).
    ObjectWriter,
}

/// One CORS rule of a bucket (S3's CORSRule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CorsRule {
    /// Rule id (optional).
    pub id: String,
    /// Origins, each with at most one `*`.
    pub allowed_origins: Vec<String>,
    /// GET, PUT, HEAD, POST, DELETE.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for (`*` patterns, any case).
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may show the page.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer (s).
    pub max_age_seconds: Option<i32>,
}

/// A bucket (entrypoint and instance in one record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BucketInfo {
    /// Record version.
    pub v: u32,
    /// Bucket name.
    pub name: String,
    /// Instance id: names the index shards and data objects (a re-created
    /// bucket of the same name gets a new one).
    pub id: String,
    /// Owner uid.
    pub owner: String,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Zonegroup it was created in.
    pub zonegroup: String,
    /// Index shards.
    pub num_shards: u32,
    /// Versioning as last set (the shard headers are authoritative for writes).
    pub versioning: Versioning,
    /// Canned ACL.
    pub acl: CannedAcl,
    /// Grants beyond the canned ACL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<AclGrant>,
    /// Bucket tags.
    pub tags: Vec<(String, String)>,
    /// Bucket policy JSON, if any.
    pub policy: Option<String>,
    /// CORS rules (PutBucketCors), in the order given.
    pub cors: Vec<CorsRule>,
    /// Lifecycle rules (PutBucketLifecycleConfiguration).
    pub lifecycle: Vec<crate::lifecycle::LifecycleRule>,
    /// Public access block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// Object ownership (None: ObjectWriter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<ObjectOwnership>,
    /// Default encryption of new objects (PutBucketEncryption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<BucketEncryption>,
    /// Object lock (enabled when present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockConfig>,
    /// `bucket sync disable`: the bucket stays in each zone it is written
    /// in; `bucket sync enable` brings it back by a full sync.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sync_disabled: bool,
    /// `ratelimit set --ratelimit-scope=bucket`.
    #[serde(skip_serializing_if = "RateLimit::is_unset")]
    pub ratelimit: RateLimit,
    /// The bucket's own sync policy (`sync group ... --bucket`), within
    /// what the zonegroup's allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<meridian_proto::multisite::SyncPolicy>,
}

/// Lifecycle state of an index shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ShardState {
    /// Accepting writes.
    #[default]
    Live,
    /// The bucket is being deleted: writes are refused.
    Deleting,
}

/// The `hdr` record of each index shard; every index write compares it, so a
/// versioning change or a bucket delete orders against every write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ShardHeader {
    /// Record version.
    pub v: u32,
    /// Bucket instance.
    pub bucket_id: String,
    /// Live or deleting.
    pub state: ShardState,
    /// Versioning that writes to this shard follow.
    pub versioning: Versioning,
}

/// The HTTP-visible attributes of an object version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ObjectAttrs {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Expires (as sent).
    pub expires: Option<String>,
    /// `x-amz-meta-*` (names lowercased, without the prefix).
    pub metadata: BTreeMap<String, String>,
    /// Object tags.
    pub tags: Vec<(String, String)>,
    /// Canned ACL.
    pub acl: CannedAcl,
    /// Grants beyond the canned ACL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<AclGrant>,
    /// Storage class as sent (STANDARD if none).
    pub storage_class: Option<String>,
    /// Object lock retention of this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Legal hold (None: never set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<bool>,
    /// How the data is encrypted at rest (None: it is not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypt::Encryption>,
    /// The version's additional checksum (on an upload record: the one the
    /// upload promised, without a value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<crate::checksum::ObjectChecksum>,
}

impl ObjectAttrs {
    /// What the version's Content-Encoding and Content-Type say about how
    /// well its bytes compress (pool compression modes `passive` and
    /// `aggressive` follow it).
    pub fn compress_hint(&self) -> meridian_common::compression::Hint {
        use meridian_common::compression::Hint;
        if let Some(enc) = self.content_encoding.as_deref() {
            // aws-chunked describes the upload, not the object.
            let real = enc
                .split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .any(|e| !e.is_empty() && e != "identity" && e != "aws-chunked");
            if real {
                return Hint::Incompressible;
            }
        }
        let Some(ct) = self.content_type.as_deref() else {
            return Hint::Unknown;
        };
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let (kind, sub) = ct.split_once('/').unwrap_or((ct.as_str(), ""));
        let text_like = matches!(
            sub,
            "json"
                | "xml"
                | "javascript"
                | "x-javascript"
                | "ecmascript"
                | "x-ndjson"
                | "csv"
                | "x-yaml"
                | "yaml"
                | "sql"
                | "x-sh"
                | "x-tex"
                | "rtf"
                | "svg+xml"
                | "x-www-form-urlencoded"
                | "wasm"
        ) || sub.ends_with("+json")
            || sub.ends_with("+xml");
        match kind {
            "text" => Hint::Compressible,
            "application" | "image" if text_like => Hint::Compressible,
            "image" | "video" | "audio" => Hint::Incompressible,
            "application"
                if matches!(
                    sub,
                    "zip"
                        | "gzip"
                        | "x-gzip"
                        | "x-bzip2"
                        | "x-xz"
                        | "zstd"
                        | "x-zstd"
                        | "x-7z-compressed"
                        | "x-rar-compressed"
                        | "vnd.rar"
                        | "x-lz4"
                        | "x-compress"
                        | "java-archive"
                        | "vnd.android.package-archive"
                ) =>
            {
                Hint::Incompressible
            }
            _ => Hint::Unknown,
        }
    }

    /// Why object lock forbids removing this version at `now_ms`, if it does.
    pub fn lock_forbids_delete(&self, now_ms: u64, bypass_governance: bool) -> Option<String> {
        if self.legal_hold == Some(true) {
            return Some("the version is under legal hold".into());
        }
        match self.retention {
            Some(r)
                if r.until_ms > now_ms
                    && !(bypass_governance && r.mode == RetentionMode::Governance) =>
            {
                Some(format!(
                    "the version is under {} retention for {} s more",
                    r.mode.as_str(),
                    (r.until_ms - now_ms).div_ceil(1000)
                ))
            }
            _ => None,
        }
    }
}

/// One run of data stored as stripes `<bucket_id>_<inst>`, `<bucket_id>_<inst>.1`, ...
/// in the data pool, or, for a small PUT, inline: as one stripe in omap key
/// `d<inst>` of the key's index shard, written by the op that links it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DataRef {
    /// Instance id (unique per write).
    pub inst: String,
    /// Bytes in this run.
    pub size: u64,
    /// How its stripes are compressed (None: stored as they came).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<RunCompression>,
    /// The index shard holding the run inline (None: in the data pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_shard: Option<u32>,
    /// An inline run's stored bytes, when the look-up that found the
    /// version read them too (never stored).
    #[serde(skip)]
    pub prefetched: Option<Bytes>,
}

impl DataRef {
    /// A run stored as it came.
    pub fn plain(inst: &str, size: u64) -> DataRef {
        DataRef {
            inst: inst.to_string(),
            size,
            compression: None,
            inline_shard: None,
            prefetched: None,
        }
    }

    /// Bytes this run occupies in the data pool (per replica).
    pub fn stored_size(&self) -> u64 {
        match &self.compression {
            Some(c) => c.stored.iter().sum(),
            None => self.size,
        }
    }
}

/// How the stripes of a run are compressed: each stripe on its own, so a
/// range read decompresses at most the stripes it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCompression {
    /// Algorithm of the compressed stripes.
    pub algorithm: meridian_common::compression::Algorithm,
    /// Stored length of each stripe, in order: a stripe stored shorter than
    /// its share of the run is compressed, one of full length is as it came
    /// (compressing it did not save enough).
    pub stored: Vec<u64>,
}

/// Where an object version's bytes are: runs in order (one for a PUT, one per
/// part for a multipart upload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// The runs, concatenated.
    pub runs: Vec<DataRef>,
}

impl Manifest {
    /// Total size.
    pub fn size(&self) -> u64 {
        self.runs.iter().map(|r| r.size).sum()
    }

    /// Bytes the runs occupy in the data pool after compression.
    pub fn stored_size(&self) -> u64 {
        self.runs.iter().map(DataRef::stored_size).sum()
    }
}

/// An object version in the bucket index (`o<key>` for the current one,
/// `v<key>\0<order>.<version id>` for every version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct IndexEntry {
    /// Object key.
    pub key: String,
    /// Version id (`null` in unversioned buckets and for suspended writes).
    pub version_id: String,
    /// Ordering token: newer versions of a key sort first.
    pub order: String,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: u64,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes (MD5 hex, or `md5-of-md5s-N` for multipart).
    pub etag: String,
    /// This version is a delete marker (no data).
    pub delete_marker: bool,
    /// Owner uid.
    pub owner: String,
    /// HTTP attributes.
    pub attrs: ObjectAttrs,
    /// Where the bytes are.
    pub manifest: Manifest,
    /// Parts of a multipart upload (0 for a single PUT).
    pub parts: u32,
    /// Part sizes of a multipart object (for `?partNumber=`).
    pub part_sizes: Vec<u64>,
    /// Part checksums of a multipart object (base64, in the algorithm of
    /// `attrs.checksum`; empty when the parts have none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub part_checksums: Vec<String>,
    /// Zones this version has passed through (kept for `bilog list`; loop
    /// prevention uses the trace of each log entry).
    pub zone_trace: Vec<String>,
    /// Id of the zone the version was written in (decides conflicts between
    /// writes of equal mtime; "" for versions written before multi-site).
    pub source_zone: String,
    /// The multipart upload this version completed (lets a retried
    /// CompleteMultipartUpload succeed again).
    pub from_upload: String,
}

/// A multipart upload in progress (`u<key>\0<upload id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct UploadRecord {
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Initiated, ns since the epoch.
    pub initiated_ns: u64,
    /// Initiator / owner uid.
    pub owner: String,
    /// Attributes the completed object gets.
    pub attrs: ObjectAttrs,
    /// Part records committed so far: every part commit bumps it, so a
    /// completion or abort computed without that part fails its compare of
    /// this record and looks again.
    pub part_commits: u64,
}

/// An uploaded part (`p<upload id>.<part number>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PartRecord {
    /// Part number (1..=10000).
    pub part: u32,
    /// MD5 hex of the part.
    pub etag: String,
    /// Where its bytes are.
    pub data: DataRef,
    /// Full checksum of the part's bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<crate::checksum::ObjectChecksum>,
    /// Upload time, ns.
    pub mtime_ns: u64,
}

/// A write in progress (`i<inst>`): its data is being stored and is not yet
/// referenced by the index. Expired intents belong to crashed writers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Intent {
    /// The data being written.
    pub data: DataRef,
    /// Key it is for.
    pub key: String,
    /// Started, ns.
    pub started_ns: u64,
}

/// Data no longer referenced, deleted once due (`g<due ms, 20 digits><inst>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GcRecord {
    /// Runs to delete.
    pub runs: Vec<DataRef>,
    /// Key it belonged to (for `gc list`).
    pub key: String,
}

/// What a bucket index log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BilogOp {
    /// A version was written (PUT, copy, completed upload).
    #[default]
    Write,
    /// A version was removed.
    Delete,
    /// A delete marker was created.
    DeleteMarker,
    /// Attributes (tags, ACL) of a version changed.
    Attrs,
}

/// A bucket index log entry (`l<seq, 20 digits>`), written in the same op as
/// the index change it describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BilogEntry {
    /// What happened.
    pub op: BilogOp,
    /// Object key.
    pub key: String,
    /// Version id.
    pub version_id: String,
    /// Version's mtime, ns.
    pub mtime_ns: u64,
    /// ETag.
    pub etag: String,
    /// Size.
    pub size: u64,
    /// Zones this operation has been applied in, first the one a client
    /// made it in: sync never sends a change to a zone in its trace.
    pub zone_trace: Vec<String>,
    /// The bucket is versioned (sync must keep every version).
    pub versioned: bool,
    /// When the operation happened, ns (for a write, the version's mtime; for
    /// a removal, the time it decides conflicts with).
    pub op_ns: u64,
    /// Id of the zone the version was written in.
    pub source_zone: String,
}

/// A data log entry: "this bucket index shard changed" (a hint for sync).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DatalogEntry {
    /// Bucket name.
    pub bucket: String,
    /// Bucket instance id.
    pub bucket_id: String,
    /// Index shard.
    pub shard: u32,
    /// When, Unix ms.
    pub ts_ms: u64,
}

/// Which half of a logged metadata change an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MdlogPhase {
    /// Written before the change (the change may or may not have landed).
    Prepare,
    /// Written after the change landed (entries of older gateways are this).
    #[default]
    Commit,
}

/// A metadata log entry: a user or bucket record is about to change
/// (`prepare`) or has changed (`commit`), so a crash between the change and
/// its entry cannot hide the change from metadata sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MdlogEntry {
    /// `user` or `bucket`.
    pub section: String,
    /// uid or bucket name.
    pub name: String,
    /// `write` or `remove`.
    pub op: String,
    /// When, Unix ms.
    pub ts_ms: u64,
    /// Pairs a prepare with its commit.
    pub id: String,
    /// Prepare or commit.
    pub phase: MdlogPhase,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    fn r(mode: RetentionMode, until_ms: u64) -> Option<Retention> {
        Some(Retention { mode, until_ms })
    }

    #[test]
    fn running_retention_and_legal_hold_forbid_deletes() {
        let mut a = ObjectAttrs {
            retention: r(RetentionMode::Governance, T + 10),
            ..Default::default()
        };
        assert!(a.lock_forbids_delete(T, false).is_some());
        assert!(a.lock_forbids_delete(T, true).is_none());
        assert!(a.lock_forbids_delete(T + 10, false).is_none());
        a.retention = r(RetentionMode::Compliance, T + 10);
        assert!(a.lock_forbids_delete(T, true).is_some());
        a.retention = None;
        a.legal_hold = Some(true);
        assert!(a.lock_forbids_delete(T, true).is_some());
        a.legal_hold = Some(false);
        assert!(a.lock_forbids_delete(T, false).is_none());
    }

    #[test]
    fn retention_may_only_weaken_with_the_governance_bypass() {
        use RetentionMode::{Compliance as C, Governance as G};
        let ok = |old, new, bypass| Retention::may_replace(old, new, T, bypass).is_ok();
        // Nothing running: anything goes.
        assert!(ok(None, r(G, T + 5), false));
        assert!(ok(r(C, T - 1), None, false));
        // Compliance: only extended, never weakened, bypass or not.
        assert!(ok(r(C, T + 5), r(C, T + 6), false));
        assert!(!ok(r(C, T + 5), r(C, T + 4), true));
        assert!(!ok(r(C, T + 5), r(G, T + 9), true));
        assert!(!ok(r(C, T + 5), None, true));
        // Governance: extended or made compliance freely, else only with the bypass.
        assert!(ok(r(G, T + 5), r(G, T + 6), false));
        assert!(ok(r(G, T + 5), r(C, T + 5), false));
        assert!(!ok(r(G, T + 5), r(G, T + 4), false));
        assert!(ok(r(G, T + 5), r(G, T + 4), true));
        assert!(!ok(r(G, T + 5), None, false));
        assert!(ok(r(G, T + 5), None, true));
    }

    #[test]
    fn group_grants_follow_the_canned_acl() {
        assert!(acl_permits(
            CannedAcl::PublicRead,
            &[],
            None,
            AclPermission::Read
        ));
        assert!(!acl_permits(
            CannedAcl::PublicRead,
            &[],
            None,
            AclPermission::Write
        ));
        assert!(!acl_permits(
            CannedAcl::AuthenticatedRead,
            &[],
            None,
            AclPermission::Read
        ));
        assert!(acl_permits(
            CannedAcl::AuthenticatedRead,
            &[],
            Some("u"),
            AclPermission::Read
        ));
        let full = [AclGrant {
            grantee: Grantee::User("bob".into()),
            permission: AclPermission::FullControl,
        }];
        assert!(acl_permits(
            CannedAcl::Private,
            &full,
            Some("bob"),
            AclPermission::WriteAcp
        ));
        assert!(!acl_permits(
            CannedAcl::Private,
            &full,
            Some("eve"),
            AclPermission::Read
        ));
    }
}
