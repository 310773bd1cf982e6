//! A span per RPC, from its first byte to its last: the method, the `request_id` (recorded
//! where requests are keyed, `api::fingerprinted`), and the outcome, the gRPC status code from
//! the response's headers (an error answered at once) or its trailers (the end of any other
//! call, streams included). Around everything gRPC, so that forwarded calls and gRPC-web ones
//! have theirs too.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument, Span};

#[derive(Clone, Default)]
pub struct RpcSpanLayer;

impl<S> Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcSpan { inner }
    }
}

#[derive(Clone)]
pub struct RpcSpan<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for RpcSpan<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let span = rpc_span(request.uri().path());
        let answered = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let response = answered.await?;
            record_status(&span, response.headers());
            Ok(response.map(|inner| Body::new(Traced { inner, span })))
        })
    }
}

/// The span of a call to `path`. Only the methods the policy table knows are named, so a
/// caller cannot make up span names.
fn rpc_span(path: &str) -> Span {
    let known = crate::auth::access(path).is_some();
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|_| known)
        .unwrap_or(("unknown", "unknown"));
    tracing::info_span!(
        "rpc",
        otel.name = if known { path } else { "unknown" },
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        request_id = Empty,
    )
}

/// Notes the call's gRPC status, when `headers` (or trailers) carry one.
fn record_status(span: &Span, headers: &HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    span.record("otel.status_code", if code == 0 { "OK" } else { "ERROR" });
}

/// A response body that holds its call's span open until the body ends, and notes the status
/// its trailers carry.
struct Traced {
    inner: Body,
    span: Span,
}

impl http_body::Body for Traced {
    type Data = prost::bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
        {
            record_status(&self.span, trailers);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Records the request's `request_id` on the current call's span.
pub fn record_request_id(request_id: &str) {
    Span::current().record("request_id", request_id);
}
