//! A small S3 client for `meridian bench --s3`: path-style requests over
//! keep-alive HTTP/1.1 connections, signed with SigV4 in headers
//! (UNSIGNED-PAYLOAD, as SDKs do), over `http://` or `https://` (TLS
//! verified against `--ca-bundle`).

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest as _, Sha256};

/// Credentials and where to send requests.
#[derive(Clone)]
pub struct S3Client {
    http: Client<crate::tls::Connector, Full<Bytes>>,
    endpoint: http::Uri,
    host: String,
    access_key: String,
    secret: String,
    region: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hmac(key: &[u8], msg: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// URI-encodes a path segment the way SigV4 canonicalizes it (keeps '/').
fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYYMMDD'T'HHMMSS'Z'` and `YYYYMMDD` of now.
fn amz_dates() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let full = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    (full, date)
}

impl S3Client {
    /// A client for `endpoint` (`http://host:port` or `https://…`, the
    /// latter verified with the CA certificates in `ca_bundle`).
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret: &str,
        region: &str,
        ca_bundle: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let endpoint: http::Uri = endpoint
            .parse()
            .with_context(|| format!("--s3 {endpoint:?} is not a URL"))?;
        match endpoint.scheme_str() {
            Some("http") => {}
            Some("https") if ca_bundle.is_some() => {}
            Some("https") => {
                bail!("--s3 https://… needs --ca-bundle (the gateway's CA certificate)")
            }
            _ => bail!("--s3 must be an http:// or https:// URL"),
        }
        let host = endpoint
            .authority()
            .map(|a| a.to_string())
            .context("--s3 URL has no host")?;
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(crate::tls::Connector::new(ca_bundle)?);
        Ok(Self {
            http,
            endpoint,
            host,
            access_key: access_key.into(),
            secret: secret.into(),
            region: region.into(),
        })
    }

    /// The SigV4 Authorization header for a request with no query string.
    fn authorization(&self, method: &str, path: &str, amz_date: &str, date: &str) -> String {
        let canonical = format!(
            "{method}\n{path}\n\nhost:{}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD",
            self.host
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let k = hmac(format!("AWS4{}", self.secret).as_bytes(), date);
        let k = hmac(&k, &self.region);
        let k = hmac(&k, "s3");
        let k = hmac(&k, "aws4_request");
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
            self.access_key,
            hex(&hmac(&k, &to_sign))
        )
    }

    /// Sends one request; returns status and body.
    async fn send(&self, method: &str, path: &str, body: Bytes) -> anyhow::Result<(u16, Bytes)> {
        let path = encode_path(path);
        let (amz_date, date) = amz_dates();
        let uri = format!(
            "{}://{}{path}",
            self.endpoint.scheme_str().unwrap_or("http"),
            self.host
        );
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", &self.host)
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .header(
                "authorization",
                self.authorization(method, &path, &amz_date, &date),
            )
            .header("content-length", body.len())
            .body(Full::new(body))?;
        let resp = self.http.request(req).await.context("S3 request")?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("S3 response body")?;
        Ok((status, body.to_bytes()))
    }

    fn check(status: u16, body: &[u8], what: &str) -> anyhow::Result<()> {
        if (200..300).contains(&status) {
            return Ok(());
        }
        bail!(
            "{what}: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    }

    /// CreateBucket (an existing bucket of ours is fine).
    pub async fn ensure_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let (s, b) = self
            .send("PUT", &format!("/{bucket}"), Bytes::new())
            .await?;
        if s == 409 && String::from_utf8_lossy(&b).contains("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Self::check(s, &b, &format!("create bucket {bucket}"))
    }

    /// PutObject.
    pub async fn put(&self, bucket: &str, key: &str, data: Bytes) -> anyhow::Result<()> {
        let (s, b) = self.send("PUT", &format!("/{bucket}/{key}"), data).await?;
        Self::check(s, &b, &format!("PUT {key}"))
    }

    /// GetObject.
    pub async fn get(&self, bucket: &str, key: &str) -> anyhow::Result<Bytes> {
        let (s, b) = self
            .send("GET", &format!("/{bucket}/{key}"), Bytes::new())
            .await?;
        Self::check(s, &b, &format!("GET {key}"))?;
        Ok(b)
    }

    /// DeleteObject.
    pub async fn delete(&self, bucket: &str, key: &str) -> anyhow::Result<()> {
        let (s, b) = self
            .send("DELETE", &format!("/{bucket}/{key}"), Bytes::new())
            .await?;
        Self::check(s, &b, &format!("DELETE {key}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_matches_the_aws_example() {
        // The derived-key example of the AWS SigV4 documentation.
        let k = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215");
        let k = hmac(&k, "us-east-1");
        let k = hmac(&k, "iam");
        let k = hmac(&k, "aws4_request");
        assert_eq!(
            hex(&k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn paths_are_canonically_encoded() {
        assert_eq!(encode_path("/b/a b+c"), "/b/a%20b%2Bc");
    }
}
