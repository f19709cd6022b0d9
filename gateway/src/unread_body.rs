//! Request bodies a handler answered without reading.
//!
//! An S3 error often comes before the body is read (an anonymous PUT to a
//! private bucket, a bad signature, a missing bucket). On an HTTP/1.1
//! keep-alive connection the rest of that body still precedes the client's
//! next request, so the server must either read it or close the connection.
//! hyper closes when nothing more is buffered at the moment the body is
//! dropped, but its response has already promised keep-alive: a client that
//! reuses the connection then sees it reset, and under load botocore even
//! got `NotImplemented: Unknown operation` for the DELETE that followed a
//! refused one-byte PUT on the same connection.
//!
//! So the gateway settles every HTTP/1 request before its response goes out:
//! a small remainder (at most [`MAX_DRAIN_BYTES`], arriving within
//! [`DRAIN_TIMEOUT`]) is read and dropped, and the connection stays usable;
//! anything else, and a body the client holds back for `Expect:
//! 100-continue`, gets `Connection: close` on the response.

use bytes::Buf as _;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most of an unread body that is read to keep the connection.
pub const MAX_DRAIN_BYTES: u64 = 64 << 10;
/// How long the rest of an unread body may take to arrive.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a body dropped before its end is handed back.
type Returned = Arc<Mutex<Option<Incoming>>>;

/// A request body that, when dropped before its end, hands the rest back
/// to the [`UnreadBody`] of its request.
pub struct WatchedBody {
    inner: Option<Incoming>,
    returned: Option<Returned>,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        if let (Some(body), Some(returned)) = (self.inner.take(), self.returned.take())
            && !body.is_end_stream()
            && let Ok(mut slot) = returned.lock()
        {
            *slot = Some(body);
        }
    }
}

/// What the gateway does with a request's body once the response is ready.
pub struct UnreadBody {
    returned: Option<Returned>,
    expect_continue: bool,
}

/// Wraps the body of `req` so that what its handler leaves unread can be
/// settled (see the module doc). HTTP/2 requests are passed through: their
/// streams end independently of the connection.
pub fn watch(req: http::Request<Incoming>) -> (http::Request<WatchedBody>, UnreadBody) {
    let http1 = req.version() <= http::Version::HTTP_11;
    let returned = (http1 && !req.body().is_end_stream()).then(Returned::default);
    let expect_continue = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let unread = UnreadBody {
        returned: returned.clone(),
        expect_continue,
    };
    (
        req.map(|inner| WatchedBody {
            inner: Some(inner),
            returned,
        }),
        unread,
    )
}

impl UnreadBody {
    /// Reads a small remainder of the request body, or marks `resp` to close
    /// the connection. Call it once the handler has returned, so its body is
    /// dropped.
    pub async fn settle<B>(self, resp: &mut http::Response<B>) {
        let Some(body) = self
            .returned
            .and_then(|r| r.lock().ok().and_then(|mut s| s.take()))
        else {
            return;
        };
        // The client waits for a 100 Continue that was never sent: reading
        // would only ask it for a body nobody wants.
        let drained = !self.expect_continue
            && tokio::time::timeout(DRAIN_TIMEOUT, drain(body, MAX_DRAIN_BYTES))
                .await
                .unwrap_or(false);
        if !drained {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
    }
}

/// Reads `body` to its end if at most `limit` bytes remain; true if it ended.
async fn drain(mut body: Incoming, limit: u64) -> bool {
    use http_body_util::BodyExt as _;
    if body.size_hint().lower() > limit {
        return false;
    }
    let mut read = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        if let Some(data) = frame.data_ref() {
            read += data.remaining() as u64;
            if read > limit {
                return false;
            }
        }
    }
    true
}
