//! The forwarding edge: a tower layer in front of every service, outside authentication. A
//! call only the leader may serve (`placement`) goes to the leader as it came, over HTTP/2:
//! same path, every header (the caller's token and `request_id` included, so the leader
//! authenticates and deduplicates it itself and no node trusts another), bodies streamed both
//! ways, the leader's headers, messages and trailers returned as they come. Everything else is
//! served here, once this node has applied the revision a caller asks for
//! (`x-switchboard-min-revision`), so a caller reads its own writes on any node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tokio::sync::{oneshot, watch};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tower::{Layer, Service, ServiceExt};
use tracing::warn;

use super::bodies::{Counted, FromLeader, Held, ToLeader};
use super::peer::{self, ForwardedPeer, PeerSeal, act_as, caller_of};
use super::placement::{Placement, placement};
use super::route::Route;
use crate::lifecycle::Lifecycle;

/// Metadata asking that the call be served from a state at least this revision.
pub const MIN_REVISION_HEADER: HeaderName = HeaderName::from_static("x-switchboard-min-revision");

/// Metadata naming the node that forwarded a call: for the leader's logs, never trusted. A call
/// that carries it is never forwarded again, so two nodes that each think the other leads
/// cannot pass a call back and forth.
pub const FORWARDED_BY_HEADER: HeaderName = HeaderName::from_static("x-switchboard-forwarded-by");

/// How long a read waits for this node to apply the revision it asks for, unless set.
pub const DEFAULT_REVISION_WAIT: Duration = Duration::from_secs(5);

/// Forwarded calls one connection to the leader carries at most, unless set: well inside the
/// leader's own bound on streams per connection (`--max-streams-per-connection`, 256 by
/// default), since a desktop's stream holds its HTTP/2 stream as long as the desktop stays.
pub const DEFAULT_CALLS_PER_CONNECTION: usize = 128;

/// A leader that does not answer a connection attempt in this long is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pings on the connection to the leader, so that a forwarded stream (a desktop's `Connect`)
/// learns of a dead leader instead of waiting on a silent socket.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The forwarded calls that last: a desktop's lease stream (a native desktop's `Connect`, a
/// browser's `Feed`), ended when this node drains.
const DESKTOP_STREAMS: [&str; 2] = [
    "/switchboard.v1.CoreService/Connect",
    "/switchboard.v1.CoreService/Feed",
];

const NO_LEADER: &str = "no leader at the moment (a hand-over is in progress): retry in a moment";

/// How to reach a leader that serves TLS: the CA its certificate chains to, and the name the
/// certificate must carry. No client certificate is presented, so a leader asking for one
/// (`--client-auth required`) cannot be forwarded to.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// PEM: one or more CA certificates.
    pub ca_pem: Vec<u8>,
    /// The DNS name (or IP address) the leader's certificate must name.
    pub domain: String,
}

/// Forwards what only the leader may serve and holds reads until this node has caught up; see
/// the module's doc. Cheap to clone: clones share the connections to the leader.
#[derive(Clone)]
pub struct ForwardLayer {
    route: watch::Receiver<Route>,
    applied: watch::Receiver<u64>,
    tls: Option<Arc<ClientTls>>,
    node: HeaderValue,
    revision_wait: Duration,
    calls_per_connection: usize,
    leader: Arc<Mutex<Option<Connections>>>,
    waiting: Arc<AtomicUsize>,
    lifecycle: Option<Lifecycle>,
    /// Desktop streams their desktops opened on this node, served here or forwarded to the
    /// leader; not those another node forwarded here.
    desktop_streams: Arc<AtomicUsize>,
    /// Carries the caller's address and certificate across a forward (`peer`); without it
    /// the leader sees the forwarding node as the caller.
    seal: Option<PeerSeal>,
}

