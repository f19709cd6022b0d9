//! Server-side encryption as S3 requests ask for it: SSE-C headers, SSE-S3
//! (`AES256`), SSE-KMS (`aws:kms` with a key of
//! `rgw_crypt_s3_kms_encryption_keys`), a bucket's default encryption, and
//! `rgw_crypt_default_encryption_key` for writes that name none. The data
//! itself is sealed by the zone (`meridian_zone::crypt`).

use super::{MeridianS3, OrS3};
use meridian_zone::bucket::BucketChange;
use meridian_zone::crypt::{CustomerKey, DataKey, Encryption, SseMode};
use meridian_zone::{BucketEncryption, BucketInfo};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// The SSE-C headers of a request (or the copy-source ones).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CustomerHeaders<'a> {
    pub algorithm: Option<&'a str>,
    pub key: Option<&'a str>,
    pub key_md5: Option<&'a str>,
}

/// The SSE-C headers of an S3 input (`copy_source` for the source's).
macro_rules! customer_headers {
    ($i:expr) => {
        $crate::s3::sse::CustomerHeaders {
            algorithm: $i.sse_customer_algorithm.as_deref(),
            key: $i.sse_customer_key.as_deref(),
            key_md5: $i.sse_customer_key_md5.as_deref(),
        }
    };
    ($i:expr, copy_source) => {
        $crate::s3::sse::CustomerHeaders {
            algorithm: $i.copy_source_sse_customer_algorithm.as_deref(),
            key: $i.copy_source_sse_customer_key.as_deref(),
            key_md5: $i.copy_source_sse_customer_key_md5.as_deref(),
        }
    };
}
pub(super) use customer_headers;

/// How a write asks to be encrypted.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WriteSse<'a> {
    pub sse: Option<&'a ServerSideEncryption>,
    pub kms_key_id: Option<&'a str>,
    pub customer: CustomerHeaders<'a>,
}

/// The SSE request headers of a write input.
macro_rules! write_sse {
    ($i:expr) => {
        $crate::s3::sse::WriteSse {
            sse: $i.server_side_encryption.as_ref(),
            kms_key_id: $i.ssekms_key_id.as_deref(),
            customer: $crate::s3::sse::customer_headers!($i),
        }
    };
}
pub(super) use write_sse;

/// What S3 reports about a version's encryption.
#[derive(Debug, Default, Clone)]
pub(super) struct SseFields {
    pub sse: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub customer_algorithm: Option<String>,
    pub customer_key_md5: Option<String>,
}

impl SseFields {
    /// The response fields of `enc`.
    pub fn of(enc: Option<&Encryption>) -> Self {
        let Some(e) = enc else {
            return Self::default();
        };
        match e.mode {
            SseMode::Customer => Self {
                customer_algorithm: Some("AES256".into()),
                customer_key_md5: Some(e.key_md5.clone()),
                ..Self::default()
            },
            SseMode::S3 => Self {
                sse: Some(ServerSideEncryption::from_static(
                    ServerSideEncryption::AES256,
                )),
                ..Self::default()
            },
            SseMode::Kms => Self {
                sse: Some(ServerSideEncryption::from_static(
                    ServerSideEncryption::AWS_KMS,
                )),
                kms_key_id: Some(e.key_id.clone()),
                ..Self::default()
            },
        }
    }
}

/// Fills the SSE fields of an S3 output from [`SseFields`].
macro_rules! set_sse_fields {
    ($out:expr, $f:expr) => {{
        let f: $crate::s3::sse::SseFields = $f;
        $out.server_side_encryption = f.sse;
        $out.ssekms_key_id = f.kms_key_id;
        $out.sse_customer_algorithm = f.customer_algorithm;
        $out.sse_customer_key_md5 = f.customer_key_md5;
    }};
}
pub(super) use set_sse_fields;

/// The SSE-C key of the headers, if they carry one (all three or none).
fn customer_key(h: CustomerHeaders<'_>) -> S3Result<Option<CustomerKey>> {
    match (h.algorithm, h.key, h.key_md5) {
        (None, None, None) => Ok(None),
        (Some(alg), Some(key), Some(md5)) => {
            if alg != "AES256" {
                return Err(s3_error!(
                    InvalidEncryptionAlgorithmError,
                    "The encryption algorithm specified is not valid (only AES256)."
                ));
            }
            CustomerKey::from_headers(key, md5)
                .map(Some)
                .map_err(|m| s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidArgument, m))
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide the algorithm, the key and its MD5."
        )),
    }
}

fn mode_of(sse: &ServerSideEncryption) -> S3Result<SseMode> {
    match sse.as_str() {
        ServerSideEncryption::AES256 => Ok(SseMode::S3),
        ServerSideEncryption::AWS_KMS => Ok(SseMode::Kms),
        other => Err(s3_error!(
            InvalidArgument,
            "The encryption method specified is not supported: {other}"
        )),
    }
}

impl MeridianS3 {
    /// Refuses keys sent in clear text (SSE-C, SSE-KMS) unless
    /// `rgw_crypt_require_ssl` is off.
    fn require_tls_for_keys<T>(&self, req: &S3Request<T>, what: &str) -> S3Result<()> {
        let secure = req
            .extensions
            .get::<crate::http::ClientConn>()
            .is_some_and(|c| c.secure);
        if self.zone.params().sse_require_tls && !secure {
            return Err(s3_error!(
                InvalidRequest,
                "Requests specifying {what} must be made over a secure connection."
            ));
        }
        Ok(())
    }

