//! Thin tonic handlers: wire form -> validated command -> engine -> wire form. The rules live in
//! `domain`; this layer only converts and maps errors (`status`).

mod accounts;
mod admin;
mod auth;
mod cardinality;
mod connect;
mod convert;
mod core;
pub mod decode;
mod feed;
pub mod oversize;
mod paging;
mod processor;
mod routing;
mod routing_admin;
mod status;
mod workflow;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio::sync::watch;
use tonic::Status;

pub use self::cardinality::CardinalityLayer;
use self::convert::agents::WithPassword;
use crate::auth::{Authenticated, TokenIssuer};
use crate::cluster::NodeView;
use crate::domain::bounds::{MAX_REQUEST_ID_CHARS, check_text};
use crate::domain::commands::Command;
use crate::domain::{
    Actor, ClientId, DomainError, DomainResult, Principal, Record, Revision, ServiceDirectory,
};
use crate::engine::{Committed, EngineHandle, RequestKey, Standings};
use crate::lifecycle::Lifecycle;
use crate::pb;
use crate::watch::{WatchError, WatchItem};

/// Implements every `switchboard.v1` service. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    engine: EngineHandle,
    directory: ServiceDirectory,
    instance_domain: String,
    lifecycle: Lifecycle,
    auth: AuthSettings,
    node: NodeInfo,
}

/// What a node tells of itself in `GetServerStatus`, besides its engine's state.
#[derive(Clone)]
pub struct NodeInfo {
    /// Its part in its cluster (a constant `Standalone` on a single node).
    pub view: watch::Receiver<NodeView>,
    /// `Connect` streams open through this node, forwarded or served here.
    pub desktop_streams: Arc<AtomicUsize>,
}

impl NodeInfo {
    pub fn standalone() -> Self {
        Self {
            view: watch::channel(NodeView::standalone(String::new())).1,
            desktop_streams: Arc::default(),
        }
    }
}

/// How `AuthService` issues tokens.
pub struct AuthSettings {
    pub issuer: Arc<TokenIssuer>,
    pub refresh_ttl_secs: u64,
}

impl Api {
    pub fn new(
        engine: EngineHandle,
        directory: ServiceDirectory,
        instance_domain: String,
        lifecycle: Lifecycle,
        auth: AuthSettings,
        node: NodeInfo,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                directory,
                instance_domain,
                lifecycle,
                auth,
                node,
            }),
        }
    }

    fn engine(&self) -> &EngineHandle {
        &self.inner.engine
    }

    fn directory(&self) -> &ServiceDirectory {
        &self.inner.directory
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// New clients are refused while the server starts or drains, so desktops go elsewhere.
    fn ensure_accepting(&self) -> DomainResult<()> {
        if self.lifecycle().accepting_clients() {
            Ok(())
        } else {
            Err(DomainError::Unavailable(
                "this server is not accepting clients; connect to another server".into(),
            ))
        }
    }
}

/// The client a request acts for. Unary calls name it; on a `Connect` stream (`caller`) it may
/// be left empty, but naming another client is refused.
fn acting_client(caller: Option<ClientId>, raw: &str) -> DomainResult<ClientId> {
    match caller {
        None => ClientId::parse("client_id", raw),
        Some(own) if raw.is_empty() => Ok(own),
        Some(own) => {
            let named = ClientId::parse("client_id", raw)?;
            if named == own {
                Ok(own)
            } else {
                Err(DomainError::invalid(
                    "client_id",
                    "must be empty or this stream's own client id",
                ))
            }
        }
    }
}

/// The idempotency key of a mutating request: its `request_id` and a fingerprint of the
/// request as `method` received it. `None` when the caller gave no id. Callers clear any
/// password in `request` first, so that no digest of a password is ever stored.
fn request_key<M: prost::Message>(
    method: &'static str,
    request_id: &str,
    request: &M,
) -> DomainResult<Option<RequestKey>> {
    fingerprinted(None, method, request_id, request)
}

/// As `request_key`, for a request that acts for a client: the fingerprint names the client,
/// so two desktops' streams that leave `client_id` empty never share an answer.
fn client_request_key<M: prost::Message>(
    client_id: ClientId,
    method: &'static str,
    request_id: &str,
    request: &M,
) -> DomainResult<Option<RequestKey>> {
    fingerprinted(Some(client_id), method, request_id, request)
}

fn fingerprinted<M: prost::Message>(
    client_id: Option<ClientId>,
    method: &'static str,
    request_id: &str,
    request: &M,
) -> DomainResult<Option<RequestKey>> {
    use blake2::{Blake2s256, Digest};
    if request_id.is_empty() {
        return Ok(None);
    }
    check_text("request_id", request_id, MAX_REQUEST_ID_CHARS)?;
    // The call's span (`telemetry::span`), when there is one, names the request.
    tracing::Span::current().record("request_id", request_id);
    let mut hasher = Blake2s256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    if let Some(client_id) = client_id {
        hasher.update(client_id.0.as_bytes());
    }
    // Encoding is deterministic here: fields in number order, maps ordered (see build.rs).
    hasher.update(request.encode_to_vec());
    let fingerprint = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Some(RequestKey {
        id: request_id.to_owned(),
        fingerprint,
    }))
}

