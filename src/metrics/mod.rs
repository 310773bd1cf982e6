//! Prometheus metrics, served on an address of their own (`--metrics-listen`, off unless
//! set). One file per job:
//!
//! - `recorder`: the server's registry and the catalog of every metric it exports;
//! - `exporter`: the `/metrics` HTTP listener;
//! - `grpc`: gRPC server metrics, a tower layer around every service;
//! - `process`: CPU, memory, threads and file descriptors.
//!
//! The rules (`domain`) know nothing of this: records and read models go out, nothing comes
//! back in.

mod exporter;
mod grpc;
mod process;
mod recorder;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub use grpc::{GrpcMetrics, GrpcMetricsLayer};
pub use recorder::{Kind, Metric, catalog};

use self::process::Process;
use self::recorder::Registry;

/// A server's metrics: the registry and what feeds it. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    grpc: GrpcMetricsLayer,
    process: Option<Process>,
    /// Scrapes take turns.
    scraping: Mutex<()>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Arc::new(Registry::new());
        Self {
            inner: Arc::new(Inner {
                grpc: GrpcMetricsLayer::new(&registry),
                process: Process::new(&registry),
                registry,
                scraping: Mutex::new(()),
            }),
        }
    }

    /// The layer that counts every gRPC call; one per server.
    pub fn grpc_layer(&self) -> GrpcMetricsLayer {
        self.inner.grpc.clone()
    }

    /// Serves `/metrics` on `listener` until the task is aborted.
    pub fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        exporter::spawn(self.clone(), listener)
    }

    /// Refreshes what is read rather than counted (the process), then renders everything.
    async fn scrape(&self) -> String {
        let _turn = self.inner.scraping.lock().await;
        if let Some(process) = &self.inner.process {
            process.show();
        }
        self.inner.registry.render()
    }

    fn upkeep(&self) {
        self.inner.registry.upkeep();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
