//! SigV2 signatures checked in constant time before s3s sees the request.
//!
//! s3s compares SigV2 signatures with `!=`, which returns sooner the
//! earlier the first wrong byte: a client could learn a valid signature a
//! byte at a time from response times. So the gateway verifies every SigV2
//! request (header-signed and presigned) first, comparing the HMAC with
//! [`Mac::verify_slice`] (constant time), and refuses a mismatch itself;
//! s3s's own comparison then only ever runs on a signature that matched.
//! The string to sign is built exactly as s3s 0.14 builds it (a port of
//! its private `sig_v2::create_string_to_sign`), so whatever s3s accepts
//! passes here.
//!
//! HTML-form POST uploads (SigV2/SigV4 POST policies) are refused here as
//! well: the gateway does not implement PostObject, and s3s would compare
//! the policy signature (with `!=`) before answering NotImplemented.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Query parameters that are part of SigV2's canonical resource (sorted).
const INCLUDED_QUERY: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// How a SigV2 request carries its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Authorization: AWS AKID:SIGNATURE`.
    Header,
    /// `?AWSAccessKeyId=..&Expires=..&Signature=..`.
    Presigned,
}

/// A SigV2 request's claim: who signed it, how, and the signature given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// How it is signed.
    pub mode: Mode,
    /// The access key named.
    pub access_key: String,
    /// The signature as sent (base64).
    pub signature: String,
}

/// Sorted `(name, value)` pairs with s3s's lookup rules.
struct Ordered<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Ordered<'a> {
    fn new(mut pairs: Vec<(&'a str, &'a str)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        Ordered(pairs)
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &'a str> + '_ {
        let lo = self.0.partition_point(|x| x.0 < name);
        let hi = self.0.partition_point(|x| x.0 <= name);
        self.0[lo..hi].iter().map(|x| x.1)
    }
    /// The value when the name occurs exactly once.
    fn unique(&self, name: &str) -> Option<&'a str> {
        let mut it = self.all(name);
        match (it.next(), it.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    }
}

/// The request parts SigV2 signs.
pub struct Signed<'a> {
    method: &'a str,
    path: &'a str,
    query: Vec<(String, String)>,
    headers: Vec<(&'a str, &'a str)>,
    vh_bucket: Option<&'a str>,
}

impl<'a> Signed<'a> {
    /// The parts of `req` (headers that are not UTF-8 left out, as s3s does;
    /// `None` when the query does not decode, which s3s refuses itself).
    pub fn of<B>(req: &'a http::Request<B>, vh_bucket: Option<&'a str>) -> Option<Self> {
        let query = match req.uri().query() {
            Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok()?,
            None => Vec::new(),
        };
        let headers = req
            .headers()
            .iter()
            .filter_map(|(n, v)| {
                std::str::from_utf8(v.as_bytes())
                    .ok()
                    .map(|v| (n.as_str(), v))
            })
            .collect();
        Some(Signed {
            method: req.method().as_str(),
            path: req.uri().path(),
            query,
            headers,
            vh_bucket,
        })
    }

    /// The SigV2 claim this request makes, if it is a SigV2 request (the
    /// same tests, in the same order, as s3s).
    pub fn claim(&self) -> Option<Claim> {
        let qs = self.qs();
        if qs.all("Signature").next().is_some() {
            // Incomplete presigned URLs are s3s's to refuse.
            let access_key = qs.unique("AWSAccessKeyId")?;
            qs.unique("Expires")?;
            let signature = urlencoding::decode(qs.unique("Signature")?).ok()?;
            return Some(Claim {
                mode: Mode::Presigned,
                access_key: access_key.to_string(),
                signature: signature.into_owned(),
            });
        }
        let hs = Ordered::new(self.headers.clone());
        let (access_key, signature) = hs
            .unique("authorization")?
            .strip_prefix("AWS ")?
            .split_once(':')?;
        Some(Claim {
            mode: Mode::Header,
            access_key: access_key.to_string(),
            signature: signature.to_string(),
        })
    }

    fn qs(&self) -> Ordered<'_> {
        Ordered::new(
            self.query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        )
    }

    /// SigV2's string to sign.
    pub fn string_to_sign(&self, mode: Mode) -> String {
        let hs = Ordered::new(self.headers.clone());
        let qs = self.qs();
        let mut s = String::with_capacity(256);
        s.push_str(self.method);
        s.push('\n');
        s.push_str(hs.unique("content-md5").unwrap_or_default());
        s.push('\n');
        s.push_str(hs.unique("content-type").unwrap_or_default());
        s.push('\n');
        match mode {
            // With x-amz-date the Date line is empty (x-amz-date is signed
            // among the x-amz- headers).
            Mode::Header => {
                if hs.unique("x-amz-date").is_none() {
                    s.push_str(hs.unique("date").unwrap_or_default());
                }
            }
            Mode::Presigned => s.push_str(qs.unique("Expires").unwrap_or_default()),
        }
        s.push('\n');
        let mut last = "";
        for &(name, _) in &hs.0 {
            if !name.starts_with("x-amz-") || name == last {
                continue;
            }
            last = name;
            s.push_str(name);
            s.push(':');
            let values: Vec<&str> = hs.all(name).map(str::trim).collect();
            s.push_str(&values.join(","));
            s.push('\n');
        }
        if let Some(b) = self.vh_bucket {
            s.push('/');
            s.push_str(b);
        }
        s.push_str(self.path);
        let mut first = true;
        for q in INCLUDED_QUERY {
            if let Some(v) = qs.unique(q) {
                s.push(if first { '?' } else { '&' });
                first = false;
                s.push_str(q);
                if !v.is_empty() {
                    s.push('=');
                    s.push_str(v);
                }
            }
        }
        s
    }
}