    /// The SSE-C key a read or part upload sends, if any.
    pub(super) fn request_customer_key<T>(
        &self,
        req: &S3Request<T>,
        h: CustomerHeaders<'_>,
    ) -> S3Result<Option<CustomerKey>> {
        let k = customer_key(h)?;
        if k.is_some() {
            self.require_tls_for_keys(req, "Server Side Encryption with Customer provided keys")?;
        }
        Ok(k)
    }

    /// The data key of a stored version for a request that sent `customer`.
    pub(super) fn read_key(
        &self,
        enc: Option<&Encryption>,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Option<DataKey>> {
        self.zone.params().keys.data_key(enc, customer).or_s3()
    }

    /// How a new version of bucket `b` is encrypted: the request's headers,
    /// else the bucket's default encryption, else the zone's default key.
    pub(super) fn seal_write<T>(
        &self,
        req: &S3Request<T>,
        b: &BucketInfo,
        w: WriteSse<'_>,
    ) -> S3Result<(Option<Encryption>, Option<DataKey>)> {
        let keys = &self.zone.params().keys;
        let customer = self.request_customer_key(req, w.customer)?;
        if let Some(c) = customer {
            if w.sse.is_some() || w.kms_key_id.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "Server Side Encryption with Customer provided keys cannot be combined with x-amz-server-side-encryption"
                ));
            }
            let rec = c.record();
            let key = keys.data_key(Some(&rec), Some(&c)).or_s3()?;
            return Ok((Some(rec), key));
        }
        let (mode, key_id) = match (w.sse, w.kms_key_id) {
            (Some(s), id) => {
                let mode = mode_of(s)?;
                if mode == SseMode::S3 && id.is_some() {
                    return Err(s3_error!(
                        InvalidArgument,
                        "x-amz-server-side-encryption-aws-kms-key-id needs x-amz-server-side-encryption: aws:kms"
                    ));
                }
                (mode, id.unwrap_or_default().to_string())
            }
            (None, Some(_)) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "x-amz-server-side-encryption-aws-kms-key-id needs x-amz-server-side-encryption: aws:kms"
                ));
            }
            (None, None) => match (&b.encryption, keys.default.is_some()) {
                (Some(d), _) => (d.mode, d.key_id.clone()),
                (None, true) => (SseMode::S3, String::new()),
                (None, false) => return Ok((None, None)),
            },
        };
        if mode == SseMode::Kms {
            self.require_tls_for_keys(req, "aws:kms")?;
            if key_id.is_empty() {
                return Err(s3_error!(
                    InvalidArgument,
                    "name the key with x-amz-server-side-encryption-aws-kms-key-id (one of rgw_crypt_s3_kms_encryption_keys)"
                ));
            }
        }
        let (enc, key) = keys.seal(mode, &key_id).or_s3()?;
        Ok((Some(enc), Some(key)))
    }

    pub(super) async fn do_put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let (_, b) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        let rules = &req.input.server_side_encryption_configuration.rules;
        let [rule] = rules.as_slice() else {
            return Err(s3_error!(
                MalformedXML,
                "a ServerSideEncryptionConfiguration has exactly one Rule"
            ));
        };
        let d = rule
            .apply_server_side_encryption_by_default
            .as_ref()
            .ok_or_else(|| {
                s3_error!(
                    MalformedXML,
                    "the Rule has no ApplyServerSideEncryptionByDefault"
                )
            })?;
        let mode = mode_of(&d.sse_algorithm)?;
        let key_id = d.kms_master_key_id.clone().unwrap_or_default();
        match mode {
            SseMode::Kms if !self.zone.params().keys.kms.contains_key(&key_id) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "KMSMasterKeyID {key_id:?} is not one of rgw_crypt_s3_kms_encryption_keys"
                ));
            }
            SseMode::S3 if !key_id.is_empty() => {
                return Err(s3_error!(
                    InvalidArgument,
                    "KMSMasterKeyID goes with SSEAlgorithm aws:kms"
                ));
            }
            SseMode::S3 if self.zone.params().keys.default.is_none() => {
                return Err(s3_error!(
                    InvalidArgument,
                    "SSE-S3 needs rgw_crypt_default_encryption_key on this zone's gateways"
                ));
            }
            _ => {}
        }
        let change = BucketChange::Encryption(Some(BucketEncryption { mode, key_id }));
        self.change_bucket(&b.name, &b.owner, change)
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(super) async fn do_get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let (_, b) = self.owned_bucket(&req, &req.input.bucket).await?;
        let e = b.encryption.as_ref().ok_or_else(|| {
            let mut e = s3_error!(
                ServerSideEncryptionConfigurationNotFoundError,
                "The server side encryption configuration was not found"
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            e
        })?;
        let (algorithm, key_id) = match e.mode {
            SseMode::Kms => (ServerSideEncryption::AWS_KMS, Some(e.key_id.clone())),
            _ => (ServerSideEncryption::AES256, None),
        };
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        kms_master_key_id: key_id,
                        sse_algorithm: ServerSideEncryption::from_static(algorithm),
                    }),
                    bucket_key_enabled: None,
                }],
            }),
        }))
    }

    pub(super) async fn do_delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let (_, b) = self.owned_writable_bucket(&req, &req.input.bucket).await?;
        self.change_bucket(&b.name, &b.owner, BucketChange::Encryption(None))
            .await
            .or_s3()?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }
}
