//! A span per RPC: a tower layer around every service (beside the metrics layer) opens it
//! when a call arrives, runs the call inside it, and closes it at the call's status, so that
//! an exported trace shows each call's method, `request_id` (recorded by the handler, see
//! `api::fingerprinted`) and outcome, and JSON log lines written during the call carry them.
//!
//! The span's name is the method's path when the policy table lists it, `unknown` otherwise:
//! a caller cannot name spans. Fields follow OpenTelemetry's RPC conventions (`rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, a server span), plus `request_id`
//! and `outcome` (the code's name).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::auth::policy;
use crate::grpc_code::{CANCELED, CODE_NAMES, UNKNOWN, status_code};

/// Codes that make a server span an error, as OpenTelemetry's gRPC conventions list them.
const ERRORS: [usize; 6] = [2, 4, 12, 13, 14, 15];

/// Opens a span per call (see the module).
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcSpanLayer;

impl<S> Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcSpan(inner)
    }
}

/// A service behind [`RpcSpanLayer`].
#[derive(Debug, Clone)]
pub struct RpcSpan<S>(S);

impl<S> Service<Request<Body>> for RpcSpan<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let span = open(request.uri().path());
        let answer = self.0.call(request).instrument(span.clone());
        Box::pin(async move {
            let response = match answer.await {
                Ok(response) => response,
                Err(error) => {
                    close(&span, UNKNOWN);
                    return Err(error);
                }
            };
            if let Some(code) = status_code(response.headers()) {
                close(&span, code);
                return Ok(response);
            }
            Ok(response.map(|inner| {
                Body::new(SpannedResponse {
                    inner,
                    span: Some(span),
                })
            }))
        })
    }
}

fn open(path: &str) -> Span {
    let known = policy::access(path).is_some();
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|_| known)
        .unwrap_or(("unknown", "unknown"));
    let name = if known { path } else { "unknown" };
    tracing::info_span!(
        "rpc",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        request_id = Empty,
        outcome = Empty,
    )
}

/// Records the call's status on its span.
fn close(span: &Span, code: usize) {
    span.record("rpc.grpc.status_code", code);
    span.record("outcome", CODE_NAMES[code]);
    span.record(
        "otel.status_code",
        if ERRORS.contains(&code) {
            "error"
        } else {
            "ok"
        },
    );
}

/// A response body that holds its call's span open until the status in its trailers (or its
/// end, or until it is dropped).
struct SpannedResponse {
    inner: Body,
    span: Option<Span>,
}

impl http_body::Body for SpannedResponse {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|trailers| status_code(trailers).unwrap_or(UNKNOWN)),
            Poll::Ready(Some(Err(_)) | None) => Some(UNKNOWN),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(span) = this.span.take()
        {
            close(&span, code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for SpannedResponse {
    fn drop(&mut self) {
        // Dropped before its status: the client went away.
        if let Some(span) = self.span.take() {
            close(&span, CANCELED);
        }
    }
}