/// Whether `signature` (base64) is the HMAC-SHA1 of `string_to_sign` under
/// `secret`, compared in constant time.
pub fn signature_matches(secret: &str, string_to_sign: &str, signature: &str) -> bool {
    let Ok(given) = base64_simd::STANDARD.decode_to_vec(signature.as_bytes()) else {
        return false;
    };
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// Whether the request is an HTML-form POST upload (multipart/form-data).
pub fn is_form_post<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, s: &str) -> String {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(s.as_bytes());
        base64_simd::STANDARD.encode_to_string(mac.finalize().into_bytes())
    }

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// AWS's documented examples (also s3s's tests), with their signatures.
    #[test]
    fn aws_examples_sign_as_documented() {
        let get = http::Request::get("/photos/puppy.jpg")
            .header("date", "Tue, 27 Mar 2007 19:36:42 +0000")
            .header(
                "authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
            )
            .body(())
            .unwrap();
        let s = Signed::of(&get, Some("awsexamplebucket1")).unwrap();
        let claim = s.claim().unwrap();
        assert_eq!(claim.mode, Mode::Header);
        assert_eq!(claim.access_key, "AKIAIOSFODNN7EXAMPLE");
        let sts = s.string_to_sign(Mode::Header);
        assert_eq!(
            sts,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        );
        assert!(signature_matches(SECRET, &sts, &claim.signature));

        let put = http::Request::put("/photos/puppy.jpg")
            .header("content-type", "image/jpeg")
            .header("content-length", "94328")
            .header("date", "Tue, 27 Mar 2007 21:15:45 +0000")
            .body(())
            .unwrap();
        let sts = Signed::of(&put, Some("awsexamplebucket1"))
            .unwrap()
            .string_to_sign(Mode::Header);
        assert_eq!(
            sts,
            "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        );
        assert!(signature_matches(
            SECRET,
            &sts,
            "iqRzw+ileNPu1fhspnRs8nOjjIA="
        ));

        // x-amz- headers: lowercased, sorted, repeated values joined; the
        // Date line empty when x-amz-date is there; sub-resources kept.
        let req = http::Request::put("/db-backup.dat.gz?uploads&foo=bar&acl")
            .header("x-amz-meta-reviewedby", "joe@example.com")
            .header("x-amz-meta-reviewedby", "jane@example.com")
            .header("x-amz-date", "Tue, 27 Mar 2007 21:06:08 +0000")
            .header("content-md5", "4gJE4saaMU4BqNR0kLY+lw==")
            .header("date", "ignored")
            .body(())
            .unwrap();
        let sts = Signed::of(&req, None).unwrap().string_to_sign(Mode::Header);
        assert_eq!(
            sts,
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\n\n\nx-amz-date:Tue, 27 Mar 2007 21:06:08 +0000\n\
             x-amz-meta-reviewedby:joe@example.com,jane@example.com\n/db-backup.dat.gz?acl&uploads"
        );
    }

    #[test]
    fn presigned_urls_sign_the_expiry() {
        let sig = sign(
            SECRET,
            "GET\n\n\n1175139620\n/awsexamplebucket1/photos/puppy.jpg",
        );
        let q = format!(
            "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature={}&Expires=1175139620",
            urlencoding::encode(&sig)
        );
        let req = http::Request::get(q.as_str()).body(()).unwrap();
        let s = Signed::of(&req, Some("awsexamplebucket1")).unwrap();
        let claim = s.claim().unwrap();
        assert_eq!(claim.mode, Mode::Presigned);
        assert_eq!(claim.signature, sig);
        assert!(signature_matches(
            SECRET,
            &s.string_to_sign(Mode::Presigned),
            &claim.signature
        ));
    }

    #[test]
    fn mismatches_junk_and_other_schemes() {
        let sts = "GET\n\n\nx\n/b/k";
        let good = sign(SECRET, sts);
        assert!(signature_matches(SECRET, sts, &good));
        assert!(!signature_matches("other", sts, &good));
        assert!(!signature_matches(SECRET, "GET\n\n\nx\n/b/j", &good));
        let mut flipped = good.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        assert!(!signature_matches(
            SECRET,
            sts,
            std::str::from_utf8(&flipped).unwrap()
        ));
        for junk in ["", "%%%", "AAAA", &good[..good.len() - 4]] {
            assert!(!signature_matches(SECRET, sts, junk), "{junk:?}");
        }
        // SigV4 and unsigned requests make no SigV2 claim.
        for req in [
            http::Request::get("/b/k")
                .header("authorization", "AWS4-HMAC-SHA256 Credential=x")
                .body(())
                .unwrap(),
            http::Request::get("/b/k?X-Amz-Signature=abc")
                .body(())
                .unwrap(),
            http::Request::get("/b/k").body(()).unwrap(),
        ] {
            assert_eq!(Signed::of(&req, None).unwrap().claim(), None);
        }
        let form = http::Request::post("/b")
            .header("content-type", "multipart/form-data; boundary=x")
            .body(())
            .unwrap();
        assert!(is_form_post(&form));
        assert!(!is_form_post(
            &http::Request::post("/b?delete").body(()).unwrap()
        ));
    }
}
