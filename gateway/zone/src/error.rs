//! What zone operations fail with; the gateway maps each to its S3 error code.

use meridian_client::ClientError;

/// Errors of zone operations.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The zone's pools do not exist (no gateway of the zone has run yet).
    #[error("zone '{0}' has no pools yet: start a gateway for it first")]
    NoZone(String),
    /// The bucket name breaks AWS's naming rules.
    #[error("invalid bucket name '{name}': {reason}")]
    InvalidBucketName { name: String, reason: String },
    /// The user may not create more buckets.
    #[error("user has reached the limit of {0} buckets")]
    TooManyBuckets(u32),
    /// No such bucket.
    #[error("bucket '{0}' does not exist")]
    NoSuchBucket(String),
    /// No such key (or its latest version is a delete marker).
    #[error("key '{0}' does not exist")]
    NoSuchKey(String),
    /// The latest version of the key is a delete marker.
    #[error("key '{key}' is deleted (delete marker {version_id})")]
    DeleteMarker { key: String, version_id: String },
    /// No such version of the key.
    #[error("version '{version_id}' of '{key}' does not exist")]
    NoSuchVersion { key: String, version_id: String },
    /// No such multipart upload.
    #[error("upload '{0}' does not exist (completed, aborted, or never created)")]
    NoSuchUpload(String),
    /// The bucket name is taken.
    #[error("bucket '{name}' already exists")]
    BucketExists { name: String, owned_by_you: bool },
    /// Delete of a bucket that still holds objects, versions or uploads.
    #[error("bucket '{0}' is not empty")]
    BucketNotEmpty(String),
    /// Object lock forbids removing or changing a version.
    #[error("Access Denied because object protected by object lock: {0}")]
    ObjectLocked(String),
    /// The bucket's state forbids the change (object lock needs versioning).
    #[error("{0}")]
    InvalidBucketState(String),
    /// An SSE-C request without the key the object needs (or with one it does not).
    #[error("{0}")]
    CustomerKey(String),
    /// An SSE-C key other than the one the object was written with.
    #[error("the SSE-C key is not the one the object was written with")]
    WrongCustomerKey,
    /// A conditional request's condition does not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// A part listed in CompleteMultipartUpload is missing or has another ETag.
    #[error("{0}")]
    InvalidPart(String),
    /// Parts of CompleteMultipartUpload are not in ascending order.
    #[error("parts must be listed in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB.
    #[error("part {part} is {size} bytes; every part but the last must be at least 5 MiB")]
    EntityTooSmall { part: u32, size: u64 },
    /// The body exceeds the size limit.
    #[error("body exceeds the {limit}-byte limit")]
    EntityTooLarge { limit: u64 },
    /// The body's MD5 is not the Content-MD5 the client sent.
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    /// The body ended before its declared length (client went away).
    #[error("request body: {0}")]
    Body(String),
    /// An argument is out of range or malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request contradicts itself or what it continues (S3's InvalidRequest).
    #[error("{0}")]
    InvalidRequest(String),
    /// A user with this uid exists.
    #[error("user '{0}' already exists")]
    UserExists(String),
    /// No such user.
    #[error("user '{0}' does not exist")]
    NoSuchUser(String),
    /// The access key belongs to another user.
    #[error("access key '{0}' is already in use")]
    KeyInUse(String),
    /// No such access key.
    #[error("access key '{0}' does not exist")]
    NoSuchAccessKey(String),
    /// Concurrent writers kept winning the compare-and-swap.
    #[error("too many concurrent updates of {0}; retry")]
    Contention(String),
    /// A write did not store its data within its budget (`rgw_pending_expiry_s`
    /// less a margin), or GC collected its intent: its data is deleted.
    #[error(
        "the upload took longer than its write budget (rgw_pending_expiry_s less a margin); retry it"
    )]
    Expired,
    /// The metadata master zone refused a forwarded write (its S3 error code).
    #[error("the master zone refused: {message}")]
    Refused { code: String, message: String },
    /// The metadata master zone could not be reached.
    #[error("the metadata master zone is unreachable: {0}")]
    MasterUnreachable(String),
    /// The zone is read-only.
    #[error("zone {0} is read-only")]
    ReadOnly(String),
    /// A stored record does not parse.
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    /// The cluster failed the op.
    #[error(transparent)]
    Cluster(#[from] ClientError),
}
