//! The bodies of forwarded calls: the caller's request on its way to the leader, the
//! leader's answer on its way back (ending with a gRPC status, never a bare reset), and the
//! counting that keeps a call's place while its body lives.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::HeaderMap;
use http_body::Frame;
use tokio::sync::oneshot;
use tonic::Status;
use tonic::body::Body;
use tracing::warn;

/// Counts a call while it lives: among those waiting for a revision, or on a connection.
pub(super) struct Counted(Arc<AtomicUsize>);

impl Counted {
    pub(super) fn enter(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The leader's response body, passed through as it comes, except that it ends with a gRPC
/// status in trailers instead of a bare stream reset: `UNAVAILABLE` naming the leader when the
/// leader is lost mid-call, and `UNAVAILABLE` "reconnect" when this node drains (`stopping`).
pub(super) struct FromLeader {
    pub(super) inner: Body,
    pub(super) leader: Arc<str>,
    pub(super) stopping: Option<BoxFuture<'static, ()>>,
    /// Dropped when this body ends here: the call to the leader is cancelled with it.
    pub(super) tether: Option<oneshot::Sender<()>>,
    /// The call's place on its connection, given back with the body.
    pub(super) _call: Counted,
    pub(super) ended: bool,
}

impl FromLeader {
    /// The last frame: `status` in trailers.
    fn end_with(
        &mut self,
        status: Status,
    ) -> Poll<Option<Result<Frame<prost::bytes::Bytes>, Status>>> {
        self.ended = true;
        self.tether = None;
        let mut trailers = HeaderMap::new();
        match status.add_header(&mut trailers) {
            Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Err(_) => Poll::Ready(Some(Err(status))),
        }
    }
}

impl http_body::Body for FromLeader {
    type Data = prost::bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => {
                let leader = &self.leader;
                warn!(%leader, error = %error.message(), "the leader was lost during a forwarded call");
                let status = Status::unavailable(format!(
                    "the connection to the leader at {leader} was lost during the call ({}); \
                     retry in a moment",
                    error.message()
                ));
                self.end_with(status)
            }
            Poll::Pending => match self
                .stopping
                .as_mut()
                .map(|stopping| stopping.poll_unpin(cx))
            {
                // Dropping the leader's body with the response cancels the call there.
                Some(Poll::Ready(())) => self.end_with(Status::unavailable(
                    "server is stopping; reconnect to another server",
                )),
                _ => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body passed through as it is, holding `_open` until it is dropped.
pub(super) struct Held {
    pub(super) inner: Body,
    pub(super) _open: Counted,
}

impl http_body::Body for Held {
    type Data = prost::bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The caller's request body on its way to the leader, cut off once the answer has ended on
/// this node (or was dropped): the leader then sees the call cancelled, and the caller's
/// stream here is released instead of being kept open by the copy to the leader.
pub(super) struct ToLeader {
    pub(super) inner: Body,
    /// `None` once cut off.
    pub(super) ended: Option<oneshot::Receiver<()>>,
}

impl http_body::Body for ToLeader {
    type Data = prost::bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let Some(ended) = self.ended.as_mut() else {
            return Poll::Ready(None);
        };
        if ended.poll_unpin(cx).is_ready() {
            self.ended = None;
            return Poll::Ready(Some(Err(Status::cancelled(
                "the call ended on the forwarding node",
            ))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
