//! Thin tonic handlers: wire form -> validated command -> engine -> wire form. The rules live in
//! `domain`; this layer only converts and maps errors (`status`).

mod admin;
mod connect;
mod core;
mod processor;
mod routing;
mod routing_convert;
mod status;
mod workflow;

use std::sync::Arc;

use tonic::Status;

use crate::domain::{ClientId, DomainError, DomainResult, ServiceDirectory};
use crate::engine::EngineHandle;
use crate::lifecycle::Lifecycle;

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
}

impl Api {
    pub fn new(
        engine: EngineHandle,
        directory: ServiceDirectory,
        instance_domain: String,
        lifecycle: Lifecycle,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                directory,
                instance_domain,
                lifecycle,
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

/// A unary handler's result: the domain error becomes its gRPC status.
type ApiResult<T> = Result<T, Status>;

fn reply<T>(result: DomainResult<T>) -> ApiResult<tonic::Response<T>> {
    result.map(tonic::Response::new).map_err(Status::from)
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
