//! Chunk signatures of signed aws-chunked uploads checked in constant time
//! before s3s sees them.
//!
//! A PUT with `x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
//! (or `...-PAYLOAD-TRAILER`) signs every chunk, chaining each signature to
//! the one before, and s3s compares those signatures (and the trailer's)
//! with `==`/`!=`, which return sooner the earlier the first wrong byte. A
//! client that captured one signed request could replay its headers with
//! chunks of its own and learn a valid chunk signature from response
//! times. [`GuardedBody`] sits between hyper and s3s: it holds each chunk
//! until it has all of it, verifies the chunk's signature with
//! [`Mac::verify_slice`] (constant time), and passes the bytes on unchanged
//! when it matches. When it does not, the signature is replaced by zeros
//! of the same length before s3s sees it, so s3s refuses the request
//! (SignatureDoesNotMatch) by comparing its own result with a value the
//! client did not choose. The trailer signature is handled the same way.
//! Chunks are held whole (s3s holds them whole too) up to
//! [`MAX_GUARDED_CHUNK`]; a larger chunk is refused.

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use sha2::{Digest as _, Sha256};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Largest chunk held for verification (SDKs send 8 KiB to 128 KiB).
pub const MAX_GUARDED_CHUNK: usize = 16 << 20;
/// Longest chunk header line s3s accepts.
const MAX_META: usize = 1024;
/// Largest trailer block s3s accepts.
const MAX_TRAILERS: usize = 16 << 10;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(data);
    m.finalize().into_bytes().into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

/// The signing state of one streaming upload: SigV4's signing key, the
/// request's time and scope, and the last signature in the chain.
#[derive(Clone)]
pub struct ChunkSigner {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    prev: String,
}

impl ChunkSigner {
    /// The signer of a request signed with `secret`, or `None` when it is
    /// not a signed aws-chunked upload (or its headers are malformed:
    /// s3s refuses those before reading the body).
    pub fn for_request<B>(req: &http::Request<B>, secret: &str) -> Option<Self> {
        let (_, date, region, service, seed) = streaming_auth(req)?;
        let amz_date = req.headers().get("x-amz-date")?.to_str().ok()?.to_string();
        if amz_date.len() < 8 || !amz_date.starts_with(date) {
            return None;
        }
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, service.as_bytes());
        Some(ChunkSigner {
            key: hmac(&k_service, b"aws4_request"),
            scope: format!("{date}/{region}/{service}/aws4_request"),
            amz_date,
            prev: seed.to_string(),
        })
    }

    /// The string to sign of the next link in the chain.
    fn string_to_sign(&self, kind: &str, content_sha256: &str) -> String {
        let content = if kind == "PAYLOAD" {
            format!("{EMPTY_SHA256}\n{content_sha256}")
        } else {
            content_sha256.to_string()
        };
        format!(
            "AWS4-HMAC-SHA256-{kind}\n{}\n{}\n{}\n{content}",
            self.amz_date, self.scope, self.prev
        )
    }

    /// Checks `given` (hex) against the signature of the next link: `kind`
    /// PAYLOAD for a chunk (over its SHA-256), TRAILER for the trailers.
    /// On a match the chain moves on.
    fn verify(&mut self, kind: &str, content_sha256: &str, given: &[u8]) -> bool {
        let sts = self.string_to_sign(kind, content_sha256);
        let Some(given_raw) = unhex(given) else {
            return false;
        };
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key");
        m.update(sts.as_bytes());
        if m.verify_slice(&given_raw).is_err() {
            return false;
        }
        self.prev = String::from_utf8_lossy(given).into_owned();
        true
    }
}

/// `(access key, date, region, service, seed signature)` of a signed
/// aws-chunked upload's Authorization header.
pub fn streaming_auth<B>(req: &http::Request<B>) -> Option<(&str, &str, &str, &str, &str)> {
    let sha = req.headers().get("x-amz-content-sha256")?.as_bytes();
    if sha != b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        && sha != b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    {
        return None;
    }
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signature = None;
    for part in auth.split(',') {
        let part = part.trim();
        if let Some(c) = part.strip_prefix("Credential=") {
            credential = Some(c);
        } else if let Some(s) = part.strip_prefix("Signature=") {
            signature = Some(s);
        }
    }
    let mut scope = credential?.split('/');
    let (ak, date, region, service, term) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    (term == "aws4_request" && scope.next().is_none())
        .then_some((ak, date, region, service, signature?))
}

