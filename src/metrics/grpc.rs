//! gRPC server metrics under the names go-grpc-prometheus made familiar, from a tower layer
//! around every service: calls started and handled (by code), how long each took, messages
//! received and sent, and the streams open now. The layer sits outside the forwarding edge
//! and authentication, so every call, forwarded, refused or served, counts once.
//!
//! Method labels come only from the policy table's paths (`auth::policy::POLICY`), with their
//! kind from the descriptor sets the server serves; any other path counts as `unknown`, so a
//! caller cannot make up label values. The code is the `grpc-status` of the response headers
//! (trailers-only) or trailers; a call whose response is dropped before its status (the
//! client went away) counts as `Canceled`.
//!
//! A unary call counts its one request message when it starts, as go-grpc-prometheus'
//! interceptor does, refused calls included: only streams' request bodies are watched for
//! messages, which spares every unary call a body wrapper.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use http_body::{Frame, SizeHint};
use metrics::{Counter, Gauge, Label};
use prost::Message as _;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use super::frames::Frames;
use super::histogram::AtomicHistogram;
use super::recorder::{Kind, Metric, Registry};
use crate::auth::policy::POLICY;
use crate::grpc_code::{CANCELED, CODE_NAMES, UNKNOWN, status_code};

const STARTED: &str = "grpc_server_started_total";
const HANDLED: &str = "grpc_server_handled_total";
const HANDLING: &str = "grpc_server_handling_seconds";
const RECEIVED: &str = "grpc_server_msg_received_total";
const SENT: &str = "grpc_server_msg_sent_total";
const OPEN: &str = "grpc_server_open_streams";

const HANDLING_HELP: &str =
    "Time from an RPC's start to its status (a stream's whole life), in seconds.";
/// go-grpc-prometheus' (Prometheus' default) buckets.
const HANDLING_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub const METRICS: &[Metric] = &[
    Metric {
        name: STARTED,
        help: "RPCs started on the server.",
        kind: Kind::Counter,
    },
    Metric {
        name: HANDLED,
        help: "RPCs completed on the server, whatever their status code.",
        kind: Kind::Counter,
    },
    Metric {
        name: HANDLING,
        help: HANDLING_HELP,
        kind: Kind::Histogram(HANDLING_BUCKETS),
    },
    Metric {
        name: RECEIVED,
        help: "Request messages received, streams and unary calls alike.",
        kind: Kind::Counter,
    },
    Metric {
        name: SENT,
        help: "Response messages sent, streams and unary calls alike.",
        kind: Kind::Counter,
    },
    Metric {
        name: OPEN,
        help: "Streaming RPCs open now.",
        kind: Kind::Gauge,
    },
];

/// The descriptor sets the server serves, for each method's kind.
fn descriptor_sets() -> [&'static [u8]; 4] {
    [
        crate::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
}

/// Each method's `grpc_type`, by full path.
fn method_kinds() -> HashMap<String, &'static str> {
    let mut kinds = HashMap::new();
    for set in descriptor_sets() {
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    let kind = match (method.client_streaming(), method.server_streaming()) {
                        (false, false) => "unary",
                        (true, false) => "client_stream",
                        (false, true) => "server_stream",
                        (true, true) => "bidi_stream",
                    };
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    kinds.insert(path, kind);
                }
            }
        }
    }
    kinds
}

/// One method's figures. Its counts are plain atomics on the call path, published to the
/// registry's counters at each scrape (`publish`): a call pays a few relaxed additions, not
/// the registry's bookkeeping on every one.
struct MethodMetrics {
    labels: [Label; 3],
    streaming: bool,
    started: AtomicU64,
    received: AtomicU64,
    sent: AtomicU64,
    handled: [AtomicU64; 17],
    /// Rendered by `GrpcMetricsLayer::render`, not by the registry.
    handling: AtomicHistogram,
    open: Gauge,
    counters: Counters,
    registry: Arc<Registry>,
}