impl ForwardLayer {
    /// `route` says where the leader is; `applied` is the revision this node's state
    /// includes (on the leader, its visible revision); `tls` is how to reach a leader that
    /// serves TLS (`None`: plaintext).
    pub fn new(
        route: watch::Receiver<Route>,
        applied: watch::Receiver<u64>,
        tls: Option<ClientTls>,
    ) -> Self {
        Self {
            route,
            applied,
            tls: tls.map(Arc::new),
            node: HeaderValue::from_static("unnamed"),
            revision_wait: DEFAULT_REVISION_WAIT,
            calls_per_connection: DEFAULT_CALLS_PER_CONNECTION,
            leader: Arc::new(Mutex::new(None)),
            waiting: Arc::new(AtomicUsize::new(0)),
            lifecycle: None,
            desktop_streams: Arc::default(),
            seal: None,
        }
    }

    /// Seals each forwarded call's caller (address, client certificate) with the cluster's
    /// forwarding key, and trusts the same from the nodes that forward here.
    pub fn with_peer_seal(mut self, seal: PeerSeal) -> Self {
        self.seal = Some(seal);
        self
    }

    /// Counts the desktop streams (`Connect`) open through this node into `count`: what
    /// `GetServerStatus` reports as the node's load.
    pub fn counting_desktop_streams(mut self, count: Arc<AtomicUsize>) -> Self {
        self.desktop_streams = count;
        self
    }

    /// Ends forwarded desktop streams with `UNAVAILABLE` ("reconnect to another server") once
    /// `lifecycle` begins stopping, as local streams end, so that a drain does not wait on
    /// them. The server sets this to its own lifecycle.
    pub fn ending_on(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = Some(lifecycle);
        self
    }

    /// Names this node in `x-switchboard-forwarded-by` (`unnamed` unless set).
    pub fn with_node_name(mut self, name: &str) -> Result<Self, http::header::InvalidHeaderValue> {
        self.node = HeaderValue::from_str(name)?;
        Ok(self)
    }

    /// How long a read waits for `x-switchboard-min-revision` (5 s unless set).
    pub fn with_revision_wait(mut self, bound: Duration) -> Self {
        self.revision_wait = bound;
        self
    }

    /// How many forwarded calls share one connection to the leader (128 unless set; at least
    /// 1): keep it at most the leader's `--max-streams-per-connection`.
    pub fn with_calls_per_connection(mut self, calls: usize) -> Self {
        self.calls_per_connection = calls.max(1);
        self
    }