/// Where the parser is in the aws-chunked framing.
enum State {
    /// Reading a chunk header line (`SIZE;chunk-signature=SIG\r\n`).
    Meta(BytesMut),
    /// Holding a chunk's data until all of it is here.
    Data {
        meta: BytesMut,
        sig: std::ops::Range<usize>,
        left: usize,
        held: Vec<Bytes>,
        hash: Sha256,
    },
    /// The CRLF after a chunk's data, passed on as it comes.
    Crlf(usize),
    /// Everything after the last (empty) chunk: the trailer block.
    Trailers(BytesMut),
    /// Nothing more to check: bytes pass through (after a refusal, or on
    /// framing s3s will refuse itself).
    Through,
}

/// The checking parser: fed the body's bytes, it appends what may go on to
/// s3s to `out`.
pub struct ChunkGuard {
    signer: ChunkSigner,
    state: State,
}

/// Parses a chunk header line: its size and where the signature is.
fn parse_meta(line: &[u8]) -> Option<(usize, std::ops::Range<usize>)> {
    let body = line.strip_suffix(b"\r\n")?;
    let semi = body.iter().position(|b| *b == b';')?;
    let size = usize::from_str_radix(std::str::from_utf8(&body[..semi]).ok()?, 16).ok()?;
    let rest = &body[semi..];
    let prefix = b";chunk-signature=";
    if !rest.starts_with(prefix) || rest.len() != prefix.len() + 64 {
        return None;
    }
    let start = semi + prefix.len();
    Some((size, start..start + 64))
}

impl ChunkGuard {
    /// A guard for a body signed by `signer`.
    pub fn new(signer: ChunkSigner) -> Self {
        ChunkGuard {
            signer,
            state: State::Meta(BytesMut::new()),
        }
    }

    /// Bytes held back, waiting for the rest of their chunk.
    pub fn held(&self) -> usize {
        match &self.state {
            State::Meta(b) | State::Trailers(b) => b.len(),
            State::Data { meta, held, .. } => {
                meta.len() + held.iter().map(Bytes::len).sum::<usize>()
            }
            State::Crlf(_) | State::Through => 0,
        }
    }

    /// Takes the next bytes of the body.
    pub fn feed(&mut self, mut bytes: Bytes, out: &mut VecDeque<Bytes>) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Through => {
                    out.push_back(bytes);
                    return;
                }
                State::Crlf(left) => {
                    let n = (*left).min(bytes.len());
                    out.push_back(bytes.split_to(n));
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Meta(BytesMut::new());
                    }
                }
                State::Meta(line) => {
                    let take = match bytes.iter().position(|b| *b == b'\n') {
                        Some(i) => i + 1,
                        None => bytes.len(),
                    };
                    line.extend_from_slice(&bytes.split_to(take));
                    if line.len() > MAX_META {
                        let line = std::mem::take(line).freeze();
                        self.pass_through(line, out);
                    } else if line.ends_with(b"\n") {
                        let line = std::mem::take(line);
                        self.begin_chunk(line, out);
                    }
                }
                State::Data {
                    left, held, hash, ..
                } => {
                    let part = bytes.split_to((*left).min(bytes.len()));
                    hash.update(&part);
                    *left -= part.len();
                    held.push(part);
                    if *left == 0 {
                        self.end_chunk(out);
                    }
                }
                State::Trailers(block) => {
                    block.extend_from_slice(&bytes);
                    if block.len() > MAX_TRAILERS {
                        let block = std::mem::take(block).freeze();
                        self.pass_through(block, out);
                    }
                    return;
                }
            }
        }
    }

    /// The body ended: whatever is held goes on (checked, when it can be).
    pub fn finish(&mut self, out: &mut VecDeque<Bytes>) {
        match std::mem::replace(&mut self.state, State::Through) {
            State::Trailers(mut block) => {
                self.check_trailers(&mut block);
                out.push_back(block.freeze());
            }
            State::Meta(line) => out.push_back(line.freeze()),
            State::Data { meta, held, .. } => {
                // Cut short: s3s reports the incomplete body.
                out.push_back(meta.freeze());
                out.extend(held);
            }
            State::Crlf(_) | State::Through => {}
        }
        out.retain(|b| !b.is_empty());
    }

    fn pass_through(&mut self, held: Bytes, out: &mut VecDeque<Bytes>) {
        out.push_back(held);
        self.state = State::Through;
    }

    fn begin_chunk(&mut self, meta: BytesMut, out: &mut VecDeque<Bytes>) {
        let Some((size, sig)) = parse_meta(&meta) else {
            // Not signed framing: s3s decides what it is.
            return self.pass_through(meta.freeze(), out);
        };
        if size > MAX_GUARDED_CHUNK {
            let mut meta = meta;
            meta[sig].fill(b'0');
            return self.pass_through(meta.freeze(), out);
        }
        self.state = State::Data {
            meta,
            sig,
            left: size,
            held: Vec::new(),
            hash: Sha256::new(),
        };
        if size == 0 {
            self.end_chunk(out);
        }
    }

    fn end_chunk(&mut self, out: &mut VecDeque<Bytes>) {
        let State::Data {
            mut meta,
            sig,
            held,
            hash,
            ..
        } = std::mem::replace(&mut self.state, State::Through)
        else {
            return;
        };
        let last = held.iter().all(Bytes::is_empty);
        let ok = self
            .signer
            .verify("PAYLOAD", &hex(&hash.finalize()), &meta[sig.clone()]);
        if !ok {
            meta[sig].fill(b'0');
        }
        out.push_back(meta.freeze());
        out.extend(held.into_iter().filter(|b| !b.is_empty()));
        self.state = match (ok, last) {
            (false, _) => State::Through,
            (true, true) => State::Trailers(BytesMut::new()),
            (true, false) => State::Crlf(2),
        };
    }

    /// Verifies the trailer signature as s3s computes it (trailer lines
    /// lowercased, trimmed and sorted, the signature line left out) and
    /// zeroes it in `block` when it does not match.
    fn check_trailers(&mut self, block: &mut BytesMut) {
        let mut entries: Vec<(String, String)> = Vec::new();
        let mut sig_at = None;
        let mut start = 0;
        for i in 0..=block.len() {
            if i < block.len() && block[i] != b'\n' {
                continue;
            }
            let mut line = start..i;
            start = i + 1;
            if line.end > line.start && block[line.end - 1] == b'\r' {
                line.end -= 1;
            }
            if line.is_empty() {
                continue;
            }
            let Some(colon) = block[line.clone()].iter().position(|b| *b == b':') else {
                return;
            };
            let name = block[line.start..line.start + colon].to_ascii_lowercase();
            let Ok(name) = String::from_utf8(name) else {
                return;
            };
            let value = &block[line.start + colon + 1..line.end];
            let first = value.iter().position(|b| !b.is_ascii_whitespace());
            let last = value.iter().rposition(|b| !b.is_ascii_whitespace());
            let span = match (first, last) {
                (Some(f), Some(l)) => line.start + colon + 1 + f..line.start + colon + 1 + l + 1,
                _ => line.end..line.end,
            };
            if name == "x-amz-trailer-signature" {
                sig_at = Some(span);
            } else {
                let Ok(v) = std::str::from_utf8(&block[span]) else {
                    return;
                };
                entries.push((name, v.to_string()));
            }
        }
        let Some(sig) = sig_at else { return };
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let canonical: String = entries.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let digest = hex(&Sha256::digest(canonical.as_bytes()));
        if !self.signer.verify("TRAILER", &digest, &block[sig.clone()]) {
            block[sig].fill(b'0');
        }
    }
}