/// The registry's counters the atomics are published to.
struct Counters {
    started: Counter,
    received: Counter,
    sent: Counter,
    /// Registered at a code's first use: most methods only ever see a few codes.
    handled: [OnceLock<Counter>; 17],
}

impl MethodMetrics {
    fn new(
        registry: &Arc<Registry>,
        kind: &'static str,
        service: &'static str,
        method: &'static str,
    ) -> Self {
        let labels = [
            Label::from_static_parts("grpc_type", kind),
            Label::from_static_parts("grpc_service", service),
            Label::from_static_parts("grpc_method", method),
        ];
        let streaming = kind != "unary";
        Self {
            started: AtomicU64::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            handled: std::array::from_fn(|_| AtomicU64::new(0)),
            counters: Counters {
                started: registry.counter(STARTED, labels.to_vec()),
                received: registry.counter(RECEIVED, labels.to_vec()),
                sent: registry.counter(SENT, labels.to_vec()),
                handled: std::array::from_fn(|_| OnceLock::new()),
            },
            handling: AtomicHistogram::new(HANDLING_BUCKETS),
            open: if streaming {
                registry.gauge(OPEN, labels.to_vec())
            } else {
                Gauge::noop()
            },
            labels,
            streaming,
            registry: Arc::clone(registry),
        }
    }

    /// Sets the registry's counters to the counts so far.
    fn publish(&self) {
        let c = &self.counters;
        c.started.absolute(self.started.load(Ordering::Relaxed));
        c.received.absolute(self.received.load(Ordering::Relaxed));
        c.sent.absolute(self.sent.load(Ordering::Relaxed));
        for (code, count) in self.handled.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let counter = c.handled[code].get_or_init(|| {
                let mut labels = self.labels.to_vec();
                labels.push(Label::from_static_parts("grpc_code", CODE_NAMES[code]));
                self.registry.counter(HANDLED, labels)
            });
            counter.absolute(count);
        }
    }
}

/// Every known method's handles, then the one every other path shares.
struct MethodTable {
    methods: Vec<MethodMetrics>,
    by_path: foldhash::HashMap<&'static str, usize>,
}

impl MethodTable {
    fn new(registry: &Arc<Registry>) -> Self {
        let kinds = method_kinds();
        let mut methods = Vec::with_capacity(POLICY.len() + 1);
        let mut by_path = foldhash::HashMap::default();
        for (path, _) in POLICY {
            let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/'))
            else {
                continue;
            };
            let kind = kinds.get(*path).copied().unwrap_or("unknown");
            by_path.insert(*path, methods.len());
            methods.push(MethodMetrics::new(registry, kind, service, method));
        }
        methods.push(MethodMetrics::new(
            registry, "unknown", "unknown", "unknown",
        ));
        Self { methods, by_path }
    }

    fn publish(&self) {
        for method in &self.methods {
            method.publish();
        }
    }

    /// The index of `path`'s handles.
    fn find(&self, path: &str) -> usize {
        self.by_path
            .get(path)
            .copied()
            .unwrap_or(self.methods.len() - 1)
    }
}

/// Counts every call through it (see the module).
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    table: Arc<MethodTable>,
}

impl GrpcMetricsLayer {
    pub(super) fn new(registry: &Arc<Registry>) -> Self {
        Self {
            table: Arc::new(MethodTable::new(registry)),
        }
    }

    /// Publishes the counts to the registry, before a scrape renders it.
    pub(super) fn publish(&self) {
        self.table.publish();
    }

    /// Appends the handling-time histogram of every method called so far to `out`.
    pub(super) fn render(&self, out: &mut String) {
        out.push_str(&format!(
            "# HELP {HANDLING} {HANDLING_HELP}\n# TYPE {HANDLING} histogram\n"
        ));
        for method in &self.table.methods {
            if method.handling.count() > 0 {
                method.handling.render(HANDLING, &method.labels, out);
            }
        }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            table: Arc::clone(&self.table),
        }
    }
}

/// A service behind [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    table: Arc<MethodTable>,
}