impl Api {
    /// Runs a mutating command, once per request id when `key` is set (see `request_key`).
    async fn execute_keyed<C: Command>(
        &self,
        who: &Principal,
        key: Option<RequestKey>,
        command: C,
    ) -> DomainResult<Committed<C::Answer>> {
        self.engine().execute_once(who, command, key).await
    }

    /// Runs a command, once per request id when `key` is set; its answer and revision.
    async fn run<C: Command>(
        &self,
        who: &Principal,
        key: Option<RequestKey>,
        command: C,
    ) -> DomainResult<(C::Answer, Revision)> {
        let committed = self.execute_keyed(who, key, command).await?;
        Ok((committed.answer, committed.revision))
    }

    /// Checks an agent's password (off the engine task, throttled per agent id and per the
    /// caller's address `peer`), then builds its command with the hash the password matched.
    async fn verified<C>(
        &self,
        request: WithPassword<C>,
        peer: Option<SocketAddr>,
    ) -> DomainResult<C> {
        let peer: Option<IpAddr> = peer.map(|addr| addr.ip());
        let hash = match request.password {
            Some(password) => Some(
                self.engine()
                    .verify_agent(&request.agent_id, password, peer)
                    .await?,
            ),
            None => None,
        };
        Ok((request.command)(hash))
    }
}

/// Who sent `request`, as the authentication layer found it. Every RPC that is not public has
/// one (the layer refuses it otherwise); its absence here fails closed.
fn caller<T>(request: &tonic::Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))
}

/// A unary handler's result: the domain error becomes its gRPC status.
type ApiResult<T> = Result<T, Status>;

fn reply<T>(result: DomainResult<T>) -> ApiResult<tonic::Response<T>> {
    result.map(tonic::Response::new).map_err(Status::from)
}

/// A watch's frames: each record `event` converts (others are skipped), each progress
/// notice as `progress` builds it, then the watch's end as a status.
fn watch_frames<T, E, P>(
    items: tokio::sync::mpsc::Receiver<Result<WatchItem, WatchError>>,
    event: E,
    progress: P,
) -> impl futures_util::Stream<Item = Result<T, Status>> + Send
where
    T: Send,
    E: Fn(&Record) -> Option<T> + Send,
    P: Fn(pb::WatchProgress) -> T + Send,
{
    use futures_util::StreamExt;
    tokio_stream::wrappers::ReceiverStream::new(items).filter_map(move |item| {
        std::future::ready(match item {
            Ok(WatchItem::Record(record)) => event(&record).map(Ok),
            Ok(WatchItem::Progress(revision)) => Some(Ok(progress(pb::WatchProgress { revision }))),
            Err(error) => Some(Err(Status::from(error))),
        })
    })
}

/// The caller's principal and the credential version its token names, for ending its
/// streams when its credentials change; `None` for an unsigned call.
fn token_of<T>(request: &tonic::Request<T>) -> Option<(Actor, u64)> {
    request
        .extensions()
        .get::<Authenticated>()
        .map(|a| (a.principal.actor.clone(), a.credential_version))
}

/// How a stream ends when its caller's credentials are revoked, changed or deleted.
fn revoked_status() -> Status {
    Status::unauthenticated("credentials revoked or changed; sign in again")
}

/// Resolves once the token `token` names is no longer valid (never for an unsigned call).
async fn revoked(standings: Arc<Standings>, token: Option<(Actor, u64)>) {
    match token {
        Some((actor, version)) => standings.revoked(&actor, version).await,
        None => std::future::pending().await,
    }
}

/// Ends a server stream with UNAUTHENTICATED once its caller's credentials are revoked.
fn end_on_revocation<S, T>(
    stream: S,
    standings: Arc<Standings>,
    token: Option<(Actor, u64)>,
) -> impl futures_util::Stream<Item = Result<T, Status>> + Send
where
    S: futures_util::Stream<Item = Result<T, Status>> + Send,
    T: Send,
{
    use futures_util::StreamExt;
    let check = (Arc::clone(&standings), token.clone());
    let farewell = futures_util::stream::once(async move {
        let (standings, token) = check;
        token
            .filter(|(actor, version)| standings.current_version(actor) != Some(*version))
            .map(|_| Err(revoked_status()))
    });
    stream
        .take_until(Box::pin(revoked(standings, token)))
        .map(Some)
        .chain(farewell)
        .filter_map(std::future::ready)
}

/// How every open stream ends when the server drains.
fn stopping_status() -> Status {
    Status::unavailable("server is stopping; reconnect to another server")
}

/// Ends a server stream when shutdown begins, with UNAVAILABLE so the client reconnects to
/// another server; a stream that ends by itself ends as it would have.
fn end_on_shutdown<S, T>(
    stream: S,
    lifecycle: Lifecycle,
) -> impl futures_util::Stream<Item = Result<T, Status>> + Send
where
    S: futures_util::Stream<Item = Result<T, Status>> + Send,
    T: Send,
{
    use futures_util::StreamExt;
    let stopping = lifecycle.clone();
    let farewell = futures_util::stream::once(async move {
        (lifecycle.phase() == crate::lifecycle::Phase::Stopping).then(|| Err(stopping_status()))
    });
    stream
        .take_until(Box::pin(async move { stopping.stopping().await }))
        .map(Some)
        .chain(farewell)
        .filter_map(std::future::ready)
}