/// A request body whose aws-chunked signatures are checked by a
/// [`ChunkGuard`] before its bytes go on.
pub struct GuardedBody<B> {
    inner: B,
    guard: ChunkGuard,
    out: VecDeque<Bytes>,
    ended: bool,
}

impl<B> GuardedBody<B> {
    /// Wraps `inner`, checked with `signer`.
    pub fn new(inner: B, signer: ChunkSigner) -> Self {
        GuardedBody {
            inner,
            guard: ChunkGuard::new(signer),
            out: VecDeque::new(),
            ended: false,
        }
    }
}

impl<B> HttpBody for GuardedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.guard.feed(data, &mut this.out),
                    // HTTP trailers: not part of aws-chunked; pass them on.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    this.guard.finish(&mut this.out);
                    this.ended = true;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        // What is still to come from the client plus what is held here.
        let held = (self.guard.held() + self.out.iter().map(Bytes::len).sum::<usize>()) as u64;
        if self.ended {
            return SizeHint::with_exact(held);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(u) = inner.upper() {
            hint.set_upper(u + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example ("Signature calculation: transferring
    /// payload in multiple chunks"): 66560 bytes of 'a' in 64 KiB chunks.
    fn example() -> (http::Request<()>, &'static str, Vec<u8>) {
        let req = http::Request::put("/examplebucket/chunkObject.txt")
            .header("host", "s3.amazonaws.com")
            .header("x-amz-date", "20130524T000000Z")
            .header("x-amz-storage-class", "REDUCED_REDUNDANCY")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,\
                 Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            )
            .header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
            .header("content-encoding", "aws-chunked")
            .header("x-amz-decoded-content-length", "66560")
            .header("content-length", "66824")
            .body(())
            .unwrap();
        let mut body = Vec::new();
        body.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        body.extend(std::iter::repeat_n(b'a', 65536));
        body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        body.extend(std::iter::repeat_n(b'a', 1024));
        body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        (req, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", body)
    }

    /// Feeds `body` in pieces of `step` bytes; returns what went on.
    fn run(signer: ChunkSigner, body: &[u8], step: usize) -> Vec<u8> {
        let mut g = ChunkGuard::new(signer);
        let mut out = VecDeque::new();
        for piece in body.chunks(step) {
            g.feed(Bytes::copy_from_slice(piece), &mut out);
        }
        g.finish(&mut out);
        out.into_iter().flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn the_aws_example_passes_unchanged_in_any_split() {
        let (req, secret, body) = example();
        assert_eq!(body.len(), 66824);
        let signer = ChunkSigner::for_request(&req, secret).expect("a signed streaming upload");
        for step in [1, 7, 1000, 65_600, body.len()] {
            assert_eq!(
                run(signer.clone(), &body, step),
                body,
                "split every {step} bytes"
            );
        }
    }

    #[test]
    fn a_wrong_chunk_signature_reaches_s3s_as_zeros() {
        let (req, secret, mut body) = example();
        // Second chunk: one data byte changed (its signature no longer fits).
        let at = body.len() - 200;
        body[at] = b'b';
        let signer = ChunkSigner::for_request(&req, secret).unwrap();
        let out = run(signer.clone(), &body, 4096);
        assert_eq!(out.len(), body.len());
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(&format!("400;chunk-signature={}\r\n", "0".repeat(64))));
        assert!(
            text.starts_with("10000;chunk-signature=ad80c730"),
            "the first chunk is intact"
        );
        // A wrong secret fails the first chunk already.
        let wrong = ChunkSigner::for_request(&req, "not the secret").unwrap();
        let out = run(wrong, &example().2, 4096);
        assert!(out.starts_with(format!("10000;chunk-signature={}", "0".repeat(64)).as_bytes()));
        // Not hex, or too long a chunk: refused the same way.
        let mut junk = example().2;
        junk[22] = b'z';
        let out = run(signer.clone(), &junk, 4096);
        assert!(out.starts_with(format!("10000;chunk-signature={}", "0".repeat(64)).as_bytes()));
        let huge = format!(
            "{:x};chunk-signature={}\r\n",
            MAX_GUARDED_CHUNK + 1,
            "1".repeat(64)
        );
        let out = run(signer, huge.as_bytes(), 10);
        assert!(String::from_utf8_lossy(&out).ends_with(&format!("={}\r\n", "0".repeat(64))));
    }

    #[test]
    fn trailer_signatures_are_checked_too() {
        let (req, secret, _) = example();
        let mut signer = ChunkSigner::for_request(&req, secret).unwrap();
        let data = b"hello world".to_vec();
        // Build a signed body with a trailer, signing as a client would.
        let sign = |s: &mut ChunkSigner, kind: &str, content: &str| {
            let sts = s.string_to_sign(kind, content);
            let sig = hex(&hmac(&s.key, sts.as_bytes()));
            s.prev = sig.clone();
            sig
        };
        let start = signer.clone();
        let s1 = sign(&mut signer, "PAYLOAD", &hex(&Sha256::digest(&data)));
        let s0 = sign(&mut signer, "PAYLOAD", EMPTY_SHA256);
        let trailer = "x-amz-checksum-crc32:DUoRhQ==\n";
        let st = sign(
            &mut signer,
            "TRAILER",
            &hex(&Sha256::digest(trailer.as_bytes())),
        );
        let body = |tsig: &str| {
            let mut b = format!("b;chunk-signature={s1}\r\n").into_bytes();
            b.extend_from_slice(&data);
            b.extend_from_slice(
                format!(
                    "\r\n0;chunk-signature={s0}\r\nx-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:{tsig}\r\n\r\n"
                )
                .as_bytes(),
            );
            b
        };
        let good = body(&st);
        assert_eq!(run(start.clone(), &good, 3), good);
        let forged = body(&"f".repeat(64));
        let out = run(start, &forged, 5);
        assert_eq!(out, body(&"0".repeat(64)));
    }

    #[test]
    fn only_signed_streaming_uploads_are_guarded() {
        let req = |sha: &str| {
            http::Request::put("/b/k")
                .header("x-amz-date", "20130524T000000Z")
                .header("x-amz-content-sha256", sha)
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc",
                )
                .body(())
                .unwrap()
        };
        assert!(
            ChunkSigner::for_request(&req("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), "s").is_some()
        );
        assert!(
            ChunkSigner::for_request(&req("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"), "s")
                .is_some()
        );
        for other in [
            "UNSIGNED-PAYLOAD",
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            EMPTY_SHA256,
        ] {
            assert!(
                ChunkSigner::for_request(&req(other), "s").is_none(),
                "{other}"
            );
        }
    }
}