impl<S> Service<Request<Body>> for GrpcMetrics<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let call = Call::start(Arc::clone(&self.table), request.uri().path());
        let request = if call.method().streaming {
            let (table, method) = (Arc::clone(&self.table), call.method);
            request.map(|inner| {
                Body::new(CountedRequest {
                    inner,
                    frames: Frames::default(),
                    table,
                    method,
                })
            })
        } else {
            call.method().received.fetch_add(1, Ordering::Relaxed);
            request
        };
        Answering {
            answer: self.inner.call(request),
            call: Some(call),
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's response on its way: a trailers-only status finishes the call at once, any
    /// other response takes the call along in its body.
    pub struct Answering<F> {
        #[pin]
        answer: F,
        call: Option<Call>,
    }
}

impl<F, E> Future for Answering<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = std::task::ready!(this.answer.poll(cx));
        let Some(call) = this.call.take() else {
            return Poll::Ready(answered);
        };
        Poll::Ready(match answered {
            Err(error) => {
                call.finish(UNKNOWN);
                Err(error)
            }
            Ok(response) => match status_code(response.headers()) {
                Some(code) => {
                    call.finish(code);
                    Ok(response)
                }
                None => Ok(response.map(|inner| {
                    Body::new(ObservedResponse {
                        inner,
                        frames: Frames::default(),
                        call: Some(call),
                    })
                })),
            },
        })
    }
}

/// One call in flight: started when the request arrived, finished once with its code.
struct Call {
    table: Arc<MethodTable>,
    method: usize,
    started: Instant,
    done: bool,
}

impl Call {
    fn start(table: Arc<MethodTable>, path: &str) -> Self {
        let method = table.find(path);
        let call = Self {
            table,
            method,
            started: Instant::now(),
            done: false,
        };
        let metrics = call.method();
        metrics.started.fetch_add(1, Ordering::Relaxed);
        if metrics.streaming {
            metrics.open.increment(1.0);
        }
        call
    }

    fn method(&self) -> &MethodMetrics {
        &self.table.methods[self.method]
    }

    fn finish(mut self, code: usize) {
        self.close(code);
    }

    fn close(&mut self, code: usize) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let method = self.method();
        method.handled[code].fetch_add(1, Ordering::Relaxed);
        method.handling.record(self.started.elapsed());
        if method.streaming {
            method.open.decrement(1.0);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Dropped before any status: the client went away (or the connection did).
        self.close(CANCELED);
    }
}

/// A request body that counts the messages read from it.
struct CountedRequest {
    inner: Body,
    frames: Frames,
    table: Arc<MethodTable>,
    method: usize,
}

impl http_body::Body for CountedRequest {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let messages = this.frames.feed(data);
            if messages > 0 {
                let method = &this.table.methods[this.method];
                method.received.fetch_add(messages, Ordering::Relaxed);
            }
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

/// A response body that counts the messages sent and finishes its call at the status in
/// its trailers (or at its end, or when it is dropped).
struct ObservedResponse {
    inner: Body,
    frames: Frames,
    call: Option<Call>,
}

impl http_body::Body for ObservedResponse {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let messages = this.frames.feed(data);
                    if messages > 0
                        && let Some(call) = &this.call
                    {
                        call.method().sent.fetch_add(messages, Ordering::Relaxed);
                    }
                } else if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    call.finish(status_code(trailers).unwrap_or(UNKNOWN));
                }
            }
            // A body that breaks or ends without a status: tonic always sends one, so
            // whatever happened is not a status the server chose.
            Poll::Ready(Some(Err(_)) | None) => {
                if let Some(call) = this.call.take() {
                    call.finish(UNKNOWN);
                }
            }
            Poll::Pending => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_path_has_a_kind() {
        let kinds = method_kinds();
        for (path, _) in POLICY {
            assert!(kinds.contains_key(*path), "{path} has no descriptor");
        }
        assert_eq!(
            kinds.get("/switchboard.v1.CoreService/Connect"),
            Some(&"bidi_stream")
        );
        assert_eq!(
            kinds.get("/switchboard.v1.RoutingService/NewTask"),
            Some(&"unary")
        );
    }
}
