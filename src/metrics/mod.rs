//! Prometheus metrics, served on an address of their own (`--metrics-listen`, off unless
//! set). One file per job:
//!
//! - `recorder`: the server's registry and the catalog of every metric it exports;
//! - `exporter`: the `/metrics` HTTP listener;
//! - `grpc`: gRPC server metrics, a tower layer around every service (`frames` counts the
//!   messages in its bodies);
//! - `histogram`: fixed buckets in atomics, for the histogram sampled on every call;
//! - `contact_center`: queues, agents, offers and tasks, from the journal's records and the
//!   engine's census;
//! - `platform`: the journal, the engine, watches and clients;
//! - `process`: CPU, memory, threads and file descriptors.
//!
//! The rules (`domain`) know nothing of this: records and read models go out, nothing comes
//! back in.

mod contact_center;
mod exporter;
mod frames;
mod grpc;
mod histogram;
mod platform;
mod process;
mod recorder;

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tracing::warn;

pub use grpc::{GrpcMetrics, GrpcMetricsLayer};
pub use recorder::{Kind, Metric, catalog};

use self::contact_center::ContactCenter;
use self::platform::Platform;
use self::process::Process;
use self::recorder::Registry;
use crate::cluster::NodeView;
use crate::domain::commands::{GetCensus, ServerLoad};
use crate::domain::{DomainResult, Principal, Record, Revision, State};
use crate::engine::EngineHandle;
use crate::watch::{Commit, Tap};

/// How long a scrape waits for the engine's census before it shows the last one.
const ENGINE_WAIT: Duration = Duration::from_secs(5);

/// A server's metrics: the registry and what feeds it. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    grpc: GrpcMetricsLayer,
    center: Arc<ContactCenter>,
    platform: Arc<Platform>,
    process: Option<Process>,
    /// What scrapes read from besides the tap: set once the engine runs, let go of at
    /// shutdown (a handle kept would keep the journal open).
    sources: std::sync::Mutex<Option<(EngineHandle, watch::Receiver<NodeView>)>>,
    /// Scrapes take turns.
    scraping: Mutex<()>,
}

impl Metrics {
    /// `clustered`: the server is a node of a cluster (it then shows whether it leads).
    pub fn new(clustered: bool) -> Self {
        let registry = Arc::new(Registry::new());
        Self {
            inner: Arc::new(Inner {
                grpc: GrpcMetricsLayer::new(&registry),
                center: Arc::new(ContactCenter::new(Arc::clone(&registry))),
                platform: Arc::new(Platform::new(&registry, clustered)),
                process: Process::new(&registry),
                registry,
                sources: std::sync::Mutex::new(None),
                scraping: Mutex::new(()),
            }),
        }
    }

    /// The layer that counts every gRPC call; one per server.
    pub fn grpc_layer(&self) -> GrpcMetricsLayer {
        self.inner.grpc.clone()
    }

    /// Starts counting what `engine`'s journal makes visible, from its state as it is now;
    /// scrapes read `engine` and `node` from then on.
    pub async fn follow(
        &self,
        engine: &EngineHandle,
        node: watch::Receiver<NodeView>,
    ) -> DomainResult<()> {
        let counting = Counting {
            center: Arc::clone(&self.inner.center),
            platform: Arc::clone(&self.inner.platform),
        };
        engine.tap(Arc::new(counting)).await?;
        *self.sources() = Some((engine.clone(), node));
        Ok(())
    }

    /// Lets go of the engine: scrapes show the last figures read.
    pub fn release(&self) {
        self.sources().take();
    }

    fn sources(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<(EngineHandle, watch::Receiver<NodeView>)>> {
        self.inner
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves `/metrics` on `listener` until the task is aborted.
    pub fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        exporter::spawn(self.clone(), listener)
    }

    /// Refreshes what is read rather than counted (the engine's census, the platform, the
    /// process), then renders everything.
    async fn scrape(&self) -> String {
        let _turn = self.inner.scraping.lock().await;
        let sources = self.sources().clone();
        if let Some((engine, node)) = &sources {
            let principal = Principal::engine();
            match tokio::time::timeout(ENGINE_WAIT, engine.execute(&principal, GetCensus)).await {
                Ok(Ok(census)) => self.inner.center.show(&census.answer),
                Ok(Err(e)) => warn!(
                    error = %e,
                    "metrics: no census from the engine; gauges keep their last figures"
                ),
                Err(_) => warn!(
                    "metrics: the engine did not answer the census in time; gauges keep their \
                     last figures"
                ),
            }
            let load = tokio::time::timeout(ENGINE_WAIT, engine.execute(&principal, ServerLoad));
            let clients = load.await.ok().and_then(Result::ok);
            let clients = clients.map(|load| load.answer.client_count);
            self.inner.platform.show(engine, node, clients);
        }
        if let Some(process) = &self.inner.process {
            process.show();
        }
        self.inner.grpc.publish();
        let mut text = self.inner.registry.render();
        self.inner.grpc.render(&mut text);
        text
    }

    fn upkeep(&self) {
        self.inner.registry.upkeep();
    }
}

/// What the engine's tap feeds. Apart from `Metrics`, which holds the engine's handle: the
/// engine holding this must not keep itself (and its journal) alive through it.
struct Counting {
    center: Arc<ContactCenter>,
    platform: Arc<Platform>,
}

impl Tap for Counting {
    fn seed(&self, state: &State, _: Revision) {
        self.center.seed(state);
    }

    fn visible(&self, records: &[Arc<Record>]) {
        self.center.visible(records);
    }

    fn committed(&self, commit: Commit) {
        self.platform.committed(commit);
    }
}