    /// Calls waiting right now for this node to apply the revision they ask for.
    pub fn waiting_reads(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Serves one call: forwarded, refused, or handed to `inner` once caught up.
    async fn serve<S>(&self, inner: S, request: Request<Body>) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<Body>, Response = Response<Body>>,
    {
        // A stream another node forwarded here is counted there, where its desktop connected:
        // each desktop counts once, on the node it chose.
        if !DESKTOP_STREAMS.contains(&request.uri().path())
            || request.headers().contains_key(FORWARDED_BY_HEADER)
        {
            return self.route_call(inner, request).await;
        }
        // Counted for as long as its answer streams.
        let open = Counted::enter(Arc::clone(&self.desktop_streams));
        let response = self.route_call(inner, request).await?;
        Ok(response.map(|inner| Body::new(Held { inner, _open: open })))
    }

    async fn route_call<S>(
        &self,
        inner: S,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<Body>, Response = Response<Body>>,
    {
        // Whatever a caller sent under the forwarded-peer header is replaced when forwarding
        // and trusted here only from a node with the key.
        let forwarded_peer = self.forwarded_peer(&mut request);
        let min_revision = match min_revision(request.headers()) {
            Ok(min_revision) => min_revision,
            Err(status) => return Ok(status.into_http()),
        };
        if placement(request.uri().path()) == Placement::Leader {
            let route = self.route.borrow().clone();
            match route {
                Route::Local => {}
                Route::NoLeader => return Ok(Status::unavailable(NO_LEADER).into_http()),
                Route::Leader(_) if request.headers().contains_key(FORWARDED_BY_HEADER) => {
                    return Ok(Status::unavailable(format!(
                        "this node is not the leader either; {NO_LEADER}"
                    ))
                    .into_http());
                }
                Route::Leader(address) => return Ok(self.forward(&address, request).await),
            }
        }
        if let Some(peer) = forwarded_peer {
            act_as(&mut request, peer);
        }
        if let Some(revision) = min_revision
            && let Err(status) = self.caught_up(revision).await
        {
            return Ok(status.into_http());
        }
        inner.oneshot(request).await
    }

    /// The caller a forwarding node sealed into the request, taken out of its headers; `None`
    /// (and the header stripped) unless it came from a node of this cluster.
    fn forwarded_peer(&self, request: &mut Request<Body>) -> Option<ForwardedPeer> {
        let seal = self.seal.as_ref();
        let from_node = request.headers().contains_key(FORWARDED_BY_HEADER);
        match seal {
            Some(seal) if from_node => seal.open(request.headers_mut()),
            _ => {
                peer::strip(request.headers_mut());
                None
            }
        }
    }

    /// Waits (bounded) until this node has applied `revision`.
    async fn caught_up(&self, revision: u64) -> Result<(), Status> {
        if *self.applied.borrow() >= revision {
            return Ok(());
        }
        let _waiting = Counted::enter(Arc::clone(&self.waiting));
        let mut applied = self.applied.clone();
        let reached =
            tokio::time::timeout(self.revision_wait, applied.wait_for(|now| *now >= revision))
                .await
                .is_ok_and(|seen| seen.is_ok());
        if reached {
            return Ok(());
        }
        let now = *applied.borrow();
        Err(Status::unavailable(format!(
            "this node has applied revision {now}, behind the requested {revision}; retry or \
             ask another node"
        )))
    }

    /// Sends `request` to the leader at `address`; its answer, or why there is none.
    async fn forward(&self, address: &str, mut request: Request<Body>) -> Response<Body> {
        let (channel, call) = match self.channel(address) {
            Ok(connection) => connection,
            Err(status) => return status.into_http(),
        };
        request
            .headers_mut()
            .insert(FORWARDED_BY_HEADER, self.node.clone());
        match &self.seal {
            Some(seal) => match caller_of(&request) {
                Some(peer) => seal.seal(&peer, request.headers_mut()),
                None => peer::strip(request.headers_mut()),
            },
            None => peer::strip(request.headers_mut()),
        }
        let path = request.uri().path().to_owned();
        let (tether, ended) = oneshot::channel();
        let request = request.map(|body| {
            Body::new(ToLeader {
                inner: body,
                ended: Some(ended),
            })
        });
        match channel.oneshot(request).await {
            Ok(response) => {
                let leader: Arc<str> = Arc::from(address);
                let stopping = match &self.lifecycle {
                    Some(lifecycle) if DESKTOP_STREAMS.contains(&path.as_str()) => {
                        let lifecycle = lifecycle.clone();
                        Some(async move { lifecycle.stopping().await }.boxed())
                    }
                    _ => None,
                };
                response.map(|body| {
                    Body::new(FromLeader {
                        inner: body,
                        leader,
                        stopping,
                        tether: Some(tether),
                        _call: call,
                        ended: false,
                    })
                })
            }
            Err(error) => {
                // The error names the address and the cause; never a header of the call.
                warn!(leader = address, %path, %error, "forwarding to the leader failed");
                not_forwarded(address, &error).into_http()
            }
        }
    }

    /// A connection to the leader at `address` for one more call, and the call's place on it:
    /// the least busy cached one, or a new one (connected on first use) when every one is
    /// full. The cache is dropped when the leader has moved.
    fn channel(&self, address: &str) -> Result<(Channel, Counted), Status> {
        let mut cached = self.leader.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|c| c.address != address) {
            *cached = None;
        }
        let connections = cached.get_or_insert_with(|| Connections {
            address: address.to_owned(),
            pool: Vec::new(),
        });
        let least = connections
            .pool
            .iter()
            .min_by_key(|(_, calls)| calls.load(Ordering::SeqCst))
            .filter(|(_, calls)| calls.load(Ordering::SeqCst) < self.calls_per_connection);
        let (channel, calls) = match least {
            Some((channel, calls)) => (channel.clone(), Arc::clone(calls)),
            None => {
                let channel = self.endpoint(address)?.connect_lazy();
                let calls = Arc::new(AtomicUsize::new(0));
                connections.pool.push((channel.clone(), Arc::clone(&calls)));
                (channel, calls)
            }
        };
        Ok((channel, Counted::enter(calls)))
    }

    fn endpoint(&self, address: &str) -> Result<Endpoint, Status> {
        let unusable = |error: &dyn std::fmt::Display| {
            Status::unavailable(format!(
                "the leader's address {address} is not usable: {error}"
            ))
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| unusable(&e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            let config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                .domain_name(tls.domain.clone());
            endpoint = endpoint.tls_config(config).map_err(|e| unusable(&e))?;
        }
        Ok(endpoint)
    }
}

/// The status for a call the leader at `address` never answered.
fn not_forwarded(address: &str, error: &tonic::transport::Error) -> Status {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<tonic::TimeoutExpired>() {
            return Status::deadline_exceeded(format!(
                "the call's deadline passed before the leader at {address} answered"
            ));
        }
        source = cause.source();
    }
    Status::unavailable(format!(
        "the leader at {address} cannot be reached ({}); retry in a moment",
        chain(error)
    ))
}

/// An error and its causes, on one line; a cause its error already shows is not repeated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// The revision `x-switchboard-min-revision` asks for, if any.
fn min_revision(headers: &HeaderMap) -> Result<Option<u64>, Status> {
    let mut values = headers.get_all(&MIN_REVISION_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let parsed = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match (parsed, values.next()) {
        (Some(revision), None) => Ok(Some(revision)),
        _ => Err(Status::invalid_argument(format!(
            "{MIN_REVISION_HEADER} must be one revision number (a decimal integer)"
        ))),
    }
}

/// The connections to the latest leader address used, each with its calls in flight.
struct Connections {
    address: String,
    pool: Vec<(Channel, Arc<AtomicUsize>)>,
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Forward {
            inner,
            edge: Arc::new(self.clone()),
        }
    }
}

/// A service behind [`ForwardLayer`].
#[derive(Clone)]
pub struct Forward<S> {
    inner: S,
    edge: Arc<ForwardLayer>,
}

impl<S> Service<Request<Body>> for Forward<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone stays behind.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let edge = Arc::clone(&self.edge);
        Box::pin(async move { edge.serve(inner, request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(&MIN_REVISION_HEADER, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn min_revision_is_one_decimal_number() {
        assert_eq!(min_revision(&headers(&[])).unwrap(), None);
        assert_eq!(min_revision(&headers(&["42"])).unwrap(), Some(42));
        assert_eq!(min_revision(&headers(&[" 7 "])).unwrap(), Some(7));
        for bad in [&["x"][..], &["-1"], &["1.5"], &[""], &["1", "2"]] {
            let status = min_revision(&headers(bad)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad:?}");
            assert!(status.message().contains("x-switchboard-min-revision"));
        }
    }

    #[tokio::test]
    async fn a_read_waits_for_the_revision_then_gives_up_naming_both() {
        let (_route, route) = watch::channel(Route::Local);
        let (advance, applied) = watch::channel(3);
        let layer =
            ForwardLayer::new(route, applied, None).with_revision_wait(Duration::from_millis(20));
        assert!(layer.caught_up(3).await.is_ok());
        let status = layer.caught_up(9).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            status
                .message()
                .contains("applied revision 3, behind the requested 9")
        );
        assert_eq!(layer.waiting_reads(), 0);
        advance.send_replace(9);
        assert!(layer.caught_up(9).await.is_ok());
    }

    #[test]
    fn a_node_name_must_be_a_header_value() {
        let (_route, route) = watch::channel(Route::Local);
        let (_applied, applied) = watch::channel(0);
        let layer = ForwardLayer::new(route, applied, None);
        assert!(layer.clone().with_node_name("node-b:50051").is_ok());
        assert!(layer.with_node_name("bad\nname").is_err());
    }
}
